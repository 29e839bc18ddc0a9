"""Reads the configured catalog (a plain dict) into StreamSpecs, refusing what cannot work."""

from __future__ import annotations

from typing import Any

from destination_iterable.config import IterableConfig
from destination_iterable.errors import ConfigError
from destination_iterable.sync.sink import StreamSpec

SUPPORTED_MODES = ("append", "append_dedup", "overwrite", "soft_delete")


def streams_from_catalog(catalog: Any, config: IterableConfig) -> list[StreamSpec]:
    """Validate every configured stream before anything is written."""
    streams = catalog.get("streams") if isinstance(catalog, dict) else None
    if not isinstance(streams, list):
        raise ConfigError("The configured catalog has no 'streams' list.")
    specs: list[StreamSpec] = []
    seen: set[tuple[Any, Any]] = set()
    for entry in streams:
        stream = entry.get("stream") if isinstance(entry, dict) else None
        if not isinstance(stream, dict) or not isinstance(stream.get("name"), str) or not stream["name"]:
            raise ConfigError("The configured catalog has a stream without a name.")
        name, namespace = stream["name"], stream.get("namespace")
        if (namespace, name) in seen:
            raise ConfigError(f"Stream '{name}' appears twice in the configured catalog; each segment must be "
                              "configured once.", stream=name)
        seen.add((namespace, name))
        mode = entry.get("destination_sync_mode") or "append"
        if mode not in SUPPORTED_MODES:
            raise ConfigError(f"Stream '{name}' uses destination sync mode '{mode}', which the Iterable destination "
                              f"does not support (supported: {', '.join(SUPPORTED_MODES)}). Pick another mode for "
                              "this stream.", stream=name)
        _check_identifier_declared(name, stream.get("json_schema"), config)
        specs.append(StreamSpec(name=name, namespace=namespace, mode=mode,
                                generation_id=entry.get("generation_id"),
                                minimum_generation_id=entry.get("minimum_generation_id")))
    return specs


def _check_identifier_declared(name: str, schema: Any, config: IterableConfig) -> None:
    """A schema that declares properties must declare the email or userId field."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or not properties:
        return
    wanted = [f for f in (config.email_field, config.user_id_field) if f]
    for field in wanted:
        if _declared(properties, field.split(".")):
            return
    fields = " or ".join(f"'{f}'" for f in wanted)
    raise ConfigError(f"Stream '{name}' has no field {fields} in its schema, so its members cannot be identified. "
                      "Set 'email_field' (or 'user_id_field') to the field that holds the email (or userId), or "
                      "add that field to the stream.", stream=name)


def _declared(properties: dict[str, Any], path: list[str]) -> bool:
    node: Any = {"properties": properties}
    for part in path:
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict):
            return True  # a nested object without declared properties may hold anything
        if part not in props:
            return False
        node = props[part]
    return True
