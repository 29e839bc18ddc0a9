"""The config file of a command: read it, register its secrets for masking, check it against spec.json."""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft7Validator

from destination_iterable.errors import ConfigError
from destination_iterable.masking import secret_values, set_secrets


@lru_cache(maxsize=1)
def connector_spec() -> dict[str, Any]:
    """spec.json of the package (what `spec` prints)."""
    data = pkgutil.get_data("destination_iterable", "spec.json")
    if data is None:  # pragma: no cover - the file ships with the package
        raise RuntimeError("spec.json is missing from the package.")
    return json.loads(data)


def connection_specification() -> dict[str, Any]:
    """The JSON schema of the config."""
    return connector_spec()["connectionSpecification"]


def read_config(config_path: str) -> MutableMapping[str, Any]:
    """The config file as a JSON object; ValueError otherwise (as the CDK's `read_config`)."""
    with open(config_path) as handle:
        contents = handle.read()
    try:
        config = json.loads(contents)
    except json.JSONDecodeError as error:
        raise ValueError(f"Could not read json file {config_path}: {error}.") from None
    if not isinstance(config, MutableMapping):
        raise ValueError(f"The content of {config_path} is not an object and therefore is not a valid config.")
    return config


def spec_problem(config: Any, schema: Mapping[str, Any]) -> str | None:
    """The first way `config` breaks the spec, as a sentence that names the setting (never its value)."""
    if not isinstance(config, dict):
        return "The configuration must be a JSON object."
    errors = sorted(Draft7Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    name = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        name = str(error.message).split("'")[1] if "'" in str(error.message) else name
        return f"Setting '{name}' is required. Fill it in in the destination's settings."
    expected = {
        "type": f"must be of type {error.validator_value}",
        "enum": f"must be one of {error.validator_value}",
        "pattern": "does not have the expected format",
        "minimum": f"must be at least {error.validator_value}",
        "maximum": f"must be at most {error.validator_value}",
        "exclusiveMinimum": f"must be greater than {error.validator_value}",
        "minLength": "must not be empty",
    }.get(str(error.validator), "is not valid")
    return f"Setting '{name}' {expected}. Fix it in the destination's settings."


def load_config(config_path: str) -> tuple[MutableMapping[str, Any], str | None]:
    """Read the config, register its secrets for masking, and say how it breaks the spec (None if it does not).

    Raises ConfigError when the file cannot be read as a JSON object.
    """
    try:
        config = read_config(config_path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The config file could not be read as a JSON object ({type(exc).__name__}).") from None
    schema = connection_specification()
    set_secrets([s for s in secret_values(schema, config) if isinstance(s, str)])
    return config, spec_problem(config, schema)
