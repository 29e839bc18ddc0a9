"""Airbyte messages of the write path: stdin lines in, records routed to the sync, STATE dicts echoed.

The CDK's parser builds protocol objects per message and drops unknown keys such as the platform's
state `id`; here lines are read with orjson and STATE messages pass through untouched, with only
`destinationStats` added.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from destination_iterable.config import IterableConfig
from destination_iterable.sync.pipeline import Interrupted, Pipeline
from destination_iterable.sync.sink import StreamSpec
from destination_iterable.sync.writer import SyncWriter

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


def route(items: list[bytes] | list[dict], pipeline: Pipeline, now: float) -> None:
    """Hand each message of a chunk (raw lines, or message dicts from the in-process API) to the pipeline."""
    for item in items:
        if type(item) is bytes:
            if not item or item.isspace():
                continue
            try:
                message = orjson.loads(item)
            except orjson.JSONDecodeError:
                pipeline.input_problem("malformed_json", f"a line of {len(item)} bytes is not valid JSON")
                continue
            size = len(item)
        else:
            message, size = item, 0
        if type(message) is not dict:
            pipeline.input_problem("not_a_message", "a line is JSON but not an Airbyte message object")
            continue
        kind = message.get("type")
        if kind == "RECORD":
            record = message.get("record")
            if type(record) is not dict:
                pipeline.input_problem("malformed_record", "a RECORD message has no record object")
                continue
            data = record.get("data")
            pipeline.on_record(record.get("namespace"), record.get("stream"), data,
                               size or len(orjson.dumps(data, default=str)), now)
        elif kind == "STATE":
            state = message.get("state")
            if type(state) is not dict:
                pipeline.input_problem("malformed_state", "a STATE message without a state object was ignored")
                continue
            pipeline.on_checkpoint(message, state_scope(state))
        elif kind == "TRACE":
            trace = message.get("trace")
            status = trace.get("stream_status") if type(trace) is dict else None
            if type(status) is dict:
                desc = status.get("stream_descriptor") or {}
                pipeline.on_stream_status(desc.get("namespace"), desc.get("name"), status.get("status"))


def state_scope(state: dict) -> tuple[Any, Any] | None:
    """(namespace, stream) of a per-stream STATE; None for a GLOBAL (or legacy) one, which covers every stream."""
    if state.get("type") == "STREAM" or ("stream" in state and "global" not in state):
        desc = (state.get("stream") or {}).get("stream_descriptor") or {}
        return (desc.get("namespace"), desc.get("name"))
    return None


def with_stats(message: dict, record_count: int, rejected_count: int = 0) -> dict:
    """The STATE message with `destinationStats` added (every other key kept as it came).

    `recordCount` counts the records delivered since the previous state of the scope, `rejectedRecordCount` those
    not delivered (the platform checks recordCount + rejectedRecordCount against the records it relayed).
    """
    message["state"]["destinationStats"] = {"recordCount": float(record_count),
                                            "rejectedRecordCount": float(rejected_count)}
    return message


def write_states(config: IterableConfig, specs: list[StreamSpec], chunks: Iterable[list[bytes] | list[dict]],
                 term: threading.Event | None = None, store: Any = None) -> Iterator[dict]:
    """Write all input to Iterable; yields each STATE message (with `destinationStats`) once it may be echoed.

    `store`: the rejected-record store (storage.RejectedRecordStore) or None.
    """
    out: list[dict] = []
    writer = SyncWriter(config, specs, lambda message, count, rejected: out.append(
        with_stats(message, count, rejected)), term, store=store)
    try:
        for chunk in chunks:
            if chunk:
                route(chunk, writer.pipeline, time.monotonic())
            writer.poll()
            yield from _drain(out)
        writer.finish()
        yield from _drain(out)
        writer.conclude()
    except Interrupted:
        error = writer.interrupted()
        yield from _drain(out)
        raise error from None
    except Exception:
        yield from _drain(out)  # states acknowledged before a failure are still echoed
        raise
    finally:
        writer.close()


def _drain(out: list[dict]) -> Iterator[dict]:
    while out:
        yield out.pop(0)
