"""Typed, validated configuration. Every problem becomes a ConfigError with a sentence that says what to fix."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from destination_iterable.errors import ConfigError

DATA_CENTER_URLS = {"US": "https://api.iterable.com", "EU": "https://api.eu.iterable.com"}
RESERVED_PREFIXES = ("_airbyte_", "_ab_cdc_")
TEMPLATE_PLACEHOLDERS = ("stream", "namespace")


@dataclass(frozen=True)
class IterableConfig:
    """The connector's settings after validation (see spec.json for what each means)."""

    api_key: str
    data_center: str = "US"
    api_base_url: str | None = None
    email_field: str = "email"
    user_id_field: str | None = None
    privacy_consent: bool = False
    list_name_template: str = "{stream}"
    data_fields: tuple[str, ...] = ()
    update_existing_users_only: bool = False
    mirror_max_removal_percent: float = 50.0
    dry_run: bool = False
    max_requests_per_second: float | None = None
    retry_max_seconds: float = 600.0
    request_timeout_seconds: float = 60.0
    batch_max_age_seconds: float = 10.0
    progress_interval_seconds: float = 10.0
    slow_endpoint_wait_seconds: float = 12.5

    @property
    def base_url(self) -> str:
        """The API host actually used: the override, else the data center's host."""
        return self.api_base_url or DATA_CENTER_URLS[self.data_center]

    @property
    def other_data_center(self) -> str:
        """The data center the key is *not* configured for (used to explain a 401)."""
        return "EU" if self.data_center == "US" else "US"

    def __repr__(self) -> str:  # never print the key
        return f"IterableConfig(data_center={self.data_center!r}, base_url={self.base_url!r}, ...)"


def _type_error(name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"Setting '{name}' must be {expected}, got {type(value).__name__}. Fix it in the "
                       "destination's settings.")


def _get(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], expected: str, default: Any) -> Any:
    value = raw.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise _type_error(name, expected, value)
    if not isinstance(value, kind):
        raise _type_error(name, expected, value)
    return value


def validate_base_url(url: str) -> str:
    """https anywhere; plain http only to a loopback address. Returns the URL without a trailing slash."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if "@" in parts.netloc or "\\" in url or any(ch.isspace() for ch in url.strip()):
        host = ""  # user info or backslashes make the real host ambiguous: refuse
    if parts.scheme == "https" and host:
        return url.strip().rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        return url.strip().rstrip("/")
    raise ConfigError("Setting 'api_base_url' must start with https:// (plain http is only allowed to "
                      "127.0.0.1, localhost or ::1). Fix the URL or leave it empty to use the data center's host.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_template(template: str) -> str:
    import string

    if not template.strip():
        raise ConfigError("Setting 'list_name_template' is empty. Use e.g. '{stream}'.")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"Setting 'list_name_template' is not a valid template ({exc}). Use e.g. "
                          "'Airbyte - {stream}'.") from None
    parsed = list(string.Formatter().parse(template))
    if any(spec or conversion for _, f, spec, conversion in parsed if f is not None):
        raise ConfigError("Setting 'list_name_template' may only use plain {stream} and {namespace} (no format "
                          "specifications such as {stream:d} or {stream!r}).")
    unknown = [f for f in fields if f not in TEMPLATE_PLACEHOLDERS]
    if unknown:
        raise ConfigError(f"Setting 'list_name_template' uses unknown placeholder(s) {unknown}; only "
                          "{stream} and {namespace} exist.")
    return template


def _validate_data_fields(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError("Setting 'data_fields' must be a list of field names, e.g. [\"first_name\"], or "
                          "[\"*\"] for every field.")
    if "*" in value and len(value) > 1:
        raise ConfigError("Setting 'data_fields' mixes \"*\" with field names; use either [\"*\"] or a list "
                          "of names.")
    bad = [v for v in value if v.startswith(RESERVED_PREFIXES)]
    if bad:
        raise ConfigError(f"Setting 'data_fields' names Airbyte's internal field(s) {bad}; they are never sent "
                          "to Iterable. Remove them.")
    return tuple(value)


def _seconds(raw: Mapping[str, Any], name: str, default: float) -> float:
    value = float(_get(raw, name, (int, float), "a number of seconds", default))
    if not 0 < value < 86_400 * 7:
        raise ConfigError(f"Setting '{name}' must be a positive number of seconds.")
    return value


def parse_config(raw: Mapping[str, Any]) -> IterableConfig:
    """Validate a raw config mapping (as read from config.json) into an IterableConfig."""
    if not isinstance(raw, Mapping):
        raise ConfigError("The configuration must be a JSON object.")
    api_key = _get(raw, "api_key", str, "a text value", "")
    if not api_key.strip():
        raise ConfigError("Setting 'api_key' is empty. Paste a Server-side API key from Iterable "
                          "(Integrations > API Keys).")
    data_center = _get(raw, "data_center", str, "\"US\" or \"EU\"", "US").upper()
    if data_center not in DATA_CENTER_URLS:
        raise ConfigError("Setting 'data_center' must be \"US\" or \"EU\".")
    base_url = _get(raw, "api_base_url", str, "a URL", "") or None
    email_field = _get(raw, "email_field", str, "a field name", "email").strip()
    user_id_field = (_get(raw, "user_id_field", str, "a field name", "") or "").strip() or None
    if not email_field and not user_id_field:
        raise ConfigError("Set 'email_field' or 'user_id_field' (or both): members must be identified by "
                          "email or by userId.")
    percent = float(_get(raw, "mirror_max_removal_percent", (int, float), "a number from 0 to 100", 50.0))
    if not 0 <= percent <= 100:
        raise ConfigError("Setting 'mirror_max_removal_percent' must be between 0 and 100.")
    max_rps = raw.get("max_requests_per_second")
    if max_rps is not None:
        max_rps = float(_get(raw, "max_requests_per_second", (int, float), "a positive number", None))
        if max_rps <= 0:
            raise ConfigError("Setting 'max_requests_per_second' must be greater than 0 (or left empty).")
    retry = float(_get(raw, "retry_max_seconds", (int, float), "a number of seconds", 600))
    if retry <= 0:
        raise ConfigError("Setting 'retry_max_seconds' must be greater than 0.")
    return IterableConfig(
        api_key=api_key.strip(),
        data_center=data_center,
        api_base_url=validate_base_url(base_url) if base_url else None,
        email_field=email_field,
        user_id_field=user_id_field,
        privacy_consent=_get(raw, "privacy_consent", bool, "true or false", False),
        list_name_template=_validate_template(_get(raw, "list_name_template", str, "a text value", "{stream}")),
        data_fields=_validate_data_fields(raw.get("data_fields") or []),
        update_existing_users_only=_get(raw, "update_existing_users_only", bool, "true or false", False),
        mirror_max_removal_percent=percent,
        dry_run=_get(raw, "dry_run", bool, "true or false", False),
        max_requests_per_second=max_rps,
        retry_max_seconds=retry,
        request_timeout_seconds=_seconds(raw, "request_timeout_seconds", 60.0),
        batch_max_age_seconds=_seconds(raw, "batch_max_age_seconds", 10.0),
        progress_interval_seconds=_seconds(raw, "progress_interval_seconds", 10.0),
        slow_endpoint_wait_seconds=_seconds(raw, "slow_endpoint_wait_seconds", 12.5),
    )


def require_consent(config: IterableConfig) -> None:
    """Refuse to move personal data without the user's acknowledgement."""
    if not config.privacy_consent:
        raise ConfigError("Data-privacy consent is off. Turn on 'I confirm that I may send this personal data "
                          "to Iterable' in the destination's settings to allow syncs.")
