"""Airbyte message I/O for the write path: raw stdin lines in, raw STATE dicts out.

The CDK's parser builds protocol objects per message and drops unknown keys such as the platform's
state `id`; this module reads lines with orjson and passes STATE messages through untouched.
"""

from __future__ import annotations

import gc
import os
import select
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

READ_SIZE = 1 << 20


class LineReader:
    """Yields chunks of complete input lines; an empty chunk means 'nothing new within the timeout'."""

    def __init__(self, stream: IO[bytes] | Any, timeout: float = 0.5) -> None:
        self.stream = stream
        self.timeout = timeout
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None

    def chunks(self) -> Iterator[list[bytes]]:
        """Lines in chunks; ends at EOF (a last line without newline is included)."""
        if self.fd is None:
            yield from self._chunks_from_iterable()
            return
        rest = b""
        fd = self.fd
        while True:
            ready, _, _ = select.select([fd], [], [], self.timeout)
            if not ready:
                yield []
                continue
            data = os.read(fd, READ_SIZE)
            if not data:
                if rest.strip():
                    yield [rest]
                return
            lines = data.split(b"\n")
            if rest:  # the unfinished line of the previous read (no copy of the whole read to join it)
                lines[0] = rest + lines[0]
            rest = lines.pop()
            yield lines

    def _chunks_from_iterable(self) -> Iterator[list[bytes]]:
        chunk: list[bytes] = []
        for line in self.stream:
            chunk.append(line.encode("utf-8") if isinstance(line, str) else line)
            if len(chunk) >= 1000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def dispatch(lines: list[bytes], on_record: Callable[[dict, int, float], None], on_state: Callable[[dict], None],
             on_status: Callable[[Any, Any, Any], None], on_problem: Callable[[str, str], None]) -> None:
    """Parse a chunk of lines and hand each message to its handler (the hot path).

    The cyclic garbage collector is paused while the chunk is handled (and resumed after it, also on errors).
    Per-record objects are freed by reference counting anyway, but every few hundred records the allocations
    would trigger a collection that walks the buffered rows, and the rows promoted to the oldest generation
    regularly trigger a full collection over every object of the process (the CDK's included): together about
    a quarter of a sync's CPU time. Between chunks (about 4,000 lines) collections run as usual.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        _dispatch(lines, on_record, on_state, on_status, on_problem)
    finally:
        if paused:
            gc.enable()


def _dispatch(lines: list[bytes], on_record: Callable[[dict, int, float], None], on_state: Callable[[dict], None],
              on_status: Callable[[Any, Any, Any], None], on_problem: Callable[[str, str], None]) -> None:
    now = time.monotonic()
    loads = orjson.loads
    for line in lines:
        if not line:
            continue
        try:
            message = loads(line)
        except orjson.JSONDecodeError:
            if not line.isspace():  # blank lines are skipped silently (checked only here, off the hot path)
                on_problem("malformed_json", f"a line of {len(line)} bytes is not valid JSON")
            continue
        if type(message) is not dict:
            on_problem("not_a_message", "a line is JSON but not an Airbyte message object")
            continue
        kind = message.get("type")
        if kind == "RECORD":
            record = message.get("record")
            if type(record) is dict:
                on_record(record, len(line), now)
            else:
                on_problem("malformed_record", "a RECORD message has no record object")
        elif kind == "STATE":
            on_state(message)
        elif kind == "TRACE":
            trace = message.get("trace")
            status = trace.get("stream_status") if type(trace) is dict else None
            if type(status) is dict:
                desc = status.get("stream_descriptor") or {}
                on_status(desc.get("namespace"), desc.get("name"), status.get("status"))
