"""`check`: proves the key works and may write lists, in sentences a marketer understands. Never raises."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from destination_iterable.config import DATA_CENTER_URLS, IterableConfig, parse_config, require_consent
from destination_iterable.errors import (
    AuthError,
    ConfigError,
    IterableDestinationError,
    RetryBudgetExceeded,
    TransientError,
)
from destination_iterable.iterable.client import IterableClient

CHECK_RETRY_SECONDS = 20.0
CHECK_TIMEOUT_SECONDS = 15.0
OTHER_DC_URL_ENV = "ITERABLE_OTHER_DATA_CENTER_URL"  # test hook: where "the other data center" is


def check_connection(raw_config: Mapping[str, Any]) -> tuple[bool, str]:
    """-> (ok, message)."""
    try:
        config = parse_config(raw_config)
        require_consent(config)
        _check_key(config)
        return True, f"Connected to Iterable ({config.data_center} data center); the API key may write lists."
    except ConfigError as exc:
        return False, exc.message
    except RetryBudgetExceeded as exc:
        return False, (f"Could not reach Iterable at {_host(raw_config)} ({exc.problem}). Check the data center, "
                       "the API base URL and your network, then try again.")
    except TransientError as exc:
        return False, f"Could not reach Iterable at {_host(raw_config)}: {exc.message}"
    except IterableDestinationError as exc:
        return False, f"Iterable answered unexpectedly: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - check must never raise
        return False, f"The connection test failed unexpectedly ({type(exc).__name__})."


def _client(config: IterableConfig, base_url: str) -> IterableClient:
    return IterableClient(base_url, config.api_key,
                          retry_max_seconds=min(CHECK_RETRY_SECONDS, config.retry_max_seconds),
                          timeout_seconds=min(CHECK_TIMEOUT_SECONDS, config.request_timeout_seconds))


def _check_key(config: IterableConfig) -> None:
    client = _client(config, config.base_url)
    try:
        try:
            client.list_lists()
        except AuthError:
            if _works_in_other_data_center(config):
                raise ConfigError(
                    f"This API key belongs to a project in Iterable's {config.other_data_center} data center, but "
                    f"the destination is set to {config.data_center}. Change 'Data center' to "
                    f"{config.other_data_center}.") from None
            raise ConfigError("Iterable did not accept the API key. Check that it was copied completely and is "
                              "still enabled (Iterable > Integrations > API Keys).") from None
        try:
            client.probe_write_access()
        except AuthError:
            raise ConfigError("The API key can read lists but may not change them (it looks like a Read-only key). "
                              "Create a Server-side key in Iterable (Integrations > API Keys) and use it "
                              "here.") from None
    finally:
        client.close()


def _works_in_other_data_center(config: IterableConfig) -> bool:
    other_url = os.environ.get(OTHER_DC_URL_ENV) if config.api_base_url else DATA_CENTER_URLS[config.other_data_center]
    if not other_url:
        return False
    client = IterableClient(other_url, config.api_key, retry_max_seconds=5.0, timeout_seconds=10.0)
    try:
        client.list_lists()
        return True
    except IterableDestinationError:
        return False
    finally:
        client.close()


def _host(raw_config: Mapping[str, Any]) -> str:
    base = raw_config.get("api_base_url") if isinstance(raw_config, Mapping) else None
    if base:
        return str(base)
    dc = str(raw_config.get("data_center") or "US").upper() if isinstance(raw_config, Mapping) else "US"
    return DATA_CENTER_URLS.get(dc, DATA_CENTER_URLS["US"])
