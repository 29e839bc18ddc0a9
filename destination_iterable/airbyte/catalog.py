"""Reads the configured catalog (a plain dict) into StreamSpecs, refusing what cannot work."""

from __future__ import annotations

from typing import Any

from destination_iterable.airbyte.discover import NEW_LIST_OBJECT_NAME
from destination_iterable.config import IterableConfig
from destination_iterable.errors import ConfigError
from destination_iterable.sync.sink import StreamSpec

SUPPORTED_MODES = ("append", "append_dedup", "overwrite", "soft_delete", "update")
MATCHING_KEYS = ("email", "userId")


def sync_id_of(catalog: Any) -> int | None:
    """The platform's job id (`sync_id` of the configured streams), or None."""
    streams = catalog.get("streams") if isinstance(catalog, dict) else None
    for entry in streams if isinstance(streams, list) else []:
        sync_id = entry.get("sync_id") if isinstance(entry, dict) else None
        if isinstance(sync_id, int) and not isinstance(sync_id, bool):
            return sync_id
    return None


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
        list_name, identifier = _activation_target(name, entry)
        if identifier is None:
            _check_identifier_declared(name, stream.get("json_schema"), config)
        specs.append(StreamSpec(name=name, namespace=namespace, mode=mode,
                                generation_id=entry.get("generation_id"),
                                minimum_generation_id=entry.get("minimum_generation_id"),
                                list_name=list_name, identifier=identifier))
    return specs


def _activation_target(name: str, entry: dict[str, Any]) -> tuple[str | None, str | None]:
    """(list name, identifier field) of a data-activation stream; (None, None) for a classic one.

    `destination_object_name` names the list (the NEW_LIST_OBJECT_NAME object means the classic list named by
    'list_name_template'); `primary_key` is the matching key, `[["email"]]` or `[["userId"]]`.
    """
    target = entry.get("destination_object_name")
    if target is None or target == "":
        return None, None
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"Stream '{name}' has a destination object name that is not a list name.", stream=name)
    key = entry.get("primary_key")
    flat = [part for path in key for part in (path if isinstance(path, list) else [path])] \
        if isinstance(key, list) else []
    if len(flat) != 1 or flat[0] not in MATCHING_KEYS:
        raise ConfigError(f"Stream '{name}' must match users on exactly one key, 'email' or 'userId' (got "
                          f"{key!r}). Pick the matching key in the connection's mapping.", stream=name)
    return (None if target == NEW_LIST_OBJECT_NAME else target), flat[0]


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
