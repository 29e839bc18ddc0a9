"""The write pipeline: routes records to sinks, runs batches on a send pool, echoes STATEs in order.

STATE rule: every record gets a sequence number; a STATE that arrived after record n is echoed once no
record numbered below n is still buffered or in flight (skipped records are settled at once).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from destination_iterable.errors import ConfigError, IterableDestinationError, TransientError
from destination_iterable.iterable.client import IterableClient
from destination_iterable.iterable.limits import MAX_BATCH_ROWS
from destination_iterable.sync.mirror import plan_mirror, removal_row
from destination_iterable.sync.report import Progress, log_summary
from destination_iterable.sync.sink import REMOVE, Job, StreamSink

logger = logging.getLogger("airbyte")

StreamKey = tuple[Any, Any]
MAX_SIZE_LOOKUPS = 5  # GET /lists/{id}/size allows 5 requests a minute per project
SIZE_WAIT_SECONDS = 5.0  # a reused list's first write waits at most this long for its size (one round trip)
WAIT_SLICE = 0.5
PENDING_RESERVE = 8  # jobs queued beyond those the rate controller lets run at once
IDENTITY_KEYS = ("email", "userId")


@dataclass
class Journal:
    """A mirror stream's journal list: every change of this generation, so a resumed attempt knows them too."""

    sink: StreamSink
    resumed: bool  # the journal existed before this attempt: an earlier attempt wrote part of the stream


class Interrupted(Exception):
    """SIGTERM arrived while the pipeline was waiting."""


class Pipeline:
    """Owns the sinks and the send pool for one write run (all methods are called from one thread)."""

    def __init__(self, sinks: list[StreamSink], *, client: IterableClient | None,
                 emit: Callable[[Any, int, int], None], stop: threading.Event, term: threading.Event, dry_run: bool,
                 max_age: float, progress_interval: float, mirror_max_removal_percent: float, prefer_user_id: bool,
                 workers: int = 32, journals: dict[StreamKey, Journal] | None = None, store: Any = None) -> None:
        self.sinks: dict[StreamKey, StreamSink] = {s.spec.key: s for s in sinks}
        self.store = store  # storage.RejectedRecordStore or None: flushed before a STATE is echoed
        for sink in sinks:
            sink.store = store
        self.journals: dict[StreamKey, Journal] = journals or {}
        self._by_name: dict[str, StreamSink] = {s.spec.name: s for s in sinks}
        self.client = client
        self.emit = emit
        self.stop = stop
        self.term = term
        self.dry_run = dry_run
        self.max_age = max_age
        self.valve = mirror_max_removal_percent
        self.prefer_user_id = prefer_user_id
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iterable-send")
        self._size_reads: dict[StreamKey, Future[int | None]] = {}
        self._late_sizes: set[StreamKey] = set()  # lists written before their size answer came (size unknown)
        self._read_sizes_before()
        self.done: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.in_flight: dict[int, Job] = {}  # queued, parked or running
        self.parked: dict[int, tuple[Job, set[int]]] = {}  # waiting for earlier jobs touching the same members
        self.max_pending = max(4, workers * 2)
        # (seq, token, records since the previous checkpoint of the scope, scope)
        self.pending_states: deque[tuple[int, Any, int, StreamKey | None]] = deque()
        self.emitted_records = 0  # sums of the recordCount / rejectedRecordCount handed to `emit`
        self.emitted_rejected = 0
        self.seq = 0
        self.global_mark = 0  # self.seq at the last global STATE (records are numbered from 0)
        self.states_received = 0
        self.states_emitted = 0
        self.failure: BaseException | None = None
        self.failed_seq = math.inf
        self.stream_errors: list[IterableDestinationError] = []
        self.input_problems: Counter = Counter()
        self.progress = Progress(progress_interval)
        self._summarized = False

    # ------------------------------------------------------------ input
    def find_sink(self, namespace: Any, stream: Any) -> StreamSink | None:
        """The sink of a stream; a missing namespace matches the stream's only sink of that name."""
        if not isinstance(stream, str) or not (namespace is None or isinstance(namespace, str)):
            return None
        sink = self.sinks.get((namespace, stream))
        if sink is None:
            sink = self._by_name.get(stream)
            if sink is not None and sink.spec.namespace is not None and namespace is not None:
                return None
        return sink

    def on_record(self, namespace: Any, stream: Any, data: Any, size: int, now: float) -> None:
        """Give one record's data to its stream's sink; flush the sink when its batch is full."""
        sink = self.find_sink(namespace, stream)
        if sink is None:
            self.input_problem("record_for_unknown_stream", f"a record for stream {stream!r}, which is not "
                                "in the configured catalog, was skipped")
            return
        seq = self.seq
        self.seq = seq + 1
        if sink.add(data, seq, size, now):
            self.flush(sink, when_full=True)

    def on_checkpoint(self, token: Any, stream: StreamKey | None) -> None:
        """Queue a checkpoint (a STATE) of one stream, or of all streams when `stream` is None.

        It is handed to `emit` with its counts (records delivered, records rejected) once every record before
        it is acknowledged.
        """
        self.states_received += 1
        self.pending_states.append((self.seq, token, self._count_for(stream), stream))
        self.emit_ready()

    def _count_for(self, stream: StreamKey | None) -> int:
        """Records since the previous checkpoint of the same scope (its stream, or all streams)."""
        if stream is not None:
            sink = self.find_sink(*stream)
            if sink is None:
                return 0
            read = sink.report.records_read
            count, sink.state_mark = read - sink.state_mark, read
            return count
        count, self.global_mark = self.seq - self.global_mark, self.seq
        for sink in self.sinks.values():
            sink.state_mark = sink.report.records_read
        return count

    def on_stream_status(self, namespace: Any, name: Any, status: Any) -> None:
        """Remember which streams the source declared complete."""
        sink = self.find_sink(namespace, name)
        if sink is None:
            return
        if status == "COMPLETE":
            sink.complete = True
        elif status == "INCOMPLETE":
            sink.complete = False

    def input_problem(self, reason: str, message: str) -> None:
        """Count an input line or message that could not be used (logged for its first 3 cases)."""
        self.input_problems[reason] += 1
        if self.input_problems[reason] <= 3:
            logger.warning(f"Input: {message} (skipped and counted as {reason}).")

    # ------------------------------------------------------------ batching
    def flush(self, sink: StreamSink, when_full: bool = False, whole: bool = False) -> bool:
        """Send what the sink has buffered (and, for a mirror, the same changes to its journal).

        Members that a batch of the same list still in flight touches stay buffered for the next batch, so
        their changes keep input order without holding back the rest. When they are most of the buffer (the
        same members changing again and again), the whole batch goes and waits in `submit` instead, so the
        buffer never stays full. `whole` (the last batches): send nothing while any member is held, rather
        than the batch in pieces. Returns False when it sent nothing for that reason.
        """
        journal = self.journals.get(sink.spec.key) if self.journals else None
        held = sink.recent_members.held_back(sink.buffer.keys(), self.in_flight) if self.in_flight else None
        if held and whole:
            return False
        if held and 2 * len(held) > len(sink.buffer):
            held = None
        for job in sink.take_jobs(held, time.monotonic(), when_full):
            copy = None
            if journal is not None:
                rows = [{k: v for k, v in row.items() if k in IDENTITY_KEYS} for row in job.rows]
                copy = Job(journal.sink, job.kind, rows, job.keys, job.min_seq)
            self.submit(job)
            if copy is not None:
                self.submit(copy)
        return True

    def submit(self, job: Job) -> None:
        """Queue a job; it starts once no earlier unfinished job of the same list touches the same members.

        Such a job is parked (not blocking the reader) and started when the jobs it waits for finish, so
        changes to one member keep their input order.
        """
        job.seal()
        deps = job.sink.recent_members.record(job.keys, job.id, self._oldest_in_flight)
        while len(self.in_flight) >= self._pending_bound():
            self._wait_some()
        self.in_flight[job.id] = job
        deps = {dep for dep in deps if dep in self.in_flight and dep != job.id}
        if deps:
            self.parked[job.id] = (job, deps)
        else:
            self.executor.submit(self._run, job)

    def _pending_bound(self) -> int:
        """Jobs that may be queued, parked or running: what the rate controller lets run, plus a reserve.

        Queued rows wait in memory either way; fewer of them keep the reader's working set small (measured:
        ~0.4 µs less CPU per record with 8 instead of 64 at a low rate).
        """
        if self.client is None:
            return self.max_pending
        return max(4, min(self.max_pending, self.client.controller.in_flight_limit + PENDING_RESERVE))

    def _oldest_in_flight(self) -> int | None:
        return min(self.in_flight, default=None)  # job ids grow with submission order

    def _wait_some(self) -> None:
        """Block until a job finishes, staying responsive to SIGTERM."""
        self._collect(block=True, timeout=WAIT_SLICE)
        self._maybe_progress()
        if self.term.is_set():
            raise Interrupted

    def _run(self, job: Job) -> None:
        key = job.sink.spec.key
        size_read = self._size_reads.get(key)
        # The list's size "before the sync" is answered before its first write. The read was started before
        # any job on this FIFO pool, so it is running or done; a slow answer no longer counts.
        if size_read is not None and not wait((size_read,), timeout=SIZE_WAIT_SECONDS).done:
            self._late_sizes.add(key)
        job.run()
        self.done.put(job)

    def _collect(self, block: bool, timeout: float | None = None) -> bool:
        if not block and not self.done.qsize():
            return False
        try:
            job = self.done.get(block, timeout)
        except queue.Empty:
            return False
        self._finish(job)
        while True:
            try:
                self._finish(self.done.get_nowait())
            except queue.Empty:
                return True

    def _finish(self, job: Job) -> None:
        self.in_flight.pop(job.id, None)  # its members stay in sink.recent_members until a rotation drops them
        if self.parked:
            self._release_parked(job.id)
        if job.error is not None:
            if self.failure is None:
                self.failure = job.error
            self.failed_seq = min(self.failed_seq, job.min_seq)
            return
        job.sink.apply(job)

    def _release_parked(self, finished: int) -> None:
        ready = []
        for job_id, (_, deps) in self.parked.items():
            deps.discard(finished)
            if not deps:
                ready.append(job_id)
        for job_id in ready:
            job, _ = self.parked.pop(job_id)
            self.executor.submit(self._run, job)

    def poll(self, now: float) -> None:
        """Collect finished jobs, flush old buffers, echo ready states, log progress."""
        self._collect(block=False)
        for sink in self.sinks.values():
            if sink.buffer and now - sink.first_time >= self.max_age:
                self.flush(sink)
        self.emit_ready()
        self._maybe_progress(now)

    def _maybe_progress(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.progress.due(now):
            self._log_progress(now)

    def _log_progress(self, now: float) -> None:
        requests = self.client.stats["requests"] if self.client else 0
        target = self.client.controller.snapshot().get("target_rps", 0.0) if self.client else 0.0
        self.progress.log(now, [s.report for s in self.sinks.values()], requests, float(target))

    def emit_ready(self) -> None:
        """Echo, in order, every queued STATE whose earlier records are all acknowledged."""
        if not self.pending_states:
            return
        low = self._lowest_outstanding()
        pending = self.pending_states
        flushed = self.store is None or self.dry_run
        while pending and pending[0][0] <= low and pending[0][0] <= self.failed_seq:
            if not flushed:  # the rejected records these states count must be stored before they are echoed
                try:
                    self.store.flush()
                except TransientError as exc:
                    self._storage_failed(exc)
                    return
                flushed = True
            seq, token, count, scope = pending.popleft()
            rejected = self._rejected_before(seq, scope)
            if not self.dry_run:
                accepted = max(0, count - rejected)
                self.emit(token, accepted, rejected)
                self.states_emitted += 1
                self.emitted_records += accepted
                self.emitted_rejected += rejected

    def _rejected_before(self, seq: int, scope: StreamKey | None) -> int:
        """Rejected records numbered below `seq` of the scope (one stream, or all) not counted by earlier states.

        Exact: a state is echoed only when every job holding a record before it has finished, so every reject
        of those records is known by then.
        """
        sinks = [self.find_sink(*scope)] if scope is not None else list(self.sinks.values())
        total = 0
        for sink in sinks:
            if sink is None or not sink.rejected_seqs:
                continue
            later = [s for s in sink.rejected_seqs if s >= seq]
            total += len(sink.rejected_seqs) - len(later)
            sink.rejected_seqs = later
        return total

    def _storage_failed(self, exc: TransientError) -> None:
        """Rejected records could not be stored: echo no further state, fail the sync (transient)."""
        logger.error(f"Rejected records could not be stored ({exc.message}); no further state is echoed, so the "
                     "next attempt resumes from the last echoed state.")
        if self.failure is None:
            self.failure = exc
        self.failed_seq = -1

    def _lowest_outstanding(self) -> float:
        low = math.inf
        for sink in self.sinks.values():
            if sink.buffer and sink.first_seq < low:
                low = sink.first_seq
        for job in self.in_flight.values():
            if job.min_seq < low:
                low = job.min_seq
        return low

    def wait_all(self, timeout: float | None = None, interruptible: bool = True) -> bool:
        """Wait for every job in flight; False if `timeout` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.in_flight:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._collect(block=True, timeout=min(left, WAIT_SLICE) if left is not None else WAIT_SLICE)
            self._maybe_progress()
            if interruptible and self.term.is_set():
                raise Interrupted
        return True

    # ------------------------------------------------------------ end of input
    def finish(self) -> None:
        """Flush everything, echo the remaining states, mirror completed streams (then call `conclude`)."""
        self._flush_last_batches()
        self.wait_all()
        self.emit_ready()
        self._raise_failure()
        for sink in self.sinks.values():
            if sink.spec.mirrors:
                self._mirror(sink)
        self.wait_all()
        self.emit_ready()
        self._raise_failure()

    def _flush_last_batches(self) -> None:
        """Send every sink's last batch whole: one whose members a batch in flight still touches waits for it
        (a round trip at most) rather than going in pieces, which would cost requests."""
        waiting = [sink for sink in self.sinks.values() if sink.buffer]
        while waiting:
            progress = [self.flush(sink, whole=True) for sink in waiting]
            waiting = [sink for sink in waiting if sink.buffer]
            if waiting and not any(progress):
                self._wait_some()

    def conclude(self) -> None:
        """Log the summary (with the list sizes read at the start), and fail for any stream that could not finish
        (e.g. the valve)."""
        self._drop_journals()
        self._collect_sizes()
        self.close()
        self._close_store()
        self._summary()
        if self.stream_errors:
            raise self.stream_errors[0]

    def abort(self, grace: float) -> None:
        """Stop: finish or abandon the requests in flight within `grace` seconds, echo what was acknowledged."""
        if not self.wait_all(timeout=grace, interruptible=False):
            self.stop.set()
            self.wait_all(timeout=min(10.0, grace), interruptible=False)
        for sink in self.sinks.values():
            if sink.buffer:
                self.failed_seq = min(self.failed_seq, sink.first_seq)
        for job in self.in_flight.values():
            self.failed_seq = min(self.failed_seq, job.min_seq)
        self.emit_ready()
        self.close()
        self._summary()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            self.close()
            self._summary()
            raise self.failure

    def _mirror(self, sink: StreamSink) -> None:
        report = sink.report
        if not sink.complete:
            report.mirror = "skipped: stream not known to be complete"
            logger.warning(f"Stream '{sink.spec.name}': no COMPLETE status was received for it (the source may have "
                           "failed, the input may have been cut off, or the caller sends no stream statuses), so "
                           f"nobody was removed from list {sink.handle.label}.")
            return
        if sink.handle.list_id is None:
            report.mirror = "planned: new list, nothing to remove"
            return
        assert self.client is not None and sink.seen is not None
        # getUsers must name members the way this stream identifies them: a data-activation stream by its
        # matching key, a classic one by the settings (userId only when no email field is set)
        prefer_user_id = sink.spec.identifier == "userId" if sink.spec.activation else self.prefer_user_id
        journal = self.journals.get(sink.spec.key)
        if journal is not None and journal.resumed and journal.sink.handle.list_id is not None:
            logger.info(f"Stream '{sink.spec.name}': this attempt resumed an earlier one; its members are read from "
                        f"the journal list {journal.sink.handle.label} too.")
            for identifier in self.client.iter_list_users(journal.sink.handle.list_id,
                                                          prefer_user_id=prefer_user_id, stream=sink.spec.name):
                sink.seen.add(identifier)
        members = self.client.iter_list_users(sink.handle.list_id, prefer_user_id=prefer_user_id,
                                              stream=sink.spec.name)
        plan = plan_mirror(members, sink.seen)
        try:
            percent = plan.removal_percent()
            if plan.to_remove and percent > self.valve:
                report.removals_refused = plan.to_remove
                report.mirror = "refused by safety valve"
                self.stream_errors.append(ConfigError(
                    f"Stream '{sink.spec.name}': the mirror would remove {plan.to_remove} of the "
                    f"{plan.current_members} members of list {sink.handle.label} ({percent:.1f}%), more than "
                    f"'mirror_max_removal_percent' allows ({self.valve:g}%). Nobody was removed. If the segment "
                    "really shrank that much, raise 'mirror_max_removal_percent' (100 disables the valve) and "
                    "sync again.", stream=sink.spec.name))
                logger.error(self.stream_errors[-1].message)
                return
            report.mirror = f"{'planned' if self.dry_run else 'done'}: {plan.to_remove} of {plan.current_members} " \
                            "members not in this sync"
            rows: list[dict[str, str]] = []
            for identifier in plan.iter_removals():
                rows.append(removal_row(identifier))
                if len(rows) == MAX_BATCH_ROWS:
                    self.submit(Job(sink, REMOVE, rows, [], self.seq, by_mirror=True))
                    rows = []
            if rows:
                self.submit(Job(sink, REMOVE, rows, [], self.seq, by_mirror=True))
        finally:
            plan.close()

    def _drop_journals(self) -> None:
        """Delete the journal of every mirror stream that completed (incomplete ones are kept for the retry)."""
        if self.client is None:
            return
        for key, journal in self.journals.items():
            handle = journal.sink.handle
            if not self.sinks[key].complete or handle.list_id is None:
                continue
            try:
                self.client.delete_list(handle.list_id)
            except IterableDestinationError as exc:
                logger.warning(f"The mirror journal list {handle.label} could not be deleted ({exc.message}); "
                               "the next sync of this stream deletes it.")

    def _close_store(self) -> None:
        """Upload the rejected records still buffered (those after the last state); a failure fails the sync."""
        if self.store is None or self.dry_run:
            return
        try:
            self.store.close()
        except TransientError as exc:
            logger.error(f"Rejected records could not be stored ({exc.message}).")
            self.stream_errors.append(exc)

    def _read_sizes_before(self) -> None:
        """Start reading the size of each reused list before this sync changes it (a new list has 0 members).

        The reads run beside the sync while the first batches are read, and a list's first write waits for
        its size answer (`_run`, at most SIZE_WAIT_SECONDS; a later answer is not reported), so the size is
        the one before the sync: about one round trip for a reused list's first batch, none for the others.
        (Iterable applies list changes asynchronously, so a size read after the last write would not
        reliably include them.) At most MAX_SIZE_LOOKUPS lists, one attempt each.
        """
        reused = []
        for sink in self.sinks.values():
            if sink.handle.created:
                sink.report.size_before = 0
            elif sink.handle.list_id is not None:
                reused.append(sink)
        if self.client is None:
            return
        for sink in reused[:MAX_SIZE_LOOKUPS]:  # on the send pool: its threads are idle until the first batch
            self._size_reads[sink.spec.key] = self.executor.submit(self._size_of, sink)

    def _collect_sizes(self) -> None:
        """Put the sizes read at the start into the reports. A list that was written has its answer or is
        marked late; only a list without writes can still be waiting for its read here."""
        for key, future in self._size_reads.items():
            if key in self._late_sizes:
                logger.info(f"List size of {self.sinks[key].handle.label} not read before the sync's first write.")
            self.sinks[key].report.size_before = None if key in self._late_sizes else future.result()

    def _size_of(self, sink: StreamSink) -> int | None:
        assert self.client is not None and sink.handle.list_id is not None
        try:
            return self.client.list_size(sink.handle.list_id)
        except (IterableDestinationError, ValueError) as exc:
            logger.info(f"List size of {sink.handle.label} not read ({type(exc).__name__}).")
            return None

    def _summary(self) -> None:
        if self._summarized:
            return
        self._summarized = True
        extra = {
            "states_received": self.states_received,
            "states_emitted": self.states_emitted,
            "state_record_count": self.emitted_records,
            "state_rejected_count": self.emitted_rejected,
            "rejected_records": sum(s.report.rejected_records for s in self.sinks.values()),
            "input_problems": dict(self.input_problems),
            "requests": dict(self.client.stats) if self.client else {},
        }
        if self.dry_run and self.states_received:
            logger.info(f"Dry run: {self.states_received} state message(s) were not echoed, so the next real "
                        "sync starts from the same point.")
        rate = self.client.controller.snapshot() if self.client else None
        log_summary([s.report for s in self.sinks.values()], dry_run=self.dry_run, extra=extra, rate=rate)

    def close(self) -> None:
        """Stop the worker threads (idempotent)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def stopped_error() -> TransientError:
    """The error raised after a SIGTERM."""
    return TransientError("The sync was stopped (SIGTERM) before all records were sent; only acknowledged "
                          "records were checkpointed, and the next attempt resumes from there.")
