"""Adaptive rate control for Iterable's list subscribe/unsubscribe endpoints.

Iterable limits these endpoints per project with an undocumented token bucket and answers
HTTP 429 (no Retry-After) when it is empty. :class:`RateEstimator` finds the limit and keeps
the request rate just under it; :class:`AdaptiveRateController` wraps it for sender threads.

How it works (docs/performance.md has the measured figures):

* **Start-up**: the rate doubles every 0.5 s (at least two round trips) of on-schedule
  sending until the first 429.
* **Measure**: a 429 means the bucket was empty when that request arrived. Between two such
  moments the server accepted ``limit x time`` requests (+/- 1), whatever its burst size, so
  our accepted requests between two 429s measure the limit. When our rate stayed low long
  enough for the bucket to overflow, or at start-up (bucket full), a bucket holding BURST_S
  seconds of the limit is assumed and the limit that empties it at the 429 is solved for.
* **Cut** once per epoch to ``BETA x estimate``; 429s of requests sent before the cut, or
  within a round trip after it, are ignored. A rare 429 below the estimate is arrival jitter
  (the curve restarts lower); frequent ones mean the limit fell (cut to the accepted rate).
* **Probe**: from the cut the target rises back to the estimate, then slowly to
  ``(1 + PROBE_ABOVE) x estimate``, where the surplus has used up the deficit and the next
  429 is due; it stays there a while, then speeds up to find a raised limit. Cycles last
  ~40 s (at least ~200 requests), so one 429 per cycle is < 1 % of requests.
* **Pacing**: requests are spaced ``1 / target`` apart (no bursts); at most
  ``ceil(target x smoothed latency x 1.5) + 1`` are in flight. The rate grows only while
  senders keep to the schedule, so a rate held back by demand or latency never bursts later.
* **Errors** (5xx, timeouts, dropped connections) are not rate limits and never move the
  target; five in a row halve the in-flight bound, and each answered request gives one back.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

OK = "ok"
RATE_LIMITED = "rate_limited"
ERROR = "error"
_OUTCOMES = (OK, RATE_LIMITED, ERROR)

_START = "start"
_PROBE = "probe"


class _Fit(NamedTuple):
    """A limit measured between two moments the server's bucket was empty (or full)."""

    limit: float
    accepted: int  # our accepted requests in between
    span: float  # seconds in between
    ambiguous: bool  # the bucket overflowed and a range of limits fits the data


class Stopped(Exception):
    """Raised by :meth:`AdaptiveRateController.acquire` when the stop event is set."""


class RateEstimator:
    """Pure algorithm, no threads, no real time: every method takes ``now`` (monotonic seconds)."""

    # start-up
    START_DOUBLING_S = 0.5  # busy seconds per doubling during start-up ...
    START_DOUBLING_RTTS = 2.0  # ... and at least this many round trips
    BURST_S = 1.0  # assumed bucket depth (seconds of the limit) when it must be modelled
    # cuts
    BETA = 0.92  # target after a cut, as a share of the estimated limit
    MD_FACTOR = 0.6  # estimate = this x rate when the limit cannot be measured ...
    MIN_SHARE, MAX_SHARE = 0.5, 0.95  # ... or the accepted share, within these bounds, below it
    MIN_SAMPLES = 8  # accepted requests needed between two 429s to measure the limit ...
    MIN_SPAN_S = 0.5  # ... over at least this long (and one round trip)
    CONFIDENT_SAMPLES = 30  # a measurement with this many requests ...
    CONFIDENT_RTTS = 15.0  # ... over this many round trips switches to the slow curve
    HISTORY_S = 90.0  # how far back 429 markers are used
    AMBIGUITY = 0.02  # a fit whose possible limits differ more than this is not confident
    FIT_STEPS = 20  # bisection steps of a fit
    NOISE_MAX = 5  # 429s below the estimate in one epoch that always mean the limit fell ...
    NOISE_SHARE = 0.2  # ... or from 3 on, this share of the epoch's results ...
    NOISE_FIT = 0.95  # ... or when the limit measured since the cut is below this x the rate
    # probing
    PROBE_ABOVE = 0.04  # the curve reaches (1 + this) x estimate at its mirror point ...
    PLATEAU_K = 2.0  # ... and stays there this many K
    K_SLOW_S = 8.0  # busy seconds from a cut back to a measured estimate, and at least
    K_SLOW_REQUESTS = 40.0  # ... this many requests' worth (low limits)
    K_FAST_S = 3.0  # same, after a guessed estimate or once the limit seems to have risen ...
    K_FAST_REQUESTS = 15.0
    PEAK_DROP = 0.8  # an estimate below this x a measured limit of the last ...
    PEAK_MEMORY_S = 300.0  # ... seconds probes on the fast curve
    MAX_GROWTH = 0.3  # fastest growth while probing, per busy second ...
    GROWTH_PER_RTT = 0.03  # ... and per round trip (an overshoot costs ~ rate x latency 429s) ...
    GROWTH_RAMP_S = 5.0  # ... reached after this long past the plateau
    # pacing and in-flight
    PACE_CREDIT = 0.25  # share of an interval a late sender may catch up
    BUSY_SLACK = 0.25  # a send later than this share of an interval is not keeping up
    LATENCY_ALPHA = 0.2  # EWMA weight of a new latency sample
    IN_FLIGHT_HEADROOM = 1.5
    ERROR_RUN = 5  # consecutive errors that halve the in-flight bound

    def __init__(
        self,
        *,
        initial_rps: float = 2.0,
        min_rps: float = 0.2,
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
        self._phase = _START
        self._target = self._clamp(initial_rps)
        self._w_max = self._target  # estimated limit: centre of the probing curve
        self._k = self.K_FAST_S
        self._confident = False
        self._peak = (-math.inf, 0.0)  # (time, value) of the last measured limit not after a drop
        self._busy = 0.0  # busy seconds along the current curve
        self._epoch = 0
        self._cut_at = -math.inf  # requests sent from then on belong to the current epoch
        self._cut_mark = -math.inf  # send time of the 429 that caused the last cut
        self._epoch_ok = 0
        self._epoch_limited = 0
        self._last_sent: float | None = None
        self._first_sent = 0.0
        self._slot = -math.inf  # earliest start of the next request
        self._srtt: float | None = None
        self._errors_in_row = 0
        self._error_cap = max_in_flight
        self._oks: list[float] = []  # send times of accepted requests (sorted)
        self._marks: list[float] = []  # send times of 429s (sorted)
        self._sends: list[tuple[float, float]] = []  # (send time, target), in send order

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
        return max(1, min(limit, self._max_in_flight, self._error_cap))

    @property
    def estimated_limit(self) -> float | None:
        """The current estimate of the server's limit (None before the first 429)."""
        return None if self._phase == _START else self._w_max

    @property
    def converged(self) -> bool:
        """Whether the last cut rests on a clean measurement (the initial search is over)."""
        return self._confident

    def next_send_time(self, now: float) -> float:
        """Earliest time the next request may start (pacing)."""
        return max(now, self._slot)

    def on_sent(self, now: float) -> int:
        """Record a request start; returns its epoch token."""
        self._grow(now)
        interval = 1.0 / self._target
        # A sender a little late may catch up (thread wake-up jitter); later than that, the
        # schedule restarts from now, so there is no burst after idle time.
        late = now - self._slot
        self._slot = (self._slot if late <= self.PACE_CREDIT * interval else now) + interval
        self._sends.append((now, self._target))
        return self._epoch

    def on_result(self, now: float, sent_token: int, outcome: str, latency: float) -> None:
        """Record the outcome of a request started ``latency`` seconds before ``now``."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if outcome == ERROR:
            self._on_error()
            return
        self._on_success_or_limit(latency)
        sent_at = now - max(0.0, latency)
        if outcome == OK:
            bisect.insort(self._oks, sent_at)
            if sent_token == self._epoch:
                self._epoch_ok += 1
        else:
            bisect.insort(self._marks, sent_at)
            if sent_token == self._epoch and sent_at >= self._cut_at:
                self._on_fresh_limit(now, sent_at)
        self._trim(now)

    # ------------------------------------------------------------------ latency and errors
    def _on_success_or_limit(self, latency: float) -> None:
        self._errors_in_row = 0
        if self._error_cap < self._max_in_flight:
            self._error_cap += 1
        if latency <= 0:
            return
        if self._srtt is None:
            self._srtt = latency
        else:
            self._srtt += self.LATENCY_ALPHA * (latency - self._srtt)

    def _on_error(self) -> None:
        self._errors_in_row += 1
        if self._errors_in_row >= self.ERROR_RUN:
            self._error_cap = max(1, self.in_flight_limit // 2)
            self._errors_in_row = 0

    # ------------------------------------------------------------------ growth
    def _clamp(self, rps: float) -> float:
        return min(self._max, max(self._min, rps))

    def _doubling_s(self) -> float:
        rtt = self._srtt if self._srtt is not None else 0.0
        return max(self.START_DOUBLING_S, self.START_DOUBLING_RTTS * rtt)

    def _grow(self, now: float) -> None:
        """Move along the growth curve by the time since the previous send.

        That time counts only if the send was on schedule: a rate held back by demand or
        by the in-flight bound must not grow (it would burst once the brake is gone).
        """
        last, self._last_sent = self._last_sent, now
        if last is None:
            self._first_sent = now
        if last is None or now <= last:
            return
        busy = now - last
        if busy > (1.0 + self.BUSY_SLACK) / self._target:
            return
        if self._phase == _START:
            self._set_target(self._target * 2.0 ** (busy / self._doubling_s()))
            return
        if self._target >= self._max:
            return  # held at the user's cap: nothing to probe
        self._busy += busy
        fast = self._k_for(confident=False)
        end = 3.0 + self.PLATEAU_K  # end of the plateau, in units of k
        if self._k > fast and self._busy > end * self._k:
            # Past the mirror point and the plateau without a 429: the limit rose.
            self._k = fast
            self._busy = end * self._k
        self._set_target(self._curve(self._busy))

    def _k_for(self, confident: bool) -> float:
        """Time scale of the probing curve: seconds, but enough requests at low limits."""
        if confident:
            return max(self.K_SLOW_S, self.K_SLOW_REQUESTS / self._w_max)
        return max(self.K_FAST_S, self.K_FAST_REQUESTS / self._w_max)

    def _curve(self, busy: float) -> float:
        """Target ``busy`` seconds after a cut: the probing curve around the estimate ``w``.

        Concave from ``BETA x w`` back to ``w`` over K seconds; convex up to
        ``(1 + PROBE_ABOVE) x w`` over 2K more (the mirror point: the surplus above the limit
        has used up the deficit built below it, so a 429 is due); flat for PLATEAU_K x K more
        (token granularity, jitter and a slightly low estimate make the 429 late); then growth
        that speeds up over GROWTH_RAMP_S to the maximum growth, to find a raised limit.
        """
        w, k = self._w_max, self._k
        if busy <= k:
            return w * (1.0 - (1.0 - self.BETA) * (1.0 - busy / k) ** 3)
        top = w * (1.0 + self.PROBE_ABOVE)
        if busy <= 3.0 * k:
            return w + (top - w) * ((busy - k) / (2.0 * k)) ** 3
        t, ramp, g = busy - (3.0 + self.PLATEAU_K) * k, self.GROWTH_RAMP_S, self._max_growth()
        if t <= 0:
            return top
        exponent = g * t * t / (2.0 * ramp) if t <= ramp else g * (t - ramp / 2.0)
        return top * math.exp(min(exponent, 50.0))  # bounded: no overflow after hours

    def _max_growth(self) -> float:
        rtt = self._srtt if self._srtt else 0.0
        return min(self.MAX_GROWTH, self.GROWTH_PER_RTT / rtt) if rtt > 0 else self.MAX_GROWTH

    def _set_target(self, new: float) -> None:
        old, new = self._target, self._clamp(new)
        if new != old and self._slot > -math.inf:
            # Rescale the pending gap so that a cut, or a raise, takes effect at once.
            self._slot += 1.0 / new - 1.0 / old
        self._target = new

    # ------------------------------------------------------------------ cuts
    def _on_fresh_limit(self, now: float, sent_at: float) -> None:
        """A 429 for a request of the current epoch: cut once, unless it is noise."""
        rate = self._rate_at(sent_at)
        if self._phase == _PROBE:
            if sent_at < self._cut_at + (self._srtt or 0.0):
                return  # requests of the old epoch were still draining the bucket
            self._epoch_limited += 1
            if rate <= self._w_max and not self._limit_fell(sent_at, rate):
                # Below the estimate and rare: arrival jitter while the bucket is nearly
                # empty. Start the curve again lower so the bucket builds a cushion.
                self._busy = 0.0
                self._set_target(self._curve(0.0))
                return
        estimate, confident = self._estimate(sent_at, rate)
        self._cut(now, min(estimate, rate), confident)
        self._cut_mark = sent_at

    def _limit_fell(self, sent_at: float, rate: float) -> bool:
        """Whether 429s below the estimate mean a lower limit rather than jitter: they are
        frequent, or the limit measured since the cut is clearly below the rate."""
        limited, total = self._epoch_limited, self._epoch_limited + self._epoch_ok
        if limited >= self.NOISE_MAX or (limited >= 3 and limited >= self.NOISE_SHARE * total):
            return True
        fit = self._fit_from_marks(sent_at, self._cut_at)
        return fit is not None and fit.limit < self.NOISE_FIT * rate

    def _estimate(self, sent_at: float, rate: float) -> tuple[float, bool]:
        """(estimated limit, whether it was measured well) for a 429 sent at ``sent_at``."""
        if self._phase == _START:
            fit = self._fit(self._first_sent, sent_at, full=True)
            return (fit.limit, False) if fit else (rate * self.MD_FACTOR, False)
        since = min(sent_at - self.HISTORY_S, self._cut_mark)  # at least back to the last cut
        if rate <= self._w_max:
            # A 429 below the estimate: the limit fell. Older history describes the old limit.
            since = self._cut_at - 2 * (self._srtt or 0.0)
        fit = self._fit_from_marks(sent_at, since)
        if fit is None and rate <= self._w_max:
            return rate * self._accepted_share(), False
        if fit is None:
            return rate * self.MD_FACTOR, False
        if fit.ambiguous:
            # The bucket overflowed, so the fit leans on its assumed depth. If it is shallower
            # the limit is higher: lean towards the rate of the 429, since a too high estimate
            # is corrected within a round trip and a too low one only by a slow climb.
            return math.sqrt(fit.limit * max(fit.limit, rate)), False
        return fit.limit, self._trustworthy(fit, rate)

    def _trustworthy(self, fit: _Fit, rate: float) -> bool:
        """Whether a fit may set a slow curve: enough requests, a span long against arrival
        jitter (a fraction of a round trip at each end), and a 429 near the curve's top
        (far past it, the bucket had probably filled up)."""
        expected = rate <= self._w_max * (1.0 + 2.0 * self.PROBE_ABOVE)
        long_enough = fit.span >= self.CONFIDENT_RTTS * (self._srtt or 0.0)
        return expected and long_enough and fit.accepted >= self.CONFIDENT_SAMPLES

    def _accepted_share(self) -> float:
        """Share of this epoch's requests that were accepted: under overload, the accepted
        rate is the limit (bounded, as the count may be small)."""
        ok, limited = self._epoch_ok, self._epoch_limited
        share = ok / (ok + limited) if ok + limited else self.MD_FACTOR
        return min(self.MAX_SHARE, max(self.MIN_SHARE, share))

    def _rate_at(self, sent_at: float) -> float:
        """Target in force when the request sent at ``sent_at`` started."""
        sends = self._sends
        idx = bisect.bisect_right(sends, (sent_at, math.inf)) - 1
        return sends[idx][1] if idx >= 0 else self._target

    def _fit_from_marks(self, sent_at: float, since: float) -> _Fit | None:
        """Fit between the most recent earlier 429 (not before ``since``) that leaves enough
        time and accepted requests in between, and the 429 sent at ``sent_at``."""
        min_span = max(self.MIN_SPAN_S, self._srtt or 0.0)
        idx = bisect.bisect_right(self._marks, sent_at - min_span) - 1
        while idx >= 0 and self._marks[idx] >= since:
            fit = self._fit(self._marks[idx], sent_at, full=False)
            if fit is not None:
                return fit
            idx -= 1
        return None

    def _fit(self, start: float, end: float, full: bool) -> _Fit | None:
        """The limit at which a token bucket fed with our accepted requests is empty at ``end``.

        The bucket is empty (``full=False``: a 429 was answered then) or full (the start of
        the run) at ``start``. If it never overflowed this is simply accepted requests / time,
        whatever its depth. If our rate stayed low long enough for it to fill up, its depth is
        assumed to be BURST_S seconds of the limit, and a range of limits fits the data: the
        upper end is taken (the bucket did overflow). None with too few requests in between.
        """
        times = self._oks[bisect.bisect_right(self._oks, start) : bisect.bisect_left(self._oks, end)]
        n, span = len(times), end - start
        if n < self.MIN_SAMPLES or span <= 0:
            return None
        init = self.BURST_S if full else 0.0
        low = n / (span + init)  # bucket left empty at `end` without overflow ...
        high = (n + 1.0) / (span + init)  # ... or with one token left
        if not self._replay(times, start, end, high, full)[1]:
            return _Fit((low + high) / 2.0, n, span, False)
        low = self._solve(times, start, end, full, 0.0, low)
        high = self._solve(times, start, end, full, 1.0, high)
        return _Fit(high, n, span, high - low > self.AMBIGUITY * low + 1.0 / span)  # beyond granularity

    def _solve(self, times: list[float], start: float, end: float, full: bool, level: float, guess: float) -> float:
        """Largest refill rate leaving at most ``level`` tokens at ``end`` (bisection)."""
        lo, hi = guess, guess
        while self._replay(times, start, end, hi, full)[0] <= level:
            lo, hi = hi, hi * 2.0
        for _ in range(self.FIT_STEPS):
            mid = (lo + hi) / 2.0
            if self._replay(times, start, end, mid, full)[0] <= level:
                lo = mid
            else:
                hi = mid
        return lo

    def _replay(self, times: list[float], start: float, end: float, rate: float, full: bool) -> tuple[float, bool]:
        """Bucket level at ``end`` (and whether it overflowed) for a refill ``rate``."""
        cap = max(1.0, rate * self.BURST_S)
        level = cap if full else 0.0
        overflowed = False
        last = start
        for t in times:
            level += rate * (t - last)
            last = t
            if level > cap:
                level, overflowed = cap, True
            level -= 1.0
        level += rate * (end - last)
        if level > cap:
            level, overflowed = cap, True
        return level, overflowed

    def _cut(self, now: float, estimate: float, confident: bool) -> None:
        self._phase = _PROBE
        self._w_max = max(self._min, estimate)
        self._confident = confident
        peak_at, peak = self._peak
        if confident and (self._w_max >= self.PEAK_DROP * peak or now - peak_at > self.PEAK_MEMORY_S):
            self._peak = (now, self._w_max)
        # Well below a recent measured limit (the server throttled us for a while): probe on
        # the fast curve, the old limit may come back.
        recent_peak = now - peak_at <= self.PEAK_MEMORY_S and self._w_max < self.PEAK_DROP * peak
        self._k = self._k_for(confident and not recent_peak)
        self._epoch += 1
        self._cut_at = now
        self._epoch_ok = 0
        self._epoch_limited = 0
        self._busy = 0.0
        self._set_target(self.BETA * self._w_max)

    def _trim(self, now: float) -> None:
        """Forget history older than any fit can use (in chunks, so this stays cheap)."""
        horizon = min(now - 2 * self.HISTORY_S, self._cut_mark - 1.0)
        for seq in (self._oks, self._marks):
            cut = bisect.bisect_left(seq, horizon)
            if cut > 1000:
                del seq[:cut]
        cut = bisect.bisect_left(self._sends, (horizon, -math.inf))
        if cut > 1000:
            del self._sends[:cut]


@dataclass
class Permit:
    """Handed out by :meth:`AdaptiveRateController.acquire`; give it back with ``release``."""

    token: int
    started: float
    released: bool = field(default=False, compare=False)


class AdaptiveRateController:
    """Thread-safe wrapper around :class:`RateEstimator` used by sender threads."""

    TIMELINE_MAX = 10_000
    WAIT_CHUNK_S = 0.05
    SLOT_WAIT_S = 1.0

    def __init__(
        self,
        *,
        initial_rps: float = 2.0,
        min_rps: float = 0.2,
        max_rps: float | None = None,
        max_in_flight: int = 32,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._est = RateEstimator(
            initial_rps=initial_rps, min_rps=min_rps, max_rps=max_rps, max_in_flight=max_in_flight
        )
        self._clock = clock
        self._sleep = sleep
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # waiting for an in-flight slot (release notifies)
        self._turn = threading.Condition(lock)  # waiting to pace the next request (the pacer notifies)
        self._pacer: object | None = None  # the acquire() call that sleeps until the next send time
        self._in_flight = 0
        self._counts = {"sent": 0, OK: 0, RATE_LIMITED: 0, ERROR: 0}
        self.timeline: list[tuple[float, float]] = []
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
                "in_flight": self._in_flight,
                "in_flight_limit": self._est.in_flight_limit,
                "sent": self._counts["sent"],
                "ok": self._counts[OK],
                "rate_limited": self._counts[RATE_LIMITED],
                "errors": self._counts[ERROR],
                "estimated_limit": self._est.estimated_limit,
            }

    def _record(self, now: float) -> None:
        rps = self._est.target_rps
        if self.timeline and abs(rps - self.timeline[-1][1]) <= 0.01 * self.timeline[-1][1]:
            return
        self.timeline.append((now, rps))
        if len(self.timeline) > self.TIMELINE_MAX:
            self.timeline[:] = self.timeline[::2]
