"""Per-stream sink: buffers one segment's membership changes and turns them into batches (jobs)."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from destination_iterable.errors import (
    AuthError,
    BadRequestError,
    BatchTooLargeError,
    ConfigError,
    InvalidListIdError,
    RetryBudgetExceeded,
    TransientError,
)
from destination_iterable.iterable.client import BulkResult, IterableClient
from destination_iterable.iterable.limits import BATCH_BYTES_LIMIT, MAX_BATCH_ROWS
from destination_iterable.iterable.lists import ListHandle
from destination_iterable.iterable.rows import EncodedRows
from destination_iterable.members.subscriber import NOT_AN_OBJECT, SubscriberBuilder
from destination_iterable.sync.mirror import SeenSet
from destination_iterable.sync.ordering import RecentMembers
from destination_iterable.sync.report import BUCKET_REASONS, ListReport

logger = logging.getLogger("airbyte")

ADD, REMOVE = "add", "remove"
CDC_DELETED_AT = "_ab_cdc_deleted_at"
TOO_LARGE_BUCKET = "recordTooLarge"
_job_ids = itertools.count(1)
REASON_MESSAGES = {
    "invalid_email": "The email address is not valid.",
    "invalid_user_id": "The userId is not valid.",
    "missing_identifier": "The record has no email and no userId.",
    "record_not_an_object": "The record's data is not a JSON object.",
    "record_too_large": "The record is larger than Iterable accepts for one user.",
    "invalid_data": "Iterable refused a profile field (e.g. a value whose type differs from the field's type).",
    "conflict": "Iterable refused the row: the email and userId belong to different users.",
    "gdpr_forgotten": "Iterable refused the row: the user was forgotten (GDPR).",
    "not_found": "Iterable refused the row: the user does not exist (update mode adds existing users only).",
}


def reject_message(reason: str) -> str:
    """A sentence for a rejected record's `rejected_message`."""
    return REASON_MESSAGES.get(reason, f"Not delivered ({reason}).")


@dataclass(frozen=True)
class StreamSpec:
    """What the catalog says about one stream."""

    name: str
    namespace: str | None
    mode: str
    generation_id: int | None = None
    minimum_generation_id: int | None = None
    list_name: str | None = None  # data activation: the chosen list (None: the 'list_name_template' list)
    identifier: str | None = None  # data activation: the matching key, "email" or "userId"

    @property
    def activation(self) -> bool:
        """True for a data-activation stream (its identifier is the matching key; every field is a profile field)."""
        return self.identifier is not None

    @property
    def key(self) -> tuple[str | None, str]:
        """(namespace, name): how records and states name the stream."""
        return (self.namespace, self.name)

    @property
    def mirrors(self) -> bool:
        """True when members who left the segment are removed once the stream completes.

        Overwrite with a truncating refresh (minimum_generation_id == generation_id, not 0/null) mirrors;
        minimum_generation_id 0 or null merges, as Airbyte's refresh semantics say.
        """
        return self.mode == "overwrite" and bool(self.minimum_generation_id)


class Job:
    """One subscribe or unsubscribe request's worth of rows for one list."""

    __slots__ = ("id", "sink", "kind", "rows", "keys", "min_seq", "by_mirror", "result", "error", "seqs")

    def __init__(self, sink: StreamSink, kind: str, rows: list[dict[str, Any]] | EncodedRows, keys: list[str],
                 min_seq: int, by_mirror: bool = False, seqs: list[int] | None = None) -> None:
        self.id = next(_job_ids)
        self.sink, self.kind, self.rows, self.keys = sink, kind, rows, keys
        self.min_seq, self.by_mirror = min_seq, by_mirror
        self.seqs = seqs  # each row's record sequence number (records of the stream); None for mirror/journal rows
        self.result: BulkResult | None = None
        self.error: BaseException | None = None

    def seal(self) -> None:
        """Serialise the rows now, before the job waits in a queue (see `EncodedRows`)."""
        if type(self.rows) is list:
            self.rows = EncodedRows(self.rows)

    def run(self) -> Job:
        """Send the rows (on a worker thread); never raises, the outcome is kept on the job."""
        try:
            self.result = self.sink.send(self.kind, self.rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        return self


class StreamSink:
    """Buffer, flush and count one stream's changes to its list."""

    def __init__(self, spec: StreamSpec, handle: ListHandle, report: ListReport, builder: SubscriberBuilder, *,
                 client: IterableClient | None, dry_run: bool, update_existing_users_only: bool,
                 stop: threading.Event) -> None:
        self.spec, self.handle, self.report, self.builder = spec, handle, report, builder
        self.client = client
        self.dry_run = dry_run
        self.update_existing_users_only = update_existing_users_only
        self.stop = stop
        self.soft_delete = spec.mode == "soft_delete"
        self.seen: SeenSet | None = SeenSet() if spec.mirrors else None
        self.complete = False
        # key -> the add row itself, or (REMOVE, row) for a removal (no tuple per added member)
        self.buffer: dict[str, dict[str, Any] | tuple[str, dict[str, Any]]] = {}
        self.first_seq = -1
        self.first_time = 0.0
        self.approx_bytes = 0
        self._removes = 0  # remove entries put in the buffer since the last take_jobs (may over-count)
        self.recent_members = RecentMembers()  # the pipeline's record of which job touched which member
        self.state_mark = 0  # report.records_read at this stream's last STATE (for destinationStats)
        self.seqs: dict[str, int] = {}  # buffer key -> sequence number of the record that wrote it
        self.held_count = 0  # buffered members held back at the last cut: the buffer may hold that many more
        self.rejected_seqs: list[int] = []  # records not delivered, not yet counted in an echoed STATE
        self.store: Any = None  # the rejected-record store (storage.RejectedRecordStore), when configured

    def _skip(self, reason: str, seq: int, data: Any) -> None:
        """A record not sent (local check): counted, and kept in the rejected-record store when there is one."""
        self.report.skip(reason)
        self.report.rejected_records += 1
        self.rejected_seqs.append(seq)
        if self.store is not None:
            self._store(data, reason, self._field(reason))

    def _store(self, record: Any, reason: str, field: str | None = None) -> None:
        try:
            self.store.add(self.spec.namespace, self.spec.name, record, reason, reject_message(reason), field=field)
        except TransientError as exc:  # StorageError: the record stays buffered; the flush before a STATE retries
            logger.warning(f"Stream '{self.spec.name}': rejected records could not be uploaded yet ({exc.message}).")

    def _field(self, reason: str) -> str | None:
        if reason == "invalid_email" and self.builder.email_path:
            return ".".join(map(str, self.builder.email_path))
        if reason == "invalid_user_id" and self.builder.user_id_path:
            return ".".join(map(str, self.builder.user_id_path))
        return None

    # ------------------------------------------------------------ main thread
    def add(self, data: Any, seq: int, size: int, now: float) -> bool:
        """Take one record; returns True when the buffer should be flushed now."""
        report = self.report
        report.records_read += 1
        if not isinstance(data, dict):
            self._skip(NOT_AN_OBJECT, seq, data)
            return False
        email, user_id, reason = self.builder.identity(data)
        if reason is not None:
            self._skip(reason, seq, data)
            return False
        if self.soft_delete or data.get(CDC_DELETED_AT) is not None:
            entry: dict[str, Any] | tuple[str, dict[str, Any]] = (REMOVE, SubscriberBuilder.remove_row(email, user_id))
            self._removes += 1
        else:
            row, reason = self.builder.add_row(email, user_id, data, size)
            if row is None:
                self._skip(reason or "invalid_record", seq, data)
                return False
            entry = row
        if self.seen is not None:  # members this sync added or deleted are never the mirror's to remove
            for identifier in (email, user_id):
                if identifier is not None:
                    self.seen.add(identifier)
        key = email if email is not None else "\x00" + str(user_id)
        if not self.buffer:
            self.first_seq, self.first_time = seq, now
        previous = self.buffer.get(key)
        if isinstance(previous, dict) and isinstance(entry, dict) and "dataFields" in previous:
            merged = dict(previous["dataFields"])  # add after add: later fields win, others stay
            merged.update(entry.get("dataFields") or {})
            entry["dataFields"] = merged
        self.buffer[key] = entry  # a later change of a buffered member replaces it (order across batches: pipeline)
        self.seqs[key] = seq  # same key order as the buffer
        self.approx_bytes += size
        return len(self.buffer) >= MAX_BATCH_ROWS + self.held_count or self.approx_bytes >= BATCH_BYTES_LIMIT

    def take_jobs(self, held: set[str] | None = None, now: float = 0.0, when_full: bool = False) -> list[Job]:
        """Cut the buffer into at most one add job and one remove job (disjoint members) of up to 1,000 rows.

        Members in `held` (an earlier batch of this list that touches them is still in flight) stay buffered for
        a later batch, so one member's changes reach Iterable in input order while the rest goes now. For a cut
        because the buffer is full (`when_full`), the buffer first grows by the held members, so that batches
        stay full: nothing is cut until 1,000 rows can go (or the byte bound is reached).
        """
        buffer, seqs = self.buffer, self.seqs
        if not buffer:
            return []
        if not held and len(buffer) <= MAX_BATCH_ROWS:  # the usual case: the whole buffer goes
            taken, taken_seqs = buffer, seqs
            kept: dict[str, dict[str, Any] | tuple[str, dict[str, Any]]] = {}
            kept_seqs: dict[str, int] = {}
            first_seq = self.first_seq
        else:
            held = held or set()
            room = len(buffer) - len(held)
            if room <= 0 or (when_full and room < MAX_BATCH_ROWS and self.approx_bytes < BATCH_BYTES_LIMIT):
                self.held_count = len(held)  # add() reports full again once the held members are extra
                return []
            taken, kept = {}, {}
            for key, entry in buffer.items():
                if key in held or len(taken) >= MAX_BATCH_ROWS:
                    kept[key] = entry
                else:
                    taken[key] = entry
            taken_seqs = {key: seqs[key] for key in taken}
            kept_seqs = {key: seqs[key] for key in kept}
            first_seq = min(taken_seqs.values())
        jobs = []
        if not self._removes:  # adds only (the usual case): no per-row sorting
            jobs.append(Job(self, ADD, list(taken.values()), list(taken), first_seq,  # type: ignore[arg-type]
                            seqs=list(taken_seqs.values())))
        else:
            adds: list[dict[str, Any]] = []
            add_keys: list[str] = []
            removes: list[dict[str, Any]] = []
            remove_keys: list[str] = []
            for key, entry in taken.items():
                if type(entry) is dict:
                    adds.append(entry)
                    add_keys.append(key)
                else:
                    removes.append(entry[1])
                    remove_keys.append(key)
            if removes:
                jobs.append(Job(self, REMOVE, removes, remove_keys, first_seq,
                                seqs=[taken_seqs[k] for k in remove_keys]))
            if adds:
                jobs.append(Job(self, ADD, adds, add_keys, first_seq, seqs=[taken_seqs[k] for k in add_keys]))
        self.approx_bytes = self.approx_bytes * len(kept) // len(buffer)
        self.buffer, self.seqs = kept, kept_seqs
        self.held_count = len(held) if held else 0
        self._removes = sum(1 for entry in kept.values() if type(entry) is not dict) if kept else 0
        self.first_seq = min(kept_seqs.values()) if kept else -1
        self.first_time = now  # what stays starts the next batch (its age counts from this cut)
        return jobs

    def apply(self, job: Job) -> None:
        """Fold a finished job's per-row outcome into the report (main thread)."""
        result = job.result
        if result is None:
            return
        failed = dict(result.failed)
        if self.dry_run:
            if job.kind == ADD:
                self.report.add_rows_sent += len(job.rows)
            elif job.by_mirror:
                self.report.removed_by_mirror += len(job.rows)
            else:
                self.report.removed_by_delete += len(job.rows)
            return
        self.report.record_bulk(job.kind, len(job.rows), result.success_count, failed, by_mirror=job.by_mirror)
        if failed and job.seqs is not None:
            self._refused(job, failed)

    def _refused(self, job: Job, failed: dict[str, list[str]]) -> None:
        """Rows Iterable refused: each one's record is not delivered (counted against its own STATE, stored).

        Iterable names a refused row by its email or userId only; the stored record is the row as it was sent
        (the identifier plus its dataFields). An identifier that matches no row of the job (not expected) is
        counted at the job's first record.
        """
        rows = job.rows.decode() if isinstance(job.rows, EncodedRows) else job.rows
        index: dict[str, int] = {}
        for i, row in enumerate(rows):
            for key in ("email", "userId"):
                value = row.get(key)
                if value is not None:
                    index.setdefault(str(value), i)
        counted: set[int] = set()
        for bucket, ids in failed.items():
            reason = BUCKET_REASONS.get(bucket, bucket)
            if job.kind == REMOVE and reason == "not_found":
                continue  # not a member: the removal is a no-op, not a rejection
            for ident in ids:
                i = index.get(str(ident))
                if i is None:
                    i = index.get(str(ident).lower())
                if i is not None and i in counted:
                    continue
                if i is not None:
                    counted.add(i)
                self.report.rejected_records += 1
                self.rejected_seqs.append(job.seqs[i] if i is not None and job.seqs else job.min_seq)
                if self.store is not None:
                    row = rows[i] if i is not None else {}
                    record = {k: v for k, v in row.items() if k != "dataFields"} or {"identifier": ident}
                    record.update(row.get("dataFields") or {})
                    self._store(record, reason)

    # ------------------------------------------------------------ worker threads
    def send(self, kind: str, rows: list[dict[str, Any]] | EncodedRows) -> BulkResult:
        """Send rows to the list, splitting oversized batches and waiting out a new list's id."""
        if self.dry_run or self.client is None:
            return BulkResult(success_count=len(rows))
        delay = 1.0
        started = time.monotonic()
        while True:
            try:
                return self._send_split(kind, rows)
            except InvalidListIdError:
                waited = time.monotonic() - started
                if self.handle.recently_created and waited + delay > self.client.retry.budget_seconds:
                    raise TransientError(
                        f"Stream '{self.spec.name}': Iterable still does not know the new list {self.handle.label} "
                        f"after {waited:.0f} s (retry budget 'retry_max_seconds'); the next attempt will use it.",
                        stream=self.spec.name) from None
                if not self.handle.recently_created:
                    raise ConfigError(
                        f"Stream '{self.spec.name}': Iterable list {self.handle.label} no longer exists (it was "
                        "probably deleted in Iterable during the sync). Members sent to it before are gone with "
                        "it; run the sync again (a full refresh restores every member) and the list is "
                        "recreated.", stream=self.spec.name) from None
                if self.client.stop.wait(delay + random.uniform(0, 0.5)):  # noqa: S311
                    raise TransientError("Stopped while waiting for a new list.", stream=self.spec.name) from None
                delay = min(delay * 2, 10.0)
            except AuthError as exc:
                raise ConfigError(f"Stream '{self.spec.name}': Iterable refused the API key ({exc.message}). "
                                  "Use a Server-side key with list write access.", stream=self.spec.name) from None
            except BadRequestError as exc:
                raise ConfigError(f"Stream '{self.spec.name}': Iterable rejected a {kind} request for list "
                                  f"{self.handle.label}: {exc.message}", stream=self.spec.name) from None
            except RetryBudgetExceeded as exc:
                raise TransientError(f"Stream '{self.spec.name}': {exc.message}", stream=self.spec.name) from None

    def _send_split(self, kind: str, rows: list[dict[str, Any]] | EncodedRows) -> BulkResult:
        assert self.client is not None and self.handle.list_id is not None
        try:
            if kind == ADD:
                return self.client.subscribe(self.handle.list_id, rows, stream=self.spec.name,
                                             update_existing_users_only=self.update_existing_users_only)
            return self.client.unsubscribe(self.handle.list_id, rows, stream=self.spec.name)
        except BatchTooLargeError:
            if len(rows) == 1:
                ident = rows[0].get("email") or rows[0].get("userId") or ""
                return BulkResult(fail_count=1, failed={TOO_LARGE_BUCKET: [str(ident)]})
            rows = rows.decode() if isinstance(rows, EncodedRows) else rows
            half = len(rows) // 2
            result = self._send_split(kind, rows[:half])
            result.merge(self._send_split(kind, rows[half:]))
            return result
