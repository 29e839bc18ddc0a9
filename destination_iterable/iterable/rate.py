"""Adaptive rate control for Iterable's list subscribe/unsubscribe endpoints.

Iterable limits these endpoints per project with an undocumented limiter and answers HTTP 429 (no
Retry-After) when it refuses a request. The controller assumes nothing about that limiter (token bucket,
fixed or sliding window, per-minute quota, other senders on the same project, a limit that moves): it
paces requests at a target rate and moves the target on 429s only. :class:`RateEstimator` is the
algorithm (pure: every method takes ``now``); :class:`AdaptiveRateController` wraps it for sender
threads. docs/rate-control.md has the design, every constant and the simulated figures per limiter.

* **Pacing**: requests start ``1 / target`` apart (no bursts); at most
  ``ceil(target x smoothed round trip x IN_FLIGHT_HEADROOM) + 1`` are in flight.
* **Start-up**: the target doubles every START_DOUBLING_S (or round trip, if longer) until the first 429.
* **Cut**: the start-up's first 429 cuts the target to START_CUT x its rate. After that, the first 429
  of an epoch (a request sent since the last cut; older ones are ignored) cuts the target to ``BETA x``
  the rate that request was sent at, or lower, to the rate the server accepted lately (overload: a
  lower limit, an exhausted quota), but never below ``HEAVY x`` that rate in one step. The rate the
  429 came at becomes the reference (right after the start-up's cut: at least the accepted rate).
* **Growth** (CUBIC-like, in busy seconds since the cut): concave back to the reference over K
  (``K_N`` requests' worth of time, at most ``K_MAX``): fast far below it, flat near it; then convex
  above it (``((t - K) / P_S)^3`` in log terms): slow just past it, faster and faster to find a raised
  limit. Never more than GROWTH_PER_RTT per round trip. Time counts only while sends keep to the
  schedule and the last answer was an acceptance: a rate held back by demand or by the in-flight bound
  does not grow (it would burst when the brake is gone), nor does it during 429s or errors.
* **Errors** (5xx, timeouts, dropped connections) are not rate signals: they never cut the target.
* ``max_rps`` is a hard cap: the target never exceeds it and two sends are never closer than
  ``1 / max_rps``, so no window of one second holds more than ``max_rps`` sends (rounded up).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

OK = "ok"
RATE_LIMITED = "rate_limited"
ERROR = "error"
_OUTCOMES = (OK, RATE_LIMITED, ERROR)


class Stopped(Exception):
    """Raised by :meth:`AdaptiveRateController.acquire` when the stop event is set."""


class _Token(NamedTuple):
    """What a request carries from its start to its answer."""

    epoch: int  # the cut epoch it was sent in: a 429 of an older epoch is stale
    rate: float  # the target when it was sent


class RateEstimator:
    """Pure algorithm, no threads, no real time: every method takes ``now`` (monotonic seconds).

    The constants were searched against every simulated limiter at once (docs/rate-control.md has the
    trade-offs and figures); each comment says what it does and why it has this value.
    """

    # cuts
    BETA = 0.87  # a lone 429 cuts to this share of the rate it was sent at: deep enough to leave a
    # crossed limit at once, shallow enough that windows (no burst to absorb the dip) keep ~95 %
    HEAVY = 0.45  # under overload the cut goes down to the accepted rate, but one cut never below this
    # share: a stale burst or a second of silence cannot throw the rate to the floor in one step
    START_CUT = 0.6  # the start-up's first 429 cuts to this share of its rate. A token bucket starts full and
    # hides its limit until the start-up has drained the burst, by then at ~2x the limit, and the last
    # second's acceptances still hold that burst; a cut to them would leave the storm in 3-4 steps, each with
    # its own 429s. A window limiter's first 429 comes near its limit, so 0.6 costs it a short climb back
    ACCEPT_N = 15  # the accepted rate is counted over this many requests' worth of time (at least 1 s):
    # one answer more or less moves it by < 7 %, and a new overload shows within about a second
    # growth
    K_N = 110  # back at the reference after the time this many requests take: about one 429 (the end
    # of a probe) per ~100 requests, ~1 % of 429s at any rate ...
    K_MAX = 12.0  # ... but after at most this many busy seconds, so a raised limit or freed room is
    # found within ~K_MAX + the climb even at low rates (at 5/s a cycle ends on a drained bucket after ~10 s,
    # ~50 requests: ~1.9 % 429s on a long run)
    P_S = 3.0  # convex probe past the reference: +0.5 % after 0.5 s, +3.8 % after 1 s, +35 % after 2 s
    GROWTH_PER_RTT = 0.05  # at most +5 % per round trip: a probe that crosses the limit overshoots by
    # ~5 % of a round trip's requests before the 429 is back (20 %/s at 250 ms: 5 -> 20/s in ~7 s)
    START_DOUBLING_S = 2.0  # start-up doubles every this many seconds or round trip, whichever is
    # longer. A token bucket's burst hides its limit until the start-up has drained it; at this pace the
    # rate is ~2x the limit by then (3.2x at 0.65 s), so fewer requests are in flight to be refused when
    # the first 429 comes back. Fixed, not tied to each sender's first noisy latency samples, so senders
    # that start together ramp alike
    # pacing
    PACE_CREDIT = 0.25  # share of an interval a late sender may catch up (thread wake-up jitter)
    BUSY_SLACK = 0.25  # a send later than this share of an interval after the last is off schedule
    LATENCY_ALPHA = 0.125  # EWMA weight of a new round-trip sample (TCP's SRTT gain)
    IN_FLIGHT_HEADROOM = 1.5  # in-flight bound = target x smoothed round trip x this (+1): room for
    # round trips of 1.5x the mean, no more

    def __init__(
        self,
        *,
        initial_rps: float = 10.0,  # reaches 20/s in 2 s; a lower limit costs a few 429s once
        min_rps: float = 0.2,  # the floor: one probe every 5 s keeps an exhausted quota in sight
        max_rps: float | None = None,
        max_in_flight: int = 32,
    ) -> None:
        if min_rps <= 0 or initial_rps <= 0:
            raise ValueError("initial_rps and min_rps must be > 0")
        if max_rps is not None and max_rps <= 0:
            raise ValueError("max_rps must be > 0")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._min = min(min_rps, max_rps) if max_rps is not None else min_rps
        self._max = max_rps if max_rps is not None else math.inf
        self._max_in_flight = max_in_flight
        self._target = self._clamp(initial_rps)
        self._ref: float | None = None  # reference rate of the growth curve; None during the start-up
        self._depth = 0.0  # log(target / ref) right after the last cut
        self._busy = 0.0  # position on the curve: busy seconds since the last cut
        self._epoch = 0
        self._accepted: deque[float] = deque()  # answer times of accepted requests (recent ones)
        self._last_sent: float | None = None
        self._slot = -math.inf  # earliest start of the next request
        self._srtt: float | None = None
        self._held = False  # the last answer was not an acceptance: no growth until one is

    # ------------------------------------------------------------------ public API
    @property
    def target_rps(self) -> float:
        """Current target request rate (requests/second)."""
        return self._target

    @property
    def in_flight_limit(self) -> int:
        """How many requests may be in flight: rate x latency x headroom, bounded."""
        rtt = self._srtt if self._srtt is not None else 1.0
        limit = math.ceil(self._target * rtt * self.IN_FLIGHT_HEADROOM) + 1
        return max(1, min(limit, self._max_in_flight))

    def next_send_time(self, now: float) -> float:
        """Earliest time the next request may start (pacing)."""
        return max(now, self._slot)

    def on_sent(self, now: float) -> _Token:
        """Record a request start; returns the token to hand back with its result."""
        # A sender a little late may catch up (thread wake-up jitter); later than that, the schedule
        # restarts from now, so there is no burst after idle time. Never closer than the user's cap.
        on_time = now - self._slot <= self.PACE_CREDIT / self._target
        self._grow(now)
        self._slot = (self._slot if on_time else now) + 1.0 / self._target
        if self._max < math.inf:
            self._slot = max(self._slot, now + 1.0 / self._max)
        return _Token(self._epoch, self._target)

    def on_result(self, now: float, token: _Token, outcome: str, latency: float) -> None:
        """Record the outcome of a request started ``latency`` seconds before ``now``."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self._held = outcome != OK
        if outcome == ERROR:
            return  # not a rate signal
        if latency > 0:
            self._srtt = latency if self._srtt is None else self._srtt + self.LATENCY_ALPHA * (latency - self._srtt)
        accepted = self._accepted
        while accepted and accepted[0] <= now - self.ACCEPT_N / self._min:
            accepted.popleft()  # older than any window a cut can use
        if outcome == OK:
            accepted.append(now)
        elif token.epoch == self._epoch:
            self._cut(now, token.rate)

    # ------------------------------------------------------------------ internals
    def _clamp(self, rps: float) -> float:
        return min(self._max, max(self._min, rps))

    def _set_target(self, new: float) -> None:
        old, new = self._target, self._clamp(new)
        if new != old and self._slot > -math.inf:
            # Rescale the pending gap so that a cut, or a raise, takes effect at once.
            self._slot += 1.0 / new - 1.0 / old
        self._target = new

    def _cut(self, now: float, sent_rate: float) -> None:
        """The first 429 of a request sent since the last cut: cut, and start a new epoch."""
        # What the server accepted lately: ACCEPT_N requests' worth of time at the sent rate, at least
        # a second. Under overload that is what passes (for us), whatever the limiter.
        window = max(1.0, self.ACCEPT_N / sent_rate)
        count = 0
        for answered in reversed(self._accepted):
            if answered <= now - window:
                break
            count += 1
        accepted = count / window
        target = min(self.BETA * sent_rate, max(self.HEAVY * sent_rate, accepted))
        reference = sent_rate
        if self._ref is None:  # the start-up's first 429
            target = self.START_CUT * sent_rate
        elif self._epoch == 1:  # the last cut was the start-up's
            # Requests sent right after the start-up's cut reach a limiter still full of the start-up's
            # rate (a window's count, an empty bucket): their 429 says little about the lower rate they
            # were sent at, so the reference is at least what the server accepted lately.
            reference = max(sent_rate, min(accepted, self._ref))
        self._ref = self._clamp(reference)
        self._depth = math.log(self._clamp(target) / self._ref)
        self._busy = 0.0
        self._epoch += 1
        self._set_target(target)

    def _k(self) -> float:
        """Busy seconds from a cut back to the reference."""
        assert self._ref is not None
        return min(self.K_MAX, self.K_N / self._ref)

    def _grow(self, now: float) -> None:
        """Move along the growth curve by the time since the previous send, if it was on schedule."""
        last, self._last_sent = self._last_sent, now
        if last is None or now <= last or self._held or self._target >= self._max:
            return
        busy = now - last
        if busy > (1.0 + self.BUSY_SLACK) / self._target:
            return  # held back by demand or by the in-flight bound: no growth
        rtt = self._srtt if self._srtt is not None else self.START_DOUBLING_S
        if self._ref is None:
            self._set_target(self._target * 2.0 ** (busy / max(self.START_DOUBLING_S, rtt)))
            return
        self._busy += busy
        cap = self._target * math.exp(self.GROWTH_PER_RTT * busy / max(rtt, 1e-3))
        self._set_target(min(cap, self._curve(self._busy)))

    def _curve(self, busy: float) -> float:
        """Target ``busy`` seconds after a cut: ``ref x exp(x)``, with x = depth x (1 - busy / K)^3 up to
        K (concave, from the cut back to the reference), then ((busy - K) / P_S)^3 (convex)."""
        assert self._ref is not None
        k = self._k()
        if busy <= k:
            x = self._depth * (1.0 - busy / k) ** 3
        else:
            x = min(50.0, ((busy - k) / self.P_S) ** 3)  # bounded: no overflow after hours
        return self._ref * math.exp(x)


@dataclass
class Permit:
    """Handed out by :meth:`AdaptiveRateController.acquire`; give it back with ``release``."""

    token: _Token
    started: float
    released: bool = field(default=False, compare=False)


class AdaptiveRateController:
    """Thread-safe wrapper around :class:`RateEstimator` used by sender threads."""

    TIMELINE_MAX = 10_000  # timeline entries kept (halved when full)
    WAIT_CHUNK_S = 0.05  # the pacer sleeps at most this long at a time, so it sees the stop event
    SLOT_WAIT_S = 1.0  # safety-net timeout of condition waits (they are notified)

    def __init__(
        self,
        *,
        initial_rps: float = 10.0,
        min_rps: float = 0.2,
        max_rps: float | None = None,
        max_in_flight: int = 32,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._est = RateEstimator(
            initial_rps=initial_rps, min_rps=min_rps, max_rps=max_rps, max_in_flight=max_in_flight
        )
        self._max_rps = max_rps
        self._clock = clock
        self._sleep = sleep
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # waiting for an in-flight slot (release notifies)
        self._turn = threading.Condition(lock)  # waiting to pace the next request (the pacer notifies)
        self._pacer: object | None = None  # the acquire() call that sleeps until the next send time
        self._in_flight = 0
        self._counts = {"sent": 0, OK: 0, RATE_LIMITED: 0, ERROR: 0}
        self.timeline: list[tuple[float, float]] = []
        self.first_sent: float | None = None  # clock time of the first request (benchmarks: the paced window)
        self.last_answered: float | None = None  # clock time of the last answer
        self._record(self._clock())

    def acquire(self, stop: threading.Event | None = None) -> Permit:
        """Block until an in-flight slot is free and pacing allows a request.

        Of the threads waiting for the next send time, one (the pacer) sleeps until then, in chunks of
        WAIT_CHUNK_S; the others wait for their turn (`_turn`) until the pacer has sent or given up the
        role, and then one of them becomes the pacer. Threads waiting for an in-flight slot wait on
        `_cond`, which `release` notifies. So a crowd of sender threads does not wake up for every slot
        or every answer, and the schedule is the same as with every waiting thread sleeping. A thread
        that sees the stop event wakes the next waiter of each kind, so all of them stop about as
        quickly as the pacer notices.
        """
        me = object()
        while True:
            with self._cond:
                if stop is not None and stop.is_set():
                    self._leave_pacing(me)
                    self._cond.notify()
                    self._turn.notify()
                    raise Stopped()
                now = self._clock()
                if self._in_flight >= self._est.in_flight_limit:
                    self._leave_pacing(me)
                    self._cond.wait(self.SLOT_WAIT_S)  # release() notifies; the timeout is only a safety net
                    continue
                wait = self._est.next_send_time(now) - now
                if wait <= 0:
                    token = self._est.on_sent(now)
                    self._in_flight += 1
                    self._counts["sent"] += 1
                    if self.first_sent is None:
                        self.first_sent = now
                    self._record(now)
                    if self._pacer is None or self._pacer is me:
                        self._pacer = None
                        self._turn.notify()  # the next waiting thread paces the next request
                    return Permit(token=token, started=now)
                if self._pacer is None:
                    self._pacer = me
                elif self._pacer is not me:
                    self._turn.wait(self.SLOT_WAIT_S)  # the pacer notifies; the timeout is only a safety net
                    continue
            try:
                self._sleep(min(wait, self.WAIT_CHUNK_S))
            except BaseException:
                with self._cond:
                    self._leave_pacing(me)
                raise

    def _leave_pacing(self, me: object) -> None:
        """Give up the pacer role (holding the lock), waking a thread waiting for its turn."""
        if self._pacer is me:
            self._pacer = None
            self._turn.notify()

    def release(self, permit: Permit, outcome: str) -> None:
        """Report the outcome of a request started with ``permit``."""
        with self._cond:
            if permit.released:
                raise ValueError("permit released twice")
            permit.released = True
            now = self._clock()
            self._in_flight -= 1
            self._est.on_result(now, permit.token, outcome, now - permit.started)
            self._counts[outcome] += 1
            self.last_answered = now
            self._record(now)
            self._cond.notify_all()

    @property
    def in_flight_limit(self) -> int:
        """How many requests may be in flight now (read without the lock: a momentary value)."""
        return self._est.in_flight_limit

    def snapshot(self) -> dict:
        """Counters and current limits, for progress lines and the end-of-sync summary."""
        with self._cond:
            return {
                "target_rps": self._est.target_rps,
                "max_rps": self._max_rps,
                "sending_s": (self.last_answered - self.first_sent
                              if self.first_sent is not None and self.last_answered is not None else None),
                "in_flight": self._in_flight,
                "in_flight_limit": self._est.in_flight_limit,
                "sent": self._counts["sent"],
                "ok": self._counts[OK],
                "rate_limited": self._counts[RATE_LIMITED],
                "errors": self._counts[ERROR],
            }

    def _record(self, now: float) -> None:
        rps = self._est.target_rps
        if self.timeline and abs(rps - self.timeline[-1][1]) <= 0.01 * self.timeline[-1][1]:
            return
        self.timeline.append((now, rps))
        if len(self.timeline) > self.TIMELINE_MAX:
            self.timeline[:] = self.timeline[::2]
