"""Memory-light mirror: which current members of a list were not written in this sync.

Identities written in the sync are kept as 8-byte hashes. The list's members are streamed from
`getUsers` and hashed in chunks; the members whose hash was not seen are spooled to a temporary file
and read back from it in batches. A hash collision can only make us *keep* a member, never
remove one by mistake.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np  # imported where used: only a mirror needs it (saves ~70 ms of every write's start-up)



class SeenSet:
    """Hashes of the identities (lowercased emails, exact userIds) written in this sync."""

    def __init__(self) -> None:
        self._hashes = array("q")

    def add(self, identity: str) -> None:
        """Remember one identity."""
        self._hashes.append(hash(identity))

    def __len__(self) -> int:
        return len(self._hashes)

    def sorted_unique(self) -> np.ndarray:
        """The hashes as a sorted, de-duplicated int64 array."""
        import numpy as np

        return np.unique(np.frombuffer(self._hashes, dtype=np.int64)) if len(self._hashes) else np.empty(0, np.int64)


CHUNK = 65536


@dataclass
class MirrorPlan:
    """Result of comparing a list's members with the identities of this sync."""

    current_members: int
    to_remove: int
    _file: IO[bytes] | None = field(default=None, repr=False)

    def removal_percent(self) -> float:
        """Share of the list that would be removed."""
        return 100.0 * self.to_remove / self.current_members if self.current_members else 0.0

    def iter_removals(self) -> Iterator[str]:
        """Identifiers to remove, in list order, read back from the temporary file."""
        if self._file is None or not self.to_remove:
            return
        self._file.seek(0)
        for raw in self._file:
            yield raw.decode("utf-8").rstrip("\n")

    def close(self) -> None:
        """Delete the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _unseen(chunk: list[str], seen_sorted: np.ndarray) -> list[str]:
    """Members of `chunk` whose exact and lowercased forms were both not seen."""
    import numpy as np

    if not len(seen_sorted):
        return chunk
    exact = np.fromiter((hash(m) for m in chunk), dtype=np.int64, count=len(chunk))
    folded = np.fromiter((hash(m.lower()) for m in chunk), dtype=np.int64, count=len(chunk))
    last = len(seen_sorted) - 1
    hit = seen_sorted[np.minimum(np.searchsorted(seen_sorted, exact), last)] == exact
    hit |= seen_sorted[np.minimum(np.searchsorted(seen_sorted, folded), last)] == folded
    return [m for m, keep in zip(chunk, hit.tolist(), strict=True) if not keep]


def plan_mirror(members: Iterable[str], seen: SeenSet) -> MirrorPlan:
    """Stream `members` (identifiers from getUsers); spool those not in `seen` to a temporary file.

    Memory stays O(seen + chunk): only the removals are kept, on disk.
    """
    seen_sorted = seen.sorted_unique()
    spool = tempfile.TemporaryFile(prefix="iterable-mirror-")  # noqa: SIM115 - closed by MirrorPlan.close
    total = removals = 0
    chunk: list[str] = []
    for member in members:
        chunk.append(member)
        if len(chunk) == CHUNK:
            total, removals = total + len(chunk), removals + _spool(_unseen(chunk, seen_sorted), spool)
            chunk = []
    if chunk:
        total, removals = total + len(chunk), removals + _spool(_unseen(chunk, seen_sorted), spool)
    return MirrorPlan(current_members=total, to_remove=removals, _file=spool)


def _spool(lines: list[str], spool: IO[bytes]) -> int:
    if lines:
        spool.write(("\n".join(lines) + "\n").encode("utf-8"))
    return len(lines)


def removal_row(identifier: str) -> dict[str, str]:
    """An unsubscribe row for a getUsers line: a line with '@' is an email, anything else a userId."""
    return {"email": identifier} if "@" in identifier else {"userId": identifier}
