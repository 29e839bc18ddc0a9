"""rejectedRecordCount per STATE: local skips and Iterable's refusals counted against their own records."""

import pytest

from destination_iterable.iterable.client import BulkResult
from destination_iterable.storage import StorageError
from integration_tests.harness import stream_state
from unit_tests.test_pipeline_states import feed, make, rec


class FakeStore:
    def __init__(self, fail=False):
        self.added, self.flushes, self.fail, self.closed = [], 0, fail, False

    def add(self, namespace, stream, record, reason, message, *, field=None, emitted_at_ms=None):
        self.added.append((stream, record, reason))

    def flush(self):
        self.flushes += 1
        if self.fail:
            raise StorageError("bucket gone", code="NoSuchBucket")
        return []

    def close(self):
        self.closed = True
        self.flush()


def refusing(sink, refused):
    """The sink's requests succeed except for the emails in `refused` (Iterable's invalidDataEmails)."""
    def send(kind, rows):
        bad = [r["email"] for r in rows if r["email"] in refused]
        return BulkResult(success_count=len(rows) - len(bad), fail_count=len(bad),
                          failed={"invalidDataEmails": bad} if bad else {})
    sink.send = send


def test_a_batch_spanning_two_states_attributes_each_refusal_to_its_own_record():
    pipeline, gates, _, emitted = make(("a",))
    gates["a"].set()
    sink = pipeline.sinks[(None, "a")]
    store = FakeStore()
    pipeline.store = sink.store = store
    refusing(sink, {"u1@x.com", "u4@x.com"})
    feed(pipeline, rec("a", "u0@x.com"), rec("a", "u1@x.com"), rec("a", "bad"))
    feed(pipeline, stream_state("a", 1, state_id=1))
    feed(pipeline, rec("a", "u3@x.com"), rec("a", "u4@x.com"))  # same batch as u0/u1 (no flush yet)
    feed(pipeline, stream_state("a", 2, state_id=2))
    pipeline.finish()
    pipeline.conclude()
    stats = [m["state"]["destinationStats"] for m in emitted]
    assert stats == [{"recordCount": 1.0, "rejectedRecordCount": 2.0},
                     {"recordCount": 1.0, "rejectedRecordCount": 1.0}]
    assert sorted(reason for _, _, reason in store.added) == ["invalid_data", "invalid_data", "invalid_email"]
    assert store.flushes >= 1 and store.closed
    assert sink.report.rejected_records == 3


def test_a_storage_failure_stops_the_states_and_fails_the_sync():
    pipeline, gates, _, emitted = make(("a",))
    gates["a"].set()
    sink = pipeline.sinks[(None, "a")]
    pipeline.store = sink.store = FakeStore(fail=True)
    feed(pipeline, rec("a", "bad"), stream_state("a", 1, state_id=1))
    with pytest.raises(StorageError):
        pipeline.finish()
    assert emitted == []
