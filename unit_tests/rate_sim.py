"""Discrete-event simulator for the adaptive rate controller (fake clock, no sleeping).

One server-side **limiter** is shared by one or more independent **senders** (connector processes).
Each sender has its own :class:`RateEstimator`, its own sender threads and its own work (``requests``
batches that must be accepted). Nothing is shared between senders but the limiter.

Limiters (all with a limit that may change over time: ``limits`` is a list of (from_time, requests/s)):

* :class:`TokenBucket`: refill ``L`` per second, capacity ``L x burst_s`` tokens (1 s), full at the start.
* :class:`FixedWindow`: at most ``L`` admitted requests per wall-clock second ``[k, k + 1)``.
* :class:`SlidingWindow`: at most ``L`` admitted requests in any 1 s (a sliding log of admissions).
* :class:`MinuteQuota`: at most ``M`` admitted requests per wall-clock minute ``[60 k, 60 k + 60)``.

Refused requests (429) do not count against any limit.

Latency: each request's round trip is uniform in ``latency +/- jitter`` (default 250 +/- 150 ms). The
limiter sees the request after ``up_share`` of its round trip (default a third: connecting and uploading
the body come before the limiter, which sits at the API's front door; the list update, the larger and
more variable part, comes after it), so arrivals at the limiter are jittered by +/- 50 ms around the
paced send times. That split matters only for the sliding window, whose 429s come from arrival jitter
near the limit: a sender paced perfectly at 18/s sees no 429s, at 19/s about 3 %, at 20/s about 7 %
(with the whole round trip before the limiter: 3.4 %, 6.3 % and 9.9 %, and no sender reaches an
efficiency of 0.90; docs/rate-control.md has the table).

Server pauses (``pause_every``, ``pause_s``): the server stops for ``pause_s`` at the end of every ``pause_every``
seconds, as a garbage collector stops every thread; a request that would reach the limiter, or be answered, during
a pause does so when it ends. Off by default.

Senders behave like the connector's client: ``threads`` threads each take a batch from the sender's work
(fed at ``feed`` batches/s, or all there at once), ask the estimator for a send time and an in-flight
slot (waiting threads are served first come, first served), and retry a 429'd batch at once (the
controller paces the retry). A 5xx (``error_rate``, answered before the limiter, so it costs no quota)
is retried after the client's backoff, 0.5 s x 2^attempt with full jitter, capped at 30 s.

Figures: a sender's ``end`` is the answer time of its last accepted request. The **ideal** time is when
the limit's integral reaches the work (for a per-minute quota: ``work / (M / 60)``), and
**efficiency** = ideal / wall time, as in the benchmarks.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from destination_iterable.iterable.rate import ERROR, OK, RATE_LIMITED, RateEstimator

INF = math.inf


# ---------------------------------------------------------------------------- limiters
class Limiter:
    """A server-side limit that may change over time; ``admit`` says whether a request arriving at ``t`` passes.

    ``limits`` is a list of (from_time, requests per second); calls to ``admit`` come in time order.
    """

    def __init__(self, limits: list[tuple[float, float]]) -> None:
        self.limits = sorted(limits)

    def limit_at(self, t: float) -> float:
        """Nominal limit (requests/s) in force at ``t``."""
        rate = self.limits[0][1]
        for start, value in self.limits:
            if start > t:
                break
            rate = value
        return rate

    def ideal_time(self, work: int) -> float:
        """When the nominal limit's integral from 0 reaches ``work`` requests."""
        done, points = 0.0, [s for s, _ in self.limits if s > 0] + [INF]
        t = 0.0
        for end in points:
            rate = self.limit_at(t)
            if rate > 0 and done + rate * (end - t) >= work:
                return t + (work - done) / rate
            done += rate * (end - t) if end < INF else 0.0
            t = end
        return INF

    def admit(self, t: float) -> bool:
        raise NotImplementedError


class Unlimited(Limiter):
    """Admits everything (for the user-cap test)."""

    def __init__(self) -> None:
        super().__init__([(0.0, INF)])

    def admit(self, t: float) -> bool:
        return True


class TokenBucket(Limiter):
    """Refill ``L(t)`` per second, capacity ``max(1, L(t) x burst_s)`` tokens, full at the start."""

    def __init__(self, limits: list[tuple[float, float]], burst_s: float = 1.0) -> None:
        super().__init__(limits)
        self.burst_s = burst_s
        self.time = 0.0
        self.tokens = self.capacity(self.limit_at(0.0))

    def capacity(self, rate: float) -> float:
        """Bucket capacity in tokens for a refill rate."""
        return max(1.0, rate * self.burst_s)

    def admit(self, t: float) -> bool:
        points = [self.time] + [s for s, _ in self.limits if self.time < s < t] + [t]
        for lo, hi in zip(points, points[1:], strict=False):
            rate = self.limit_at(lo)
            self.tokens = min(self.capacity(rate), self.tokens + rate * (hi - lo))
        self.time = max(self.time, t)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class FixedWindow(Limiter):
    """At most ``window x L`` admitted requests per aligned window ``[k x window, (k + 1) x window)``
    (``L`` as in force at the window's start). ``window=60`` is a per-minute quota."""

    def __init__(self, limits: list[tuple[float, float]], window: float = 1.0) -> None:
        super().__init__(limits)
        self.window = window
        self.current = -1
        self.count = 0

    def admit(self, t: float) -> bool:
        k = math.floor(t / self.window)
        if k != self.current:
            self.current, self.count = k, 0
        if self.count < round(self.limit_at(k * self.window) * self.window):
            self.count += 1
            return True
        return False


class MinuteQuota(FixedWindow):
    """At most ``per_minute`` admitted requests per wall-clock minute (``[60 k, 60 k + 60)``)."""

    def __init__(self, per_minute: float) -> None:
        super().__init__([(0.0, per_minute / 60.0)], window=60.0)


class SlidingWindow(Limiter):
    """At most ``L`` admitted requests in any 1 s: a request at ``t`` passes if fewer than ``L`` were
    admitted in ``(t - 1, t]`` (a sliding log)."""

    def __init__(self, limits: list[tuple[float, float]]) -> None:
        super().__init__(limits)
        self.log: deque[float] = deque()

    def admit(self, t: float) -> bool:
        while self.log and self.log[0] <= t - 1.0:
            self.log.popleft()
        if len(self.log) < round(self.limit_at(t)):
            self.log.append(t)
            return True
        return False


LIMITERS: dict[str, Callable[[list[tuple[float, float]]], Limiter]] = {
    "bucket": TokenBucket,
    "fixed": FixedWindow,
    "sliding": SlidingWindow,
}


# ---------------------------------------------------------------------------- scenario and results
@dataclass
class Scenario:
    """One simulated run: ``senders`` independent senders, each with ``requests`` batches of work."""

    limiter: Callable[[], Limiter]
    requests: int = 1000  # accepted requests each sender needs
    senders: int = 1
    duration: float | None = None  # stop at this simulated time instead (for open-ended runs)
    latency: float = 0.25  # mean round trip, seconds
    jitter: float = 0.15  # round trip is uniform in [latency - jitter, latency + jitter]
    up_share: float = 1 / 3  # share of the round trip before the limiter
    threads: int = 32  # sender threads per sender
    max_in_flight: int = 32
    max_rps: float | None = None
    feed: list[tuple[float, float]] | None = None  # (from_time, batches/s) the reader hands out; None: all
    error_rate: float = 0.0  # share of attempts answered 5xx (before the limiter)
    start_gap: float = 0.0  # sender i starts at i x start_gap
    pause_every: float = 0.0  # the server stops for pause_s at the end of every such period (0: never) ...
    pause_s: float = 0.0  # ... and whatever arrives or is answered meanwhile waits for its end
    seed: int = 1
    estimator: Callable[[], object] | None = None  # replaces the default RateEstimator


@dataclass
class SenderResult:
    """Figures of one sender."""

    work: int
    start: float = 0.0
    sent: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0
    end: float = INF  # answer time of the last accepted request (INF: unfinished)
    max_batch_s: float = 0.0  # longest time from a batch's first attempt to its acceptance
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (time, target_rps)
    sends: list[float] = field(default_factory=list)
    in_flight_limits: list[int] = field(default_factory=list)
    max_in_flight_seen: int = 0


@dataclass
class SimResult:
    """Figures of one run (all senders)."""

    senders: list[SenderResult]
    ideal: float  # seconds the limit needs for all senders' work
    end: float  # when the last sender finished (or the duration)
    limiter: Limiter

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.senders)

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.senders)

    @property
    def rate_limited(self) -> int:
        return sum(s.rate_limited for s in self.senders)

    @property
    def efficiency(self) -> float:
        """Ideal time / wall time (0 if a sender did not finish)."""
        return self.ideal / self.end if self.end < INF else 0.0

    @property
    def wall_over_ideal(self) -> float:
        return self.end / self.ideal if self.ideal > 0 else math.inf

    @property
    def share_429(self) -> float:
        """Share of requests answered 429."""
        return self.rate_limited / self.sent if self.sent else 0.0

    @property
    def fairness(self) -> float:
        """Slowest sender's finish time / fastest's (from each one's start)."""
        times = [s.end - s.start for s in self.senders]
        return max(times) / min(times)

    def describe(self) -> str:
        """One line with the figures, for assertion messages."""
        ends = ",".join(f"{s.end:.1f}" for s in self.senders)
        return (
            f"eff={self.efficiency:.3f} wall/ideal={self.wall_over_ideal:.3f} 429={self.share_429:.2%} "
            f"sent={self.sent} ok={self.ok} ideal={self.ideal:.1f}s end={ends}s"
        )


# ---------------------------------------------------------------------------- the simulation
class _Sender:
    """One connector process: its estimator, threads and work."""

    def __init__(self, sim: _Sim, index: int, sc: Scenario) -> None:
        self.sim, self.index, self.sc = sim, index, sc
        self.est = sc.estimator() if sc.estimator else RateEstimator(max_rps=sc.max_rps, max_in_flight=sc.max_in_flight)
        start = index * sc.start_gap
        self.res = SenderResult(work=sc.requests, start=start, timeline=[(start, self.est.target_rps)])
        self.handed_out = 0  # batches taken by threads
        self.idle = sc.threads  # threads without a batch
        self.waiting: deque[tuple[float, int]] = deque()  # (first attempt, attempts) of threads waiting to send
        self.in_flight = 0
        self.wake_at = INF
        self.feed_wake = INF

    # work -------------------------------------------------------------------
    def batches_fed(self, now: float) -> int:
        """Batches the reader has handed out by ``now``."""
        if self.sc.feed is None:
            return self.sc.requests
        total, points = 0.0, sorted(self.sc.feed)
        for i, (start, rate) in enumerate(points):
            end = points[i + 1][0] if i + 1 < len(points) else INF
            t0, t1 = start + self.res.start, min(now, end + self.res.start)
            if t1 > t0:
                total += rate * (t1 - t0)
        return min(self.sc.requests, int(total + 1e-9))

    def next_feed_time(self, now: float) -> float:
        """When the next batch is handed out (searching forward in small steps is enough here)."""
        have = self.batches_fed(now)
        t = now
        while t < now + 3600:
            t += 0.01
            if self.batches_fed(t) > have:
                return t
        return INF

    def take_batches(self, now: float) -> None:
        """Idle threads take the batches the reader has handed out."""
        available = self.batches_fed(now) - self.handed_out
        while self.idle and available > 0:
            self.idle -= 1
            available -= 1
            self.handed_out += 1
            self.waiting.append((now, 0))
        if self.idle and self.handed_out < self.sc.requests and self.feed_wake == INF:
            self.feed_wake = self.next_feed_time(now)
            self.sim.push(self.feed_wake, "feed", (self,))

    # sending ------------------------------------------------------------------
    def dispatch(self, now: float) -> None:
        est, res = self.est, self.res
        while self.waiting and self.in_flight < est.in_flight_limit:
            t = est.next_send_time(now)
            if t > now + 1e-12:
                if t < self.wake_at:
                    self.wake_at = t
                    self.sim.push(t, "wake", (self,))
                break
            first, attempts = self.waiting.popleft()
            token = est.on_sent(now)
            self.in_flight += 1
            res.sent += 1
            res.sends.append(now)
            res.max_in_flight_seen = max(res.max_in_flight_seen, self.in_flight)
            rtt = self.sim.rng.uniform(self.sc.latency - self.sc.jitter, self.sc.latency + self.sc.jitter)
            arrival = self.sim.after_pause(now + self.sc.up_share * rtt)
            self.sim.push(arrival, "arrive", (self, now, token, rtt, first, attempts + 1))
        self.record(now)

    def record(self, now: float) -> None:
        rps = self.est.target_rps
        if abs(rps - self.res.timeline[-1][1]) > 1e-9:
            self.res.timeline.append((now, rps))

    def answered(self, now: float, sent: float, token: object, outcome: str, first: float, attempts: int) -> None:
        res = self.res
        self.in_flight -= 1
        self.est.on_result(now, token, outcome, now - sent)
        res.in_flight_limits.append(self.est.in_flight_limit)
        if outcome == OK:
            res.ok += 1
            res.max_batch_s = max(res.max_batch_s, now - first)
            self.idle += 1
            if res.ok == res.work:
                res.end = now
            self.take_batches(now)
        elif outcome == RATE_LIMITED:
            res.rate_limited += 1
            self.waiting.append((first, attempts))  # the client retries at once; the controller paces it
        else:
            res.errors += 1
            delay = self.sim.rng.uniform(0, min(30.0, 0.5 * 2**attempts))
            self.sim.push(now + delay, "retry", (self, first, attempts))
        self.dispatch(now)


class _Sim:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.limiter = sc.limiter()
        self.events: list[tuple[float, int, str, tuple]] = []
        self.seq = 0
        self.senders = [_Sender(self, i, sc) for i in range(sc.senders)]

    def after_pause(self, t: float) -> float:
        """``t``, or the end of the server's pause that ``t`` falls in."""
        every, pause = self.sc.pause_every, self.sc.pause_s
        if every <= 0 or pause <= 0:
            return t
        end = (math.floor(t / every) + 1) * every
        return end if t >= end - pause else t

    def push(self, t: float, kind: str, data: tuple) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, data))

    def run(self) -> SimResult:
        sc = self.sc
        for sender in self.senders:
            self.push(sender.res.start, "start", (sender,))
        end = 0.0
        while self.events:
            now, _, kind, data = heapq.heappop(self.events)
            if sc.duration is not None and now > sc.duration:
                break
            sender = data[0]
            if kind == "arrive":
                _, sent, token, rtt, first, attempts = data
                if sc.error_rate and self.rng.random() < sc.error_rate:
                    outcome = ERROR
                else:
                    outcome = OK if self.limiter.admit(now) else RATE_LIMITED
                answer = self.after_pause(max(sent + rtt, now + (1 - sc.up_share) * rtt))
                self.push(answer, "done", (sender, sent, token, outcome, first, attempts))
            elif kind == "done":
                sender.answered(now, *data[1:])
                if all(s.res.end < INF for s in self.senders):
                    end = now
                    break
            elif kind == "wake":
                if now >= sender.wake_at:
                    sender.wake_at = INF
                sender.dispatch(now)
            elif kind == "retry":
                sender.waiting.append((data[1], data[2]))
                sender.dispatch(now)
            elif kind == "feed":
                sender.feed_wake = INF
                sender.take_batches(now)
                sender.dispatch(now)
            else:  # start
                sender.take_batches(now)
                sender.dispatch(now)
        if sc.duration is not None and not end:
            end = sc.duration
        elif not end:
            end = INF
        ideal = self.limiter.ideal_time(sc.requests * sc.senders) if sc.duration is None else INF
        return SimResult([s.res for s in self.senders], ideal, end, self.limiter)


def simulate(sc: Scenario) -> SimResult:
    """Run one scenario and return its figures."""
    return _Sim(sc).run()


# ---------------------------------------------------------------------------- the figures table
_B, _F, _S = TokenBucket, FixedWindow, SlidingWindow
_SCHEDULE = [(0.0, 20.0), (8.0, 5.0), (40.0, 20.0)]
MODELS: list[tuple[str, dict]] = [  # (name, Scenario arguments) for docs/rate-control.md
    ("token bucket 20/s, 1,000 req", {"limiter": lambda: _B([(0, 20)]), "requests": 1000}),
    ("token bucket 20/s, 6,000 req", {"limiter": lambda: _B([(0, 20)]), "requests": 6000}),
    ("token bucket 20/s, 50,000 req", {"limiter": lambda: _B([(0, 20)]), "requests": 50_000}),
    ("token bucket 5/s, 1,000 req", {"limiter": lambda: _B([(0, 5)]), "requests": 1000}),
    ("token bucket 5/s, 6,000 req", {"limiter": lambda: _B([(0, 5)]), "requests": 6000}),
    ("fixed window 20/s, 1,000 req", {"limiter": lambda: _F([(0, 20)]), "requests": 1000}),
    ("fixed window 20/s, 6,000 req", {"limiter": lambda: _F([(0, 20)]), "requests": 6000}),
    ("sliding window 20/s, 1,000 req", {"limiter": lambda: _S([(0, 20)]), "requests": 1000}),
    ("sliding window 20/s, 6,000 req", {"limiter": lambda: _S([(0, 20)]), "requests": 6000}),
    ("token bucket 20/s, 300 req", {"limiter": lambda: _B([(0, 20)]), "requests": 300}),
    ("fixed window 20/s, 300 req", {"limiter": lambda: _F([(0, 20)]), "requests": 300}),
    ("sliding window 20/s, 300 req", {"limiter": lambda: _S([(0, 20)]), "requests": 300}),
    ("token bucket 5/s, 300 req", {"limiter": lambda: _B([(0, 5)]), "requests": 300}),
    ("2 senders, token bucket 20/s, 400 req each", {"limiter": lambda: _B([(0, 20)]), "requests": 400, "senders": 2}),
    ("4 senders, token bucket 20/s, 400 req each", {"limiter": lambda: _B([(0, 20)]), "requests": 400, "senders": 4}),
    ("4 senders 0.4 s apart, token bucket 20/s, 400 req each",  # as the bench's processes start up
     {"limiter": lambda: _B([(0, 20)]), "requests": 400, "senders": 4, "start_gap": 0.4}),
    ("2 senders, sliding window 20/s, 400 req each", {"limiter": lambda: _S([(0, 20)]), "requests": 400, "senders": 2}),
    ("token bucket 20 -> 5 (8-40 s) -> 20, 1,000 req", {"limiter": lambda: _B(_SCHEDULE), "requests": 1000}),
    ("fixed window 20 -> 5 (8-40 s) -> 20, 1,000 req", {"limiter": lambda: _F(_SCHEDULE), "requests": 1000}),
    ("sliding window 20 -> 5 (8-40 s) -> 20, 1,000 req", {"limiter": lambda: _S(_SCHEDULE), "requests": 1000}),
    ("per-minute quota 180, 900 req", {"limiter": lambda: MinuteQuota(180), "requests": 900}),
    ("token bucket 20/s, server pauses 0.3 s every 4 s, 1,000 req",
     {"limiter": lambda: _B([(0, 20)]), "requests": 1000, "pause_every": 4.0, "pause_s": 0.3}),
    ("fixed window 20/s, server pauses 0.3 s every 4 s, 1,000 req",
     {"limiter": lambda: _F([(0, 20)]), "requests": 1000, "pause_every": 4.0, "pause_s": 0.3}),
    ("sliding window 20/s, server pauses 0.3 s every 4 s, 1,000 req",
     {"limiter": lambda: _S([(0, 20)]), "requests": 1000, "pause_every": 4.0, "pause_s": 0.3}),
]


def main(seeds: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> None:
    """Print the figures table (worst and mean over seeds) for docs/rate-control.md."""
    print("| model | efficiency min / mean | 429 share max / mean | wall / ideal max | slowest / fastest max / mean |")
    print("|---|---|---|---|---|")
    for name, kwargs in MODELS:
        results = [simulate(Scenario(seed=seed, **kwargs)) for seed in seeds]
        eff = [r.efficiency for r in results]
        share = [r.share_429 for r in results]
        fair = [r.fairness for r in results] if kwargs.get("senders", 1) > 1 else None
        print(
            f"| {name} | {min(eff):.3f} / {sum(eff) / len(eff):.3f} | {max(share):.2%} / {sum(share) / len(share):.2%} "
            f"| {max(r.wall_over_ideal for r in results):.3f} "
            f"| {f'{max(fair):.2f} / {sum(fair) / len(fair):.2f}' if fair else '-'} |"
        )


if __name__ == "__main__":
    main()
