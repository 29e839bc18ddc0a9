"""Memory-light mirror: which current members of a list were not written in this sync.

Identities written in the sync are kept as 8-byte hashes. The list's members are streamed from
`getUsers` into a temporary file (one identifier per line) and hashed; the members whose hash was not
seen are read back from the file in batches. A hash collision can only make us *keep* a member, never
remove one by mistake.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np


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
        return np.unique(np.frombuffer(self._hashes, dtype=np.int64)) if len(self._hashes) else np.empty(0, np.int64)


@dataclass
class MirrorPlan:
    """Result of comparing a list's members with the identities of this sync."""

    current_members: int
    to_remove: int
    _file: IO[bytes] | None = field(default=None, repr=False)
    _remove_mask: np.ndarray | None = field(default=None, repr=False)

    def removal_percent(self) -> float:
        """Share of the list that would be removed."""
        return 100.0 * self.to_remove / self.current_members if self.current_members else 0.0

    def iter_removals(self) -> Iterator[str]:
        """Identifiers to remove, in list order, read back from the temporary file."""
        if self._file is None or self._remove_mask is None or not self.to_remove:
            return
        self._file.seek(0)
        mask = self._remove_mask
        for index, raw in enumerate(self._file):
            if mask[index]:
                yield raw.decode("utf-8").rstrip("\n")

    def close(self) -> None:
        """Delete the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def plan_mirror(members: Iterable[str], seen: SeenSet) -> MirrorPlan:
    """Stream `members` (identifiers from getUsers) and find those not in `seen`."""
    spool = tempfile.TemporaryFile(prefix="iterable-mirror-")  # noqa: SIM115 - closed by MirrorPlan.close
    exact = array("q")
    folded = array("q")
    for member in members:
        spool.write(member.encode("utf-8") + b"\n")
        exact.append(hash(member))
        folded.append(hash(member.lower()))
    seen_sorted = seen.sorted_unique()
    exact_arr = np.frombuffer(exact, dtype=np.int64) if len(exact) else np.empty(0, np.int64)
    folded_arr = np.frombuffer(folded, dtype=np.int64) if len(folded) else np.empty(0, np.int64)
    keep = np.isin(exact_arr, seen_sorted, assume_unique=False) | np.isin(folded_arr, seen_sorted)
    remove_mask = ~keep
    return MirrorPlan(current_members=len(exact), to_remove=int(remove_mask.sum()), _file=spool,
                      _remove_mask=remove_mask)


def removal_row(identifier: str, by_user_id: bool) -> dict[str, str]:
    """An unsubscribe row for a getUsers line: emails contain '@' unless the list is read by userId."""
    if by_user_id and "@" not in identifier:
        return {"userId": identifier}
    if "@" in identifier:
        return {"email": identifier}
    return {"userId": identifier}
