"""A batch of subscriber rows kept as the JSON array it will be sent as."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload

import orjson


class EncodedRows:
    """The rows of one request, serialised once when the batch is cut (on the reader's thread).

    A batch may wait in memory for seconds (queued, parked, in flight). As one bytes object it costs a
    fraction of the memory of 1,000 row dicts, and freeing it touches one object instead of thousands of
    cold ones (measured: ~0.4 µs less CPU per record on the reader; the sender no longer serialises rows).
    Reading it like a list decodes it: only for rare paths (splitting a batch Iterable found too large,
    samples) and tests.
    """

    __slots__ = ("json", "count")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.json = orjson.dumps(rows)
        self.count = len(rows)

    def __len__(self) -> int:
        return self.count

    def decode(self) -> list[dict[str, Any]]:
        """The rows as dicts (a new list each time)."""
        return orjson.loads(self.json)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.decode())

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self.decode()[index]
