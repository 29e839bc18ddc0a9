"""A reused list's size in the summary is the one before the sync: its first write waits for the size answer."""

import threading
import time
from types import SimpleNamespace

from unit_tests.test_pipeline_states import feed, make, rec, settle


class SlowSizeClient:
    """Only what the pipeline asks of a client here; `list_size` answers when the test opens its gate."""

    def __init__(self, log: list) -> None:
        self.gate = threading.Event()
        self.log = log
        self.stats = {"requests": 0}
        self.controller = SimpleNamespace(in_flight_limit=8, snapshot=lambda: {"target_rps": 10.0})

    def list_size(self, list_id: int) -> int:
        self.gate.wait(5)
        self.log.append(("size", list_id))
        return 4


def send_one_batch():
    """A pipeline over one reused list whose requests would go out at once, with one batch flushed; the size
    read and the requests log to the same list."""
    log: list = []
    client = SlowSizeClient(log)
    pipeline, gates, _, _ = make(("a",), client=client, sent=log)
    gates["a"].set()
    feed(pipeline, rec("a", "a1@x.com"))
    pipeline.flush(pipeline.sinks[(None, "a")])
    return pipeline, client, log


def test_the_first_write_to_a_reused_list_waits_for_its_size():
    pipeline, client, log = send_one_batch()
    try:
        time.sleep(0.2)
        pipeline.poll(time.monotonic())
        assert log == [], "the batch went out before the list's size was read"
        client.gate.set()
        settle(pipeline, lambda: len(log) == 2)
        assert log == [("size", 1), ("a", "add", ["a1@x.com"])]
    finally:
        client.gate.set()
        pipeline.close()


def test_a_size_answer_slower_than_the_wait_is_not_reported(monkeypatch):
    monkeypatch.setattr("destination_iterable.sync.pipeline.SIZE_WAIT_SECONDS", 0.1)
    pipeline, client, log = send_one_batch()
    try:
        settle(pipeline, lambda: log)
        assert log == [("a", "add", ["a1@x.com"])]  # the write did not wait for the slow size read
        client.gate.set()
        settle(pipeline, lambda: len(log) == 2)
        pipeline._collect_sizes()
        assert pipeline.sinks[(None, "a")].report.size_before is None  # answered after the first write
    finally:
        client.gate.set()
        pipeline.close()
