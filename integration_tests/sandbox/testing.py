"""Small plain-HTTP helpers for tests that drive a sandbox through its /api routes."""

from __future__ import annotations

from typing import Any

import requests

from .server import SandboxServer

_FULL = object()


def api(server: SandboxServer, method: str, path: str, key: Any = _FULL, session: requests.Session | None = None,
        **kwargs: Any) -> requests.Response:
    """Send one /api request with the full key (or ``key``; None sends no key header)."""
    headers = dict(kwargs.pop("headers", None) or {})
    if key is _FULL:
        key = server.api_key
    if key is not None:
        headers["Api-Key"] = key
    sender = session or requests
    return sender.request(method, server.url + path, headers=headers, timeout=kwargs.pop("timeout", 15), **kwargs)


def create_list(server: SandboxServer, name: str = "segment", **kwargs: Any) -> int:
    """Create a list through the API; return its id."""
    resp = api(server, "POST", "/api/lists", json={"name": name, **kwargs})
    resp.raise_for_status()
    return resp.json()["listId"]


def subscribe(server: SandboxServer, list_id: int, subscribers: list[dict[str, Any]], **extra: Any) -> Any:
    """POST /api/lists/subscribe; return the parsed 200 body (raises on other statuses)."""
    resp = api(server, "POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers, **extra})
    resp.raise_for_status()
    return resp.json()


def unsubscribe(server: SandboxServer, list_id: int, subscribers: list[dict[str, Any]], **extra: Any) -> Any:
    """POST /api/lists/unsubscribe; return the parsed 200 body (raises on other statuses)."""
    resp = api(server, "POST", "/api/lists/unsubscribe",
               json={"listId": list_id, "subscribers": subscribers, **extra})
    resp.raise_for_status()
    return resp.json()
