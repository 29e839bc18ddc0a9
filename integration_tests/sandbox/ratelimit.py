"""Rate limiters, one per endpoint group: token buckets, plus window models for the subscribe group.

Every limiter has ``take(now=None) -> bool`` (``now`` defaults to its injected clock) and
``reconfigure(...)`` (change the limit in place, keeping what it has counted so far).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .config import Config

# endpoint group -> (knob giving the rate, seconds the rate is expressed in)
GROUPS: dict[str, tuple[str, float]] = {
    "lists_read": ("lists_read_rps", 1.0),
    "list_write": ("list_write_rps", 1.0),
    "subscribe": ("subscribe_rps", 1.0),
    "get_users": ("get_users_per_minute", 60.0),
    "size": ("size_per_minute", 60.0),
}


class TokenBucket:
    """A classic token bucket; ``rate`` tokens per second, ``capacity`` tokens at most."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)

    def take(self, now: float | None = None) -> bool:
        """Take one token if there is one."""
        with self._lock:
            self._refill(self._clock() if now is None else now)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def reconfigure(self, rate: float, capacity: float) -> None:
        """New rate and capacity from now on; the tokens left are kept (capped at the new capacity)."""
        with self._lock:
            self._refill(self._clock())
            self.rate = rate
            self.capacity = max(1.0, capacity)
            self._tokens = min(self._tokens, self.capacity)


class FixedWindow:
    """At most ``limit`` requests whose arrival falls in the same window ``floor(now / window)``.

    With the wall clock (``time.time``) and ``window=1`` that is one wall-clock second; with
    ``window=60``, one wall-clock minute. Only accepted requests count.
    """

    def __init__(self, limit: int, window: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.limit = max(1, int(limit))
        self.window = window
        self._clock = clock
        self._index: int | None = None
        self._count = 0
        self._lock = threading.Lock()

    def take(self, now: float | None = None) -> bool:
        """Count one request in the current window if there is room."""
        with self._lock:
            index = math.floor((self._clock() if now is None else now) / self.window)
            if index != self._index:
                self._index, self._count = index, 0
            if self._count < self.limit:
                self._count += 1
                return True
            return False

    def reconfigure(self, limit: int) -> None:
        """A new limit at once; the requests already counted in this window still count."""
        with self._lock:
            self.limit = max(1, int(limit))


class SlidingWindow:
    """At most ``limit`` accepted requests in any span of ``window`` seconds (a deque of acceptance times)."""

    def __init__(self, limit: int, window: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.limit = max(1, int(limit))
        self.window = window
        self._clock = clock
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self, now: float | None = None) -> bool:
        """Accept when fewer than ``limit`` requests were accepted in the last ``window`` seconds."""
        with self._lock:
            now = self._clock() if now is None else now
            edge = now - self.window
            accepted = self._accepted
            while accepted and accepted[0] <= edge:
                accepted.popleft()
            if len(accepted) < self.limit:
                accepted.append(now)
                return True
            return False

    def reconfigure(self, limit: int) -> None:
        """A new limit at once; the acceptances of the last window still count."""
        with self._lock:
            self.limit = max(1, int(limit))


class Limiter(Protocol):
    """What ``RateLimiter`` needs from a limiter."""

    def take(self, now: float | None = None) -> bool: ...


# subscribe_limiter -> (limiter class, window in seconds)
SUBSCRIBE_MODELS: dict[str, tuple[type, float]] = {
    "token_bucket": (TokenBucket, 1.0),
    "fixed_window": (FixedWindow, 1.0),
    "sliding_window": (SlidingWindow, 1.0),
    "per_minute": (FixedWindow, 60.0),
}
SUBSCRIBE_KNOBS = frozenset({"subscribe_rps", "subscribe_burst", "subscribe_limiter", "subscribe_per_minute"})


def subscribe_spec(config: Config) -> tuple[str, tuple[float, ...]] | None:
    """The subscribe group's model and its ``reconfigure`` arguments, or None when it is unlimited."""
    model, rps = config.subscribe_limiter, float(config.subscribe_rps)
    if model == "per_minute":
        per_minute = config.subscribe_per_minute
        amount = float(rps * 60 if per_minute is None else per_minute)
        return (model, (max(1, int(amount)),)) if amount > 0 else None
    if rps <= 0:
        return None
    if model == "token_bucket":
        burst = config.subscribe_burst
        return model, (rps, burst if burst else max(1.0, rps))
    return model, (max(1, int(rps)),)


def subscribe_limit_rps(config: Config) -> float:
    """The long-run ceiling of accepted subscribe+unsubscribe requests per second (0 = unlimited)."""
    spec = subscribe_spec(config)
    if spec is None:
        return 0.0
    model, args = spec
    return float(args[0]) / SUBSCRIBE_MODELS[model][1]


class RateLimiter:
    """All limiters of one sandbox (one project, shared by every client and key); a rate of 0 means unlimited.

    Every limiter runs on ``clock`` (the wall clock by default, so fixed windows are wall-clock seconds
    and minutes). The subscribe group uses the ``subscribe_limiter`` model; the other groups are token
    buckets.
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, Limiter | None] = {}
        self._subscribe_model: str | None = None
        self.reset()
        config.on_change(self._changed)

    def _build(self, group: str) -> Limiter | None:
        if group == "subscribe":
            spec = subscribe_spec(self._config)
            self._subscribe_model = spec[0] if spec else None
            if spec is None:
                return None
            cls, window = SUBSCRIBE_MODELS[spec[0]]
            if cls is TokenBucket:
                return TokenBucket(*spec[1], clock=self._clock)
            return cls(spec[1][0], window, clock=self._clock)
        knob, per = GROUPS[group]
        amount = float(getattr(self._config, knob))
        if amount <= 0:
            return None
        return TokenBucket(amount / per, amount, clock=self._clock)

    def _changed(self, names: set[str]) -> None:
        with self._lock:
            for group, (knob, _per) in GROUPS.items():
                if group == "subscribe" and names & SUBSCRIBE_KNOBS:
                    self._rebuild_subscribe()
                elif knob in names:
                    self._buckets[group] = self._build(group)

    def _rebuild_subscribe(self) -> None:
        """Same model: change its limit in place (what it counted so far still counts). Else a new one."""
        spec = subscribe_spec(self._config)
        current = self._buckets.get("subscribe")
        if spec is not None and current is not None and spec[0] == self._subscribe_model:
            current.reconfigure(*spec[1])  # type: ignore[attr-defined]
        else:
            self._buckets["subscribe"] = self._build("subscribe")

    def reset(self) -> None:
        """Refill every bucket and empty every window."""
        with self._lock:
            self._buckets = {group: self._build(group) for group in GROUPS}

    def now(self) -> float:
        """A reading of the limiters' clock."""
        return self._clock()

    def allow(self, group: str, now: float | None = None) -> bool:
        """True when a request of ``group`` arriving at ``now`` (default: the clock) may go ahead."""
        bucket = self._buckets.get(group)
        return bucket is None or bucket.take(now)
