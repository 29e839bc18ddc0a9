"""RecentMembers: it reports every in-flight job that last touched a member, and only jobs that touched one."""

import random

import pytest

from destination_iterable.sync.ordering import RecentMembers


@pytest.mark.parametrize("seed", range(5))
def test_dependencies_cover_an_unbounded_reference(seed: int) -> None:
    rng = random.Random(seed)
    tracker = RecentMembers(limit=300)
    reference: dict[str, int] = {}
    touched: dict[str, set[int]] = {}
    in_flight: set[int] = set()
    rotations = 0
    for job_id in range(1, 2000):
        keys = list({f"m{rng.randrange(3000)}" for _ in range(rng.randrange(0, 80))})
        expected = {reference[k] for k in keys if k in reference} & in_flight
        allowed = set().union(*(touched.get(k, set()) for k in keys)) & in_flight
        before = tracker.older
        got = tracker.record(keys, job_id, lambda: min(in_flight, default=None)) & in_flight
        rotations += tracker.older is not before
        # Every in-flight job that last touched a member; an earlier one of the same member may be named too
        # (waiting for it changes nothing: the later job waits for it anyway).
        assert expected <= got <= allowed
        reference.update(dict.fromkeys(keys, job_id))
        for key in keys:
            touched.setdefault(key, set()).add(job_id)
        in_flight.add(job_id)
        while len(in_flight) > rng.randrange(1, 20):  # jobs finish mostly, not always, in order
            in_flight.discard(min(in_flight) if rng.random() < 0.8 else rng.choice(sorted(in_flight)))
    assert rotations > 5  # the generations really rotate
    assert len(tracker) < 3000  # and memory stays bounded


def test_an_older_generation_is_kept_while_one_of_its_jobs_is_in_flight() -> None:
    tracker = RecentMembers(limit=2)
    assert tracker.record(["a", "b", "c"], 1, lambda: None) == set()  # rotates: job 1 is in `older`
    assert tracker.record(["d", "e", "f"], 2, lambda: 1) == set()  # job 1 in flight: no rotation
    assert tracker.older == {"a": 1, "b": 1, "c": 1}
    assert tracker.record(["a"], 3, lambda: 1) == {1}
    assert tracker.record(["x", "y", "z"], 4, lambda: 2) != {1}  # job 1 finished: now it may rotate
    assert "b" not in tracker.older and tracker.older["a"] == 3 and tracker.older_last_job == 4  # job 1 forgotten


def test_tracked_members_follow_the_jobs_in_flight_not_the_sync_size() -> None:
    """Memory: with the default limit, the tracker holds about two generations of the members in flight."""
    tracker = RecentMembers()
    window, batch = 8, 1000  # jobs in flight, rows per job
    in_flight: list[int] = []
    peak = 0
    for job_id in range(1, 500):
        keys = [f"m{job_id}-{i}@example.com" for i in range(batch)]
        tracker.record(keys, job_id, lambda: min(in_flight, default=None))
        in_flight.append(job_id)
        if len(in_flight) > window:
            in_flight.pop(0)
        peak = max(peak, len(tracker))
    # 499,000 members went through; about two generations of (two batches + the window) stay
    assert peak <= 2 * (2 * batch + (window + 1) * batch)
