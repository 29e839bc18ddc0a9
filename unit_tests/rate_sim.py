"""Discrete-event simulator for the adaptive rate controller (fake clock, no sleeping).

A token-bucket server (refill ``L`` per second, capacity ``max(1, L)`` tokens, full at the
start, ``L`` may change over time) answers requests sent by ``threads`` sender "threads"
that are paced by a :class:`RateEstimator`. A 429'd batch goes back into the work pool and is
sent again, as the connector's client does.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from destination_iterable.rate import OK, RATE_LIMITED, RateEstimator


@dataclass
class Scenario:
    """One simulated run. ``limits`` is a list of (from_time, requests_per_second)."""

    limits: list[tuple[float, float]]
    latency: float = 0.03  # mean round trip, seconds
    jitter: float = 0.3  # round trip is uniform in latency x [1 - jitter, 1 + jitter]
    up_share: tuple[float, float] = (0.3, 0.7)  # share of the round trip before the bucket
    burst_s: float = 1.0  # bucket capacity, in seconds of the limit (at least one token)
    requests: int = 1000  # accepted requests needed to finish the run
    duration: float | None = None  # or: stop at this simulated time
    threads: int = 16
    max_in_flight: int = 32
    max_rps: float | None = None
    initial_rps: float = 2.0
    seed: int = 1
    estimator: Callable[[], RateEstimator] | None = None  # replaces the default estimator


@dataclass
class SimResult:
    """Measured figures of one run."""

    sent: int = 0
    ok: int = 0
    rate_limited: int = 0
    end: float = 0.0
    capacity: float = 0.0  # integral of the server limit over the run
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (time, target_rps)
    in_flight_limits: list[int] = field(default_factory=list)
    limited_at: list[float] = field(default_factory=list)  # times 429s were answered
    sends: list[float] = field(default_factory=list)
    max_in_flight_seen: int = 0
    converged_at: float | None = None  # first time the estimator reported convergence

    @property
    def efficiency(self) -> float:
        """Accepted rate / server limit over the whole run."""
        return self.ok / self.capacity if self.capacity else 0.0

    @property
    def share_429(self) -> float:
        """Share of requests answered 429."""
        return self.rate_limited / self.sent if self.sent else 0.0

    def target_at(self, t: float) -> float:
        """Target rate at simulated time ``t``."""
        value = self.timeline[0][1]
        for when, rps in self.timeline:
            if when > t:
                break
            value = rps
        return value

    def targets_between(self, start: float, end: float) -> list[float]:
        """Every target value in force during [start, end]."""
        values = [self.target_at(start)]
        values += [rps for when, rps in self.timeline if start < when <= end]
        return values

    def describe(self) -> str:
        """One line with the figures, for assertion messages."""
        return (
            f"efficiency={self.efficiency:.3f} share429={self.share_429:.2%} sent={self.sent} "
            f"ok={self.ok} 429={self.rate_limited} end={self.end:.1f}s"
        )


class TokenBucket:
    """Server-side bucket: refill ``L(t)`` per second, capacity ``max(1, L(t) x burst_s)``."""

    def __init__(self, limits: list[tuple[float, float]], burst_s: float = 1.0) -> None:
        self.limits = sorted(limits)
        self.burst_s = burst_s
        self.time = 0.0
        self.tokens = self.capacity(self.limit_at(0.0))

    def capacity(self, rate: float) -> float:
        """Bucket capacity in tokens for a refill rate."""
        return max(1.0, rate * self.burst_s)

    def limit_at(self, t: float) -> float:
        """Refill rate in force at ``t``."""
        rate = self.limits[0][1]
        for start, value in self.limits:
            if start <= t:
                rate = value
        return rate

    def integral(self, a: float, b: float) -> float:
        """Tokens the server hands out over [a, b] at most (capacity aside)."""
        total = 0.0
        points = [a] + [s for s, _ in self.limits if a < s < b] + [b]
        for lo, hi in zip(points, points[1:], strict=False):
            total += self.limit_at(lo) * (hi - lo)
        return total

    def admit(self, t: float) -> bool:
        """Take a token at ``t`` if there is one."""
        points = [self.time] + [s for s, _ in self.limits if self.time < s < t] + [t]
        for lo, hi in zip(points, points[1:], strict=False):
            rate = self.limit_at(lo)
            self.tokens = min(self.capacity(rate), self.tokens + rate * (hi - lo))
        self.time = max(self.time, t)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def simulate(sc: Scenario) -> SimResult:
    """Run one scenario and return its figures."""
    rng = random.Random(sc.seed)
    if sc.estimator is not None:
        est = sc.estimator()
    else:
        est = RateEstimator(initial_rps=sc.initial_rps, max_rps=sc.max_rps, max_in_flight=sc.max_in_flight)
    bucket = TokenBucket(sc.limits, sc.burst_s)
    res = SimResult(timeline=[(0.0, est.target_rps)])
    events: list[tuple[float, int, str, tuple]] = []
    seq = 0
    in_flight = 0
    wake_at = math.inf

    def push(t: float, kind: str, data: tuple) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    def work_left() -> bool:
        return sc.requests - res.ok - in_flight > 0

    def record(now: float) -> None:
        rps = est.target_rps
        if abs(rps - res.timeline[-1][1]) > 1e-9:
            res.timeline.append((now, rps))

    def dispatch(now: float) -> None:
        nonlocal in_flight, wake_at
        while in_flight < min(sc.threads, est.in_flight_limit) and work_left():
            t = est.next_send_time(now)
            if t > now + 1e-12:
                if t < wake_at:
                    wake_at = t
                    push(t, "wake", ())
                break
            token = est.on_sent(now)
            in_flight += 1
            res.sent += 1
            res.sends.append(now)
            res.max_in_flight_seen = max(res.max_in_flight_seen, in_flight)
            rtt = sc.latency * rng.uniform(1 - sc.jitter, 1 + sc.jitter)
            up = rtt * rng.uniform(*sc.up_share)
            push(now + up, "arrive", (now, token, rtt))
        record(now)

    push(0.0, "wake", ())
    while events:
        now, _, kind, data = heapq.heappop(events)
        if sc.duration is not None and now > sc.duration:
            break
        if kind == "wake":
            if now >= wake_at or wake_at == math.inf:
                wake_at = math.inf
            dispatch(now)
        elif kind == "arrive":
            sent, token, rtt = data
            outcome = OK if bucket.admit(now) else RATE_LIMITED
            push(sent + rtt, "done", (sent, token, outcome))
        else:
            sent, token, outcome = data
            in_flight -= 1
            est.on_result(now, token, outcome, now - sent)
            if outcome == OK:
                res.ok += 1
            else:
                res.rate_limited += 1
                res.limited_at.append(now)
            res.end = now
            res.in_flight_limits.append(est.in_flight_limit)
            if res.converged_at is None and getattr(est, "converged", False):
                res.converged_at = now
            dispatch(now)
    if sc.duration is not None:
        res.end = sc.duration
    res.capacity = bucket.integral(0.0, res.end)
    return res


TABLE = [  # (limit, latency, requests, max_in_flight); 16 sender threads, or max_in_flight if more
    (5, 0.03, 1000, 32),
    (20, 0.03, 1000, 32),
    (5, 0.1, 1000, 32),
    (20, 0.1, 1000, 32),
    (5, 0.5, 1000, 32),
    (20, 0.5, 1000, 32),
    (5, 0.5, 2000, 32),
    (20, 0.5, 2000, 32),
    (100, 0.03, 3000, 32),
    (100, 0.5, 3000, 128),
]


def main(seeds: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> None:
    """Print the figures table (worst and mean over seeds) for docs/performance.md."""
    print("| L (req/s) | latency | requests | efficiency min / mean | 429 share max / mean |")
    print("|---|---|---|---|---|")
    for limit, latency, requests, max_in_flight in TABLE:
        results = [
            simulate(
                Scenario(
                    limits=[(0, limit)],
                    latency=latency,
                    requests=requests,
                    seed=seed,
                    max_in_flight=max_in_flight,
                    threads=16 if max_in_flight <= 32 else max_in_flight,
                )
            )
            for seed in seeds
        ]
        eff = [r.efficiency for r in results]
        share = [r.share_429 for r in results]
        print(
            f"| {limit} | {latency * 1000:.0f} ms | {requests} | {min(eff):.3f} / {sum(eff) / len(eff):.3f} "
            f"| {max(share):.2%} / {sum(share) / len(share):.2%} |"
        )


if __name__ == "__main__":
    main()
