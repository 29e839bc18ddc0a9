"""The STATE rule: a state is echoed only after every earlier record is acknowledged, in input order."""

import threading
import time

import pytest

from destination_iterable.airbyte.messages import route, with_stats
from destination_iterable.iterable.client import BulkResult
from destination_iterable.iterable.lists import ListHandle
from destination_iterable.members.subscriber import SubscriberBuilder
from destination_iterable.sync.pipeline import Pipeline
from destination_iterable.sync.report import ListReport
from destination_iterable.sync.sink import StreamSink, StreamSpec
from integration_tests.harness import stream_state


class GatedSink(StreamSink):
    """A sink whose requests finish only when the test opens their gate (no network)."""

    def __init__(self, name: str, gates: dict[str, threading.Event], sent: list) -> None:
        spec = StreamSpec(name=name, namespace=None, mode="append")
        super().__init__(spec, ListHandle(name, 1, False), ListReport(stream=name, list_name=name),
                         SubscriberBuilder("email", None, ()), client=None, dry_run=False,
                         update_existing_users_only=False, stop=threading.Event())
        self.gates, self.sent = gates, sent

    def send(self, kind, rows):
        self.gates[self.spec.name].wait(5)
        self.sent.append((self.spec.name, kind, [r.get("email") for r in rows]))
        return BulkResult(success_count=len(rows))


def make(names=("a", "b"), client=None, sent=None):
    """A pipeline over gated sinks (reused lists, id 1) that log their requests to `sent`."""
    gates = {n: threading.Event() for n in names}
    sent = [] if sent is None else sent
    emitted: list = []
    sinks = [GatedSink(n, gates, sent) for n in names]
    pipeline = Pipeline(sinks, client=client, emit=lambda m, c, r: emitted.append(with_stats(m, c, r)),
                        stop=threading.Event(), term=threading.Event(),
                        dry_run=False, max_age=3600, progress_interval=3600, mirror_max_removal_percent=50,
                        prefer_user_id=False, workers=4)
    return pipeline, gates, sent, emitted


def rec(stream, email):
    return {"stream": stream, "data": {"email": email}}


def feed(pipeline, *messages):
    """Hand protocol messages to the pipeline as the Airbyte layer does (records wrapped, states as they are)."""
    route([m if m.get("type") == "STATE" else {"type": "RECORD", "record": m} for m in messages], pipeline, 0)


def settle(pipeline, until, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        pipeline.poll(time.monotonic())
        time.sleep(0.01)


def test_state_waits_for_earlier_records_of_every_stream():
    pipeline, gates, sent, emitted = make()
    feed(pipeline, rec("a", "a1@x.com"))
    feed(pipeline, rec("b", "b1@x.com"))
    feed(pipeline, stream_state("a", 1, state_id=11))
    assert emitted == []  # both records still buffered
    pipeline.flush(pipeline.sinks[(None, "a")])
    pipeline.flush(pipeline.sinks[(None, "b")])
    gates["a"].set()
    settle(pipeline, lambda: len(sent) == 1)
    pipeline.poll(time.monotonic())
    assert emitted == []  # stream b's earlier record is still in flight
    gates["b"].set()
    settle(pipeline, lambda: emitted)
    assert [m["state"]["id"] for m in emitted] == [11]
    pipeline.close()


def test_states_keep_input_order_and_counts():
    pipeline, gates, _, emitted = make(("a",))
    gates["a"].set()
    for i in range(3):
        feed(pipeline, rec("a", f"u{i}@x.com"))
    feed(pipeline, stream_state("a", 1, state_id=1))
    feed(pipeline, stream_state("a", 2, state_id=2))
    feed(pipeline, rec("a", "bad-email"))
    feed(pipeline, stream_state("a", 3, state_id=3))
    pipeline.finish()
    pipeline.conclude()
    assert [m["state"]["id"] for m in emitted] == [1, 2, 3]
    assert [m["state"]["destinationStats"]["recordCount"] for m in emitted] == [3.0, 0.0, 0.0]
    assert [m["state"]["destinationStats"]["rejectedRecordCount"] for m in emitted] == [0.0, 0.0, 1.0]
    assert pipeline.sinks[(None, "a")].report.skipped["invalid_email"] == 1


def test_a_failed_batch_blocks_every_later_state():
    pipeline, gates, _, emitted = make(("a",))
    sink = pipeline.sinks[(None, "a")]

    def boom(kind, rows):
        raise RuntimeError("server exploded")

    feed(pipeline, stream_state("a", 0, state_id=0))
    feed(pipeline, rec("a", "u1@x.com"))
    sink.send = boom
    pipeline.flush(sink)
    feed(pipeline, stream_state("a", 1, state_id=1))
    with pytest.raises(RuntimeError):
        pipeline.finish()
    assert [m["state"]["id"] for m in emitted] == [0]


def test_same_member_changes_keep_input_order_across_batches():
    pipeline, gates, sent, _ = make(("a",))
    sink = pipeline.sinks[(None, "a")]
    feed(pipeline, rec("a", "m@x.com"))
    pipeline.flush(sink)  # first batch held at the gate
    feed(pipeline, {"stream": "a", "data": {"email": "m@x.com", "_ab_cdc_deleted_at": "2024-01-01"}})
    threading.Timer(0.3, gates["a"].set).start()
    pipeline.flush(sink)  # must wait for the first batch, which holds the same member
    pipeline.finish()
    assert [kind for _, kind, _ in sent] == ["add", "remove"]


def test_pending_jobs_follow_the_controllers_in_flight_limit():
    from types import SimpleNamespace

    from destination_iterable.iterable.rate import AdaptiveRateController
    from destination_iterable.sync.pipeline import PENDING_RESERVE

    pipeline, *_ = make(("a",))
    pipeline.max_pending = 64
    assert pipeline._pending_bound() == 64  # no client: the fixed bound
    controller = AdaptiveRateController(max_in_flight=32)
    pipeline.client = SimpleNamespace(controller=controller)
    allowed = controller.in_flight_limit
    assert allowed < 32
    assert pipeline._pending_bound() == max(4, allowed + PENDING_RESERVE)
    controller._est._max_in_flight = 1000  # a (hypothetical) huge in-flight limit is still capped
    controller._est._error_cap = 1000
    controller._est._target = 10_000.0
    assert pipeline._pending_bound() == 64
    pipeline.close()


def test_only_members_of_a_batch_in_flight_are_held_back_and_the_state_waits_for_them():
    pipeline, gates, sent, emitted = make(("a",))
    sink = pipeline.sinks[(None, "a")]
    feed(pipeline, rec("a", "m1@x.com"), rec("a", "m2@x.com"), rec("a", "m3@x.com"))
    pipeline.flush(sink)  # batch 1 waits at the gate
    feed(pipeline, rec("a", "M2@x.com"), rec("a", "n1@x.com"), rec("a", "n2@x.com"), rec("a", "n3@x.com"))
    feed(pipeline, stream_state("a", 1, state_id=7))
    pipeline.flush(sink)
    assert not pipeline.parked and len(pipeline.in_flight) == 2  # batch 2 goes now, without m2
    assert list(sink.buffer) == ["m2@x.com"]  # m2 waits for batch 1
    gates["a"].set()
    settle(pipeline, lambda: len(sent) == 2)
    pipeline.poll(time.monotonic())
    assert emitted == []  # m2's second record is not acknowledged yet
    pipeline.finish()
    assert sorted(map(sorted, (emails for *_, emails in sent[:2]))) == [
        ["m1@x.com", "m2@x.com", "m3@x.com"], ["n1@x.com", "n2@x.com", "n3@x.com"]]
    assert sent[2][2] == ["m2@x.com"]  # after batch 1
    assert [m["state"]["id"] for m in emitted] == [7]
    assert emitted[0]["state"]["destinationStats"]["recordCount"] == 7.0


def test_a_batch_of_mostly_held_members_waits_whole_instead_of_staying_buffered():
    pipeline, gates, sent, _ = make(("a",))
    sink = pipeline.sinks[(None, "a")]
    feed(pipeline, rec("a", "m1@x.com"), rec("a", "m2@x.com"))
    pipeline.flush(sink)
    feed(pipeline, rec("a", "m1@x.com"), rec("a", "m2@x.com"), rec("a", "n1@x.com"))
    pipeline.flush(sink)
    assert not sink.buffer and len(pipeline.parked) == 1  # parked until batch 1 is answered
    gates["a"].set()
    pipeline.finish()
    assert [emails for *_, emails in sent] == [["m1@x.com", "m2@x.com"], ["m1@x.com", "m2@x.com", "n1@x.com"]]


def test_a_full_buffer_grows_by_its_held_members_so_batches_stay_full():
    pipeline, gates, sent, _ = make(("a",))
    sink = pipeline.sinks[(None, "a")]
    feed(pipeline, *(rec("a", f"m{i}@x.com") for i in range(1000)))  # full: batch 1 goes (waits at the gate)
    assert len(pipeline.in_flight) == 1 and not sink.buffer
    feed(pipeline, *(rec("a", f"m{i}@x.com") for i in range(10)))  # changed again while batch 1 is in flight
    feed(pipeline, *(rec("a", f"n{i}@x.com") for i in range(990)))
    assert len(sink.buffer) == 1000 and len(pipeline.in_flight) == 1  # 990 could go: not cut yet
    feed(pipeline, *(rec("a", f"n{i}@x.com") for i in range(990, 1000)))
    assert len(pipeline.in_flight) == 2 and sorted(sink.buffer) == sorted(f"m{i}@x.com" for i in range(10))
    gates["a"].set()
    pipeline.finish()
    batches = [emails for *_, emails in sent]
    assert sorted(len(emails) for emails in batches) == [10, 1000, 1000]
    assert [f"n{i}@x.com" for i in range(1000)] in batches  # batch 2 may finish before or after batch 3
    held = batches.index([f"m{i}@x.com" for i in range(10)])
    assert batches.index([f"m{i}@x.com" for i in range(1000)]) < held  # the held members went after batch 1
