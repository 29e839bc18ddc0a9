"""List directory: turns a list name into the id of one Iterable static list, never creating a duplicate."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from destination_iterable.errors import ConfigError, TransientError
from destination_iterable.iterable.client import IterableClient

logger = logging.getLogger("airbyte")

STATIC_LIST_TYPE = "Standard"
NEW_LIST_GRACE_SECONDS = 60.0  # how long a new list id may still be "invalid" (eventual consistency)
CREATE_ATTEMPTS = 6
PARALLEL_CREATES = 8  # lists created at once (each creation is one round trip; Iterable states no limit for it)


@dataclass
class ListHandle:
    """The list a stream writes to."""

    name: str
    list_id: int | None  # None only in a dry run for a list that would be created
    created: bool
    created_at: float | None = None  # monotonic time of creation by this run

    @property
    def recently_created(self) -> bool:
        """True while Iterable may not know the new id yet."""
        return self.created_at is not None and time.monotonic() - self.created_at < NEW_LIST_GRACE_SECONDS

    @property
    def label(self) -> str:
        """Human form, e.g. `'VIP customers' (id 1234)`."""
        return f"'{self.name}' (id {self.list_id if self.list_id is not None else 'new'})"


class ListDirectory:
    """Finds or creates lists by exact name. One instance per run, so a name resolves once."""

    def __init__(self, client: IterableClient, *, dry_run: bool = False) -> None:
        self.client = client
        self.dry_run = dry_run
        self._lists: list[dict[str, Any]] | None = None
        self._resolved: dict[str, ListHandle] = {}
        self._lock = threading.RLock()  # resolve() creates under it; resolve_all() creates outside it

    def _all_lists(self) -> list[dict[str, Any]]:
        if self._lists is None:
            self._lists = self.client.list_lists()
        return self._lists

    def resolve(self, name: str, description: str, *, stream: str) -> ListHandle:
        """Reuse the oldest Standard list named exactly `name`, else create one (or plan to, in a dry run)."""
        with self._lock:
            if name in self._resolved:
                return self._resolved[name]
            handle = self._find(name, stream) or self._create(name, description)
            self._resolved[name] = handle
            return handle

    def resolve_all(self, wanted: dict[str, tuple[str, str]]) -> dict[str, ListHandle]:
        """Resolve several distinct names ({name: (description, stream)}); the lists to create are created
        concurrently, so a first sync of many streams waits one round trip for them, not one per list."""
        with self._lock:
            found = {name: self._resolved.get(name) or self._find(name, stream)
                     for name, (_, stream) in wanted.items()}
        missing = [name for name, handle in found.items() if handle is None]
        if missing:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_CREATES, len(missing))) as pool:
                created = pool.map(lambda name: self._create(name, wanted[name][0]), missing)
                found.update(zip(missing, created, strict=True))
        with self._lock:
            for name, handle in found.items():
                self._resolved.setdefault(name, handle)  # type: ignore[arg-type]
            return {name: self._resolved[name] for name in wanted}

    def _find(self, name: str, stream: str) -> ListHandle | None:
        same_name = [entry for entry in self._all_lists() if entry.get("name") == name]
        static = [entry for entry in same_name if entry.get("listType", STATIC_LIST_TYPE) == STATIC_LIST_TYPE]
        if not static and same_name:
            kinds = sorted({str(entry.get("listType")) for entry in same_name})
            raise ConfigError(
                f"Stream '{stream}': the Iterable list named '{name}' is a {'/'.join(kinds)} list, and only "
                "static (Standard) lists can be written. Rename that list in Iterable or change "
                "'list_name_template'.", stream=stream)
        if not static:
            return None
        static.sort(key=lambda entry: (entry.get("createdAt") or 0, entry.get("id") or 0))
        chosen = static[0]
        if len(static) > 1:
            others = ", ".join(str(entry.get("id")) for entry in static[1:])
            logger.warning(f"Stream '{stream}': {len(static)} static lists are named '{name}'; using the oldest "
                           f"(id {chosen['id']}) and leaving the others (ids {others}) untouched.")
        return ListHandle(name=name, list_id=int(chosen["id"]), created=False)

    def _create(self, name: str, description: str) -> ListHandle:
        if self.dry_run:
            return ListHandle(name=name, list_id=None, created=True)
        list_id = self._create_once(name, description)
        with self._lock:
            self._all_lists().append({"id": list_id, "name": name, "listType": STATIC_LIST_TYPE})
        logger.info(f"Created Iterable static list '{name}' (id {list_id}).")
        return ListHandle(name=name, list_id=list_id, created=True, created_at=time.monotonic())

    def _create_once(self, name: str, description: str) -> int:
        """POST /api/lists is not idempotent: after a lost answer, look the name up before trying again."""
        attempts = 0
        started = time.monotonic()
        while True:
            attempts += 1
            try:
                return self.client.create_list(name, description, retry=False)
            except TransientError:
                wait = min(2.0 ** attempts, 10.0)
                spent = time.monotonic() - started
                if attempts >= CREATE_ATTEMPTS or spent + wait > self.client.retry.budget_seconds:
                    raise
            if self.client.stop.wait(wait):
                raise TransientError(f"Stopped while creating list '{name}'.")
            with self._lock:
                self._lists = None
                found = [e for e in self._all_lists() if e.get("name") == name
                         and e.get("listType", STATIC_LIST_TYPE) == STATIC_LIST_TYPE]
            if found:
                found.sort(key=lambda entry: (entry.get("createdAt") or 0, entry.get("id") or 0))
                logger.info(f"List '{name}' was created although Iterable's answer was lost; using it.")
                return int(found[0]["id"])

    def names_starting_with(self, prefix: str) -> list[dict[str, Any]]:
        """Lists whose name starts with `prefix` (used to find the connector's own mirror journals)."""
        return [entry for entry in self._all_lists() if str(entry.get("name", "")).startswith(prefix)]

    def forget(self, list_id: int) -> None:
        """Drop a deleted list from the cache."""
        self._all_lists()[:] = [entry for entry in self._all_lists() if entry.get("id") != list_id]
        self._resolved = {name: h for name, h in self._resolved.items() if h.list_id != list_id}


def render_list_name(template: str, stream: str, namespace: str | None) -> str:
    """Apply the list name template; an empty result is a configuration error."""
    name = template.format(stream=stream, namespace=namespace or "").strip()
    if not name:
        raise ConfigError(f"Stream '{stream}': 'list_name_template' ({template!r}) gives an empty list name. "
                          "Use a template that includes {stream}.", stream=stream)
    return name
