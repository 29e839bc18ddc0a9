"""Token buckets, one per endpoint group, rebuilt when their knob changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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

    def take(self) -> bool:
        """Take one token if there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class RateLimiter:
    """All buckets of one sandbox; a rate of 0 means unlimited."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._buckets: dict[str, TokenBucket | None] = {}
        self.reset()
        config.on_change(self._changed)

    def _build(self, group: str) -> TokenBucket | None:
        knob, per = GROUPS[group]
        amount = float(getattr(self._config, knob))
        if amount <= 0:
            return None
        if group == "subscribe":
            burst = self._config.subscribe_burst
            return TokenBucket(amount, burst if burst else max(1.0, amount))
        return TokenBucket(amount / per, amount)

    def _changed(self, names: set[str]) -> None:
        for group, (knob, _per) in GROUPS.items():
            if knob in names or (group == "subscribe" and "subscribe_burst" in names):
                self._buckets[group] = self._build(group)

    def reset(self) -> None:
        """Refill every bucket."""
        self._buckets = {group: self._build(group) for group in GROUPS}

    def allow(self, group: str) -> bool:
        """True when a request of ``group`` may go ahead now."""
        bucket = self._buckets.get(group)
        return bucket is None or bucket.take()
