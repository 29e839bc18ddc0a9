"""Secret masking for log lines and TRACE messages, as the airbyte-cdk does it (without importing it).

The secrets are the config values of the spec's `airbyte_secret` properties, found like the CDK's
`get_secrets`; every occurrence in an output text is replaced by `****`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "****"
_SECRETS: list[str] = []


def secret_paths(properties: Any) -> list[list[str]]:
    """Config paths of the properties marked `airbyte_secret: true` (`properties`/`oneOf` levels dropped)."""
    paths: list[list[str]] = []

    def visit(item: Any, path: list[str]) -> None:
        if isinstance(item, dict):
            for key, value in item.items():
                visit(value, [*path, key])
        elif isinstance(item, list):
            for value in item:
                visit(value, path)
        elif path and path[-1] == "airbyte_secret" and item is True:
            paths.append([p for p in path[:-1] if p not in ("properties", "oneOf")])

    visit(properties, [])
    return paths


def _lookup(config: Any, path: list[str]) -> Any:
    """The value at `path`, or KeyError (lists are indexed by position, as dpath does)."""
    node = config
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and str(part).isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(part)
    return node


def secret_values(connection_specification: Mapping[str, Any], config: Any) -> list[Any]:
    """The config's values at every secret path of the spec that the config has."""
    values = []
    for path in secret_paths(connection_specification.get("properties", {})):
        try:
            values.append(_lookup(config, path))
        except KeyError:
            continue
    return values


def set_secrets(secrets: list[str]) -> None:
    """Replace the registered secrets (the CDK's `update_secrets`)."""
    global _SECRETS
    _SECRETS = [s for s in secrets if isinstance(s, str) and s]


def registered_secrets() -> list[str]:
    """The secrets registered now."""
    return list(_SECRETS)


def filter_secrets(text: str) -> str:
    """`text` with every registered secret replaced by `****`."""
    for secret in _SECRETS:
        text = text.replace(secret, MASK)
    return text
