"""The subscribe group's limiter models (token bucket, fixed window, sliding window, per-minute quota),
live limit changes, one limiter shared by every client of a sandbox, and where the latency is slept."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from integration_tests.sandbox.config import Config, KnobError
from integration_tests.sandbox.faults import Faults
from integration_tests.sandbox.ratelimit import (
    FixedWindow,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
    subscribe_limit_rps,
)
from integration_tests.sandbox.testing import api, create_list

ROOT = Path(__file__).resolve().parents[1]
ROW = [{"email": "a@example.com"}]


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, now: float) -> FakeClock:
        self.now = now
        return self


def takes(limiter, clock: FakeClock, times: list[float]) -> list[bool]:
    return [limiter.take(clock.at(t)()) for t in times]


# ------------------------------------------------------------------ limiter classes, fake clock


def test_token_bucket_bursts_then_refills_at_its_rate():
    clock = FakeClock(0.0)
    bucket = TokenBucket(2.0, 3.0, clock=clock)
    assert takes(bucket, clock, [0, 0, 0, 0]) == [True, True, True, False]
    assert takes(bucket, clock, [0.4, 0.5, 0.6]) == [False, True, False]  # 2 tokens/s: one back at 0.5 s
    assert takes(bucket, clock, [10, 10, 10, 10]) == [True, True, True, False]  # never more than the capacity


def test_token_bucket_reconfigure_keeps_its_tokens():
    clock = FakeClock(0.0)
    bucket = TokenBucket(1.0, 5.0, clock=clock)
    assert takes(bucket, clock, [0, 0, 0]) == [True] * 3  # 2 tokens left
    bucket.reconfigure(10.0, 10.0)
    assert takes(bucket, clock, [0, 0, 0]) == [True, True, False]  # not refilled by the change
    assert takes(bucket, clock, [0.1]) == [True]  # the new rate at once
    bucket.reconfigure(1.0, 1.0)
    clock.at(5.0)
    assert takes(bucket, clock, [5, 5]) == [True, False]  # capped at the new capacity


def test_fixed_window_counts_per_wall_clock_second():
    clock = FakeClock()
    window = FixedWindow(3, 1.0, clock=clock)
    # 3 in second 100, refusals do not count, then 3 more right after the boundary: 6 within 0.1 s
    assert takes(window, clock, [100.0, 100.5, 100.95, 100.96, 100.99]) == [True, True, True, False, False]
    assert takes(window, clock, [101.0, 101.01, 101.02, 101.03]) == [True, True, True, False]
    assert takes(window, clock, [102.999, 103.0]) == [True, True]


def test_per_minute_quota_is_a_fixed_wall_clock_minute():
    clock = FakeClock()
    quota = FixedWindow(180, 60.0, clock=clock)
    start = 60 * 1000 + 5.0
    assert sum(takes(quota, clock, [start + i * 0.01 for i in range(200)])) == 180
    assert not quota.take(clock.at(60 * 1000 + 59.99)())
    assert quota.take(clock.at(60 * 1001)())  # the next minute starts at a whole minute


def test_sliding_window_allows_n_in_any_one_second_span():
    clock = FakeClock(0.0)
    window = SlidingWindow(3, 1.0, clock=clock)
    assert takes(window, clock, [0.0, 0.125, 0.25, 0.5, 0.875]) == [True, True, True, False, False]
    # each acceptance leaves the window exactly 1 s later
    assert takes(window, clock, [1.0, 1.0625, 1.125, 1.1875, 1.25]) == [True, False, True, False, True]


def test_sliding_window_never_exceeds_n_where_a_fixed_window_allows_2n():
    clock = FakeClock()
    rng = random.Random(5)
    # a client that starts late in a second and keeps sending, with some jitter
    arrivals = [1000.9 + i * 0.01 + rng.uniform(0, 0.002) for i in range(2000)]
    sliding, fixed = SlidingWindow(5, 1.0, clock=clock), FixedWindow(5, 1.0, clock=clock)
    slid = [t for t in arrivals if sliding.take(clock.at(t)())]
    fix = [t for t in arrivals if fixed.take(clock.at(t)())]
    assert max(sum(1 for u in slid if t <= u < t + 1) for t in slid) == 5
    assert max(sum(1 for u in fix if t <= u < t + 1) for t in fix) == 10  # the end of one second + the next
    assert len(fix) == 5 * 21  # 5 in each wall-clock second from 1000 to 1020


def test_window_reconfigure_keeps_what_was_counted():
    clock = FakeClock(0.0)
    for window in (SlidingWindow(2, 1.0, clock=clock), FixedWindow(2, 1.0, clock=clock)):
        assert takes(window, clock, [0.1, 0.2, 0.3]) == [True, True, False]
        window.reconfigure(4)
        assert takes(window, clock, [0.4, 0.5, 0.6]) == [True, True, False]
        window.reconfigure(1)
        assert takes(window, clock, [0.7]) == [False]


# ------------------------------------------------------------------ RateLimiter and the knobs


def limiter_with(clock: FakeClock, **knobs) -> tuple[Config, RateLimiter]:
    config = Config(**{"lists_read_rps": 0, "list_write_rps": 0, "get_users_per_minute": 0, "size_per_minute": 0,
                       **knobs})
    return config, RateLimiter(config, clock=clock)


def burst(limiter: RateLimiter, clock: FakeClock, at: float, count: int, group: str = "subscribe") -> int:
    clock.at(at)
    return sum(limiter.allow(group) for _ in range(count))


@pytest.mark.parametrize(("knobs", "first_second", "limit_rps"), [
    ({"subscribe_rps": 4}, 4, 4.0),
    ({"subscribe_rps": 4, "subscribe_burst": 10}, 10, 4.0),
    ({"subscribe_rps": 4, "subscribe_limiter": "fixed_window"}, 4, 4.0),
    ({"subscribe_rps": 4.7, "subscribe_limiter": "sliding_window"}, 4, 4.0),  # windows count whole requests
    ({"subscribe_rps": 3, "subscribe_limiter": "per_minute"}, 180, 3.0),  # default quota: 60 x rps
    ({"subscribe_rps": 3, "subscribe_limiter": "per-minute", "subscribe_per_minute": 100}, 100, 100 / 60),
    ({"subscribe_rps": 0, "subscribe_limiter": "sliding_window"}, 500, 0.0),  # 0 = unlimited
    ({"subscribe_rps": 5, "subscribe_limiter": "per_minute", "subscribe_per_minute": 0}, 500, 0.0),
])
def test_the_subscribe_limiter_knob_selects_the_model(knobs, first_second, limit_rps):
    clock = FakeClock(60 * 1000 + 0.0)
    config, limiter = limiter_with(clock, **knobs)
    assert burst(limiter, clock, 60 * 1000 + 0.01, 500) == first_second
    assert subscribe_limit_rps(config) == pytest.approx(limit_rps)


def test_a_live_change_keeps_the_count_and_leaves_other_groups_alone():
    clock = FakeClock(100.0)
    config, limiter = limiter_with(clock, subscribe_rps=2, subscribe_limiter="sliding_window", lists_read_rps=1)
    assert burst(limiter, clock, 100.1, 1, "lists_read") == 1
    assert burst(limiter, clock, 100.1, 5) == 2
    config.update({"subscribe_rps": 5})
    assert burst(limiter, clock, 100.2, 5) == 3  # 5 in the last second, the 2 before the change included
    assert burst(limiter, clock, 100.2, 1, "lists_read") == 0  # that bucket was not refilled
    config.update({"subscribe_limiter": "fixed_window"})  # another model starts empty
    assert burst(limiter, clock, 100.3, 9) == 5
    config.update({"subscribe_limiter": "per_minute", "subscribe_per_minute": 7})
    assert burst(limiter, clock, 100.4, 9) == 7
    config.update({"subscribe_rps": 0})  # the per-minute quota is set on its own, so still limited
    assert burst(limiter, clock, 100.5, 9) == 0
    config.update({"subscribe_per_minute": 0})
    assert burst(limiter, clock, 100.6, 9) == 9
    config.update({"subscribe_per_minute": 2})  # from unlimited: a new, empty quota
    assert burst(limiter, clock, 100.7, 9) == 2
    assert burst(limiter, clock, 120.0, 9) == 2  # the next wall-clock minute
    limiter.reset()
    assert burst(limiter, clock, 120.1, 9) == 2


def test_bad_limiter_knobs_are_refused():
    with pytest.raises(KnobError, match="subscribe_limiter"):
        Config(subscribe_limiter="leaky")
    with pytest.raises(KnobError, match="subscribe_per_minute"):
        Config(subscribe_per_minute=-1)
    with pytest.raises(KnobError, match="latency_before_share"):
        Config(latency_before_share=1.5)
    assert Config(subscribe_limiter="Sliding-Window").subscribe_limiter == "sliding_window"


def test_latency_is_split_around_the_limiter():
    faults = Faults(Config(latency_ms=200, latency_before_share=0.25))
    assert faults.latency() == pytest.approx((0.05, 0.15))
    faults = Faults(Config(latency_ms=100, latency_jitter_ms=300))
    draws = [faults.latency() for _ in range(200)]
    assert all(before == 0 and 0.1 <= after <= 0.4 for before, after in draws)
    assert max(after for _, after in draws) > 0.35 and min(after for _, after in draws) < 0.15
    assert Faults(Config()).latency() == (0.0, 0.0)


# ------------------------------------------------------------------ over HTTP


def wait_for_phase(window: float, start: float, end: float) -> None:
    """Sleep until the wall clock is between ``start`` and ``end`` seconds into a window."""
    while not start <= time.time() % window < end:
        time.sleep(0.005)


def hammer(server, list_id: int, until: float, session: requests.Session | None = None,
           path: str = "/api/lists/subscribe") -> list[int]:
    statuses = []
    while time.time() < until:
        statuses.append(api(server, "POST", path, session=session,
                            json={"listId": list_id, "subscribers": ROW}).status_code)
    return statuses


@pytest.mark.parametrize(("model", "knobs", "accepted"), [
    ("token_bucket", {"subscribe_rps": 1, "subscribe_burst": 4}, 4),
    ("fixed_window", {"subscribe_rps": 4}, 4),
    ("sliding_window", {"subscribe_rps": 4}, 4),
    ("per_minute", {"subscribe_per_minute": 4}, 4),
])
def test_each_model_answers_429_and_fills_the_timeline(sandbox_factory, model, knobs, accepted):
    server = sandbox_factory(subscribe_limiter=model, **knobs)
    list_id = create_list(server)
    wait_for_phase(*((60, 0.0, 58.0) if model == "per_minute" else (1, 0.0, 0.5)))
    with requests.Session() as session:
        resps = [api(server, "POST", path, session=session, json={"listId": list_id, "subscribers": ROW})
                 for path in ["/api/lists/subscribe", "/api/lists/unsubscribe"] * 5]
    statuses = [resp.status_code for resp in resps]
    assert statuses == [200] * accepted + [429] * (10 - accepted)
    assert resps[-1].json() == {"msg": "Exceeded rate limit.", "code": "RateLimitExceeded", "params": None}
    assert "Retry-After" not in resps[-1].headers
    timeline = server.client.timeline()
    assert timeline["subscribe_limiter"] == model and timeline["start"] == int(timeline["start"])
    assert sum(b["ok"] for b in timeline["buckets"]) == accepted
    assert sum(b["rate_limited"] for b in timeline["buckets"]) == 10 - accepted
    assert server.client.stats()["rate_limited"] == 10 - accepted


def test_fixed_window_resets_at_the_wall_clock_second_and_sliding_does_not(sandbox_factory):
    fixed = sandbox_factory(subscribe_limiter="fixed_window", subscribe_rps=5)
    sliding = sandbox_factory(subscribe_limiter="sliding_window", subscribe_rps=5)
    lists = {fixed: create_list(fixed), sliding: create_list(sliding)}
    wait_for_phase(1, 0.75, 0.8)
    boundary = float(int(time.time()) + 1)
    statuses: dict = {fixed: [], sliding: []}
    with requests.Session() as session:
        while time.time() < boundary + 0.25:  # the same arrivals (interleaved) at both
            for server in (fixed, sliding):
                statuses[server].append(api(server, "POST", "/api/lists/subscribe", session=session,
                                            json={"listId": lists[server], "subscribers": ROW}).status_code)
    assert statuses[fixed].count(200) == 10  # 5 before the second ends, 5 after
    assert statuses[sliding].count(200) == 5  # all of them within 0.5 s
    assert statuses[sliding].count(429) >= 5
    buckets = {b["t"]: b["ok"] for b in fixed.client.timeline()["buckets"] if b["ok"]}
    assert list(buckets.values()) == [5, 5]  # timeline seconds are the limiter's wall-clock seconds
    assert fixed.client.timeline()["start"] + max(buckets) == boundary


def test_the_limit_changes_live_through_the_admin_api(sandbox_factory):
    server = sandbox_factory(subscribe_limiter="sliding_window", subscribe_rps=2, lists_read_rps=1)
    list_id = create_list(server)
    session = requests.Session()
    assert [api(server, "GET", "/api/lists", session=session).status_code for _ in range(2)] == [200, 429]
    assert hammer_n(server, list_id, 3, session) == [200, 200, 429]
    resp = requests.post(f"{server.url}/_sandbox/config", json={"subscribe_rps": 4}, timeout=5)
    assert resp.status_code == 200 and resp.json()["subscribe_rps"] == 4
    assert hammer_n(server, list_id, 3, session) == [200, 200, 429]  # the 2 before the change still count
    assert api(server, "GET", "/api/lists", session=session).status_code == 429  # other buckets untouched
    wait_for_phase(60, 0.0, 58.0)
    config = server.client.set_subscribe_limit(limiter="per_minute", per_minute=3)
    assert config["subscribe_limiter"] == "per_minute" and config["subscribe_per_minute"] == 3
    assert hammer_n(server, list_id, 4, session, "/api/lists/unsubscribe") == [200, 200, 200, 429]
    bad = requests.post(f"{server.url}/_sandbox/config", json={"subscribe_limiter": "leaky"}, timeout=5)
    assert bad.status_code == 400 and server.client.config()["subscribe_limiter"] == "per_minute"
    stats = server.client.stats()  # nothing else was reset
    assert stats["requests"]["POST /api/lists/subscribe"] == {"200": 4, "429": 2}
    assert stats["requests"]["POST /api/lists/unsubscribe"] == {"200": 3, "429": 1}
    assert sum(b["ok"] + b["rate_limited"] for b in server.client.timeline()["buckets"]) == 10
    assert server.client.member_emails(list_id) == set() and len(server.client.lists()) == 1
    session.close()


def hammer_n(server, list_id: int, count: int, session: requests.Session,
             path: str = "/api/lists/subscribe") -> list[int]:
    return [api(server, "POST", path, session=session, json={"listId": list_id, "subscribers": ROW}).status_code
            for _ in range(count)]


def test_two_clients_with_the_same_key_share_one_limiter(sandbox_factory):
    server = sandbox_factory(subscribe_limiter="sliding_window", subscribe_rps=6)
    list_id = create_list(server)
    until = time.time() + 0.5
    results: list[list[int]] = [[], []]

    def client(index: int) -> None:
        with requests.Session() as session:
            results[index] = hammer(server, list_id, until, session,
                                    ("/api/lists/subscribe", "/api/lists/unsubscribe")[index])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(statuses) >= 6 for statuses in results)  # each alone could have used the whole limit
    assert sum(statuses.count(200) for statuses in results) == 6  # together they got it once
    assert sum(b["ok"] for b in server.client.timeline()["buckets"]) == 6


SENDER = """
import json, sys, time
import requests
url, key, list_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
session = requests.Session()
print("ready", flush=True)
start, until = map(float, sys.stdin.readline().split())
statuses = []
while time.time() < start:
    time.sleep(0.002)
while time.time() < until:
    statuses.append(session.post(url + "/api/lists/subscribe", headers={"Api-Key": key}, timeout=10,
                                 json={"listId": list_id, "subscribers": [{"email": "a@example.com"}]}).status_code)
print(json.dumps(statuses))
"""


def test_two_processes_share_one_project_limit(sandbox_factory):
    server = sandbox_factory(subscribe_limiter="sliding_window", subscribe_rps=5)
    list_id = create_list(server)
    args = [server.url, server.api_key, str(list_id)]
    procs = [subprocess.Popen([sys.executable, "-c", SENDER, *args], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        # The common start is set once both are up: a start-up (importing requests) takes 0.2-0.4 s here under
        # load, longer on a busy machine, and a process up late would send too few requests in the 0.5 s.
        assert [proc.stdout.readline().strip() for proc in procs] == ["ready", "ready"]
        start = time.time() + 0.2
        for proc in procs:
            proc.stdin.write(f"{start} {start + 0.5}\n")
            proc.stdin.flush()
        results = [json.loads(proc.communicate(timeout=15)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(len(statuses) >= 5 for statuses in results)
    assert sum(statuses.count(200) for statuses in results) == 5
    assert server.client.stats()["requests"]["POST /api/lists/subscribe"] == {
        "200": 5, "429": sum(len(statuses) for statuses in results) - 5}


def test_latency_overlaps_across_concurrent_subscribe_requests(sandbox):
    list_id = create_list(sandbox)
    sandbox.client.set_config(latency_ms=100, latency_jitter_ms=300)  # 250 +- 150 ms
    took: list[float] = []

    def one(path: str) -> None:
        began = time.monotonic()
        resp = api(sandbox, "POST", path, json={"listId": list_id, "subscribers": ROW})
        took.append(time.monotonic() - began)
        assert resp.status_code == 200

    threads = [threading.Thread(target=one, args=(path,))
               for path in ["/api/lists/subscribe", "/api/lists/unsubscribe"] * 16]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    assert len(took) == 32 and min(took) >= 0.1
    assert wall < 1.6, f"32 requests of 100-400 ms took {wall:.2f} s: they were serialised"  # serial: >= 3.2 s
    assert sandbox.client.stats()["peak_concurrency"] >= 30


@pytest.mark.parametrize(("share", "before"), [(0.0, 0.0), (0.5, 0.2)])
def test_the_limiter_sees_the_request_after_the_before_share_of_the_latency(sandbox_factory, share, before):
    server = sandbox_factory(subscribe_limiter="sliding_window", subscribe_rps=1, latency_ms=400,
                             latency_before_share=share)
    list_id = create_list(server)
    admitted: list[float] = []
    allow = server.limiter.allow

    def recording_allow(group, now=None):
        admitted.append(time.monotonic())
        return allow(group, now)

    server.limiter.allow = recording_allow
    with requests.Session() as session:
        for expected in (200, 429):  # a 429 takes the whole latency too
            sent = time.monotonic()
            assert api(server, "POST", "/api/lists/subscribe", session=session,
                       json={"listId": list_id, "subscribers": ROW}).status_code == expected
            answered = time.monotonic()
            assert before <= admitted[-1] - sent < before + 0.1
            assert answered - sent >= 0.4


def test_cli_flags_select_the_limiter():
    proc = subprocess.Popen([sys.executable, "-m", "integration_tests.sandbox", "--port", "0", "--api-key", "k",
                             "--subscribe-limiter", "per_minute", "--subscribe-per-minute", "180",
                             "--latency-before-share", "0.5"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        config = requests.get(f"{url}/_sandbox/config", timeout=5).json()
        assert (config["subscribe_limiter"], config["subscribe_per_minute"]) == ("per_minute", 180)
        assert config["latency_before_share"] == 0.5
        assert requests.get(f"{url}/_sandbox/timeline", timeout=5).json()["subscribe_limit_rps"] == 3
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    bad = subprocess.run([sys.executable, "-m", "integration_tests.sandbox", "--api-key", "k",
                          "--subscribe-limiter", "leaky"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "subscribe_limiter" in bad.stderr
