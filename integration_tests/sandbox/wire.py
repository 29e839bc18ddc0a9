"""Transport-neutral request/reply records shared by the HTTP layer and the route handlers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    body: bytes = b""
    too_large: bool = False
    client_ip: str = "127.0.0.1"


@dataclass
class Reply:
    """What to send back: a body, a stream of chunks, or nothing at all (``drop``)."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    chunks: Iterator[bytes] | None = None
    drop: bool = False


def json_reply(status: int, payload: Any) -> Reply:
    """A JSON reply."""
    return Reply(status, orjson.dumps(payload))


def iterable_error(status: int, msg: str, code: str, params: dict[str, Any] | None = None) -> Reply:
    """An ``IterableApiResponse``-shaped error."""
    return json_reply(status, {"msg": msg, "code": code, "params": params})
