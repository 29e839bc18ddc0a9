"""Fault decisions drawn from one seeded RNG, so a run with the same seed and order repeats."""

from __future__ import annotations

import random
import threading
import time

from .config import Config

ERROR_STATUSES = (500, 502, 503, 504)


class Faults:
    """Decides, per /api request, whether to delay, drop or fail it."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._started = time.monotonic()
        config.on_change(self._changed)

    def _changed(self, names: set[str]) -> None:
        if "seed" in names:
            self.reseed()

    def reseed(self) -> None:
        """Restart the RNG from the ``seed`` knob."""
        with self._lock:
            self._rng = random.Random(self._config.seed)

    def _hit(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def latency(self) -> tuple[float, float]:
        """This request's delay in seconds, split into (before the rate limiter, after admission).

        The delay is ``latency_ms`` plus a uniform 0..``latency_jitter_ms``; ``latency_before_share`` of
        it is the request's trip to Iterable (slept before the limiter sees it arrive), the rest is
        processing and the answer's trip back (slept after the request was handled).
        """
        delay_ms = self._config.latency_ms
        jitter = self._config.latency_jitter_ms
        if jitter > 0:
            with self._lock:
                delay_ms += self._rng.uniform(0, jitter)
        if delay_ms <= 0:
            return 0.0, 0.0
        before = delay_ms * self._config.latency_before_share / 1000.0
        return before, delay_ms / 1000.0 - before

    def pause_left(self) -> float:
        """Seconds until the current pause ends (0 outside one): the API stops for ``pause_ms`` at the end of
        every ``pause_every_s`` seconds, counted from the sandbox's start, as a server's garbage collector does."""
        every, pause = self._config.pause_every_s, self._config.pause_ms / 1000.0
        if every <= 0 or pause <= 0:
            return 0.0
        into = (time.monotonic() - self._started) % every
        return every - into if into >= every - pause else 0.0

    @staticmethod
    def sleep(seconds: float) -> None:
        """Sleep without holding any lock (concurrent requests overlap)."""
        if seconds > 0:
            time.sleep(seconds)

    def drop(self) -> bool:
        """True when this request's connection should be closed unanswered."""
        return self._hit(self._config.drop_rate)

    def error_status(self) -> int | None:
        """A 5xx status to answer with, or None."""
        if not self._hit(self._config.error_rate):
            return None
        with self._lock:
            return self._rng.choice(ERROR_STATUSES)

    def get_users_503(self) -> bool:
        """True when this getUsers call should time out (503)."""
        return self._config.consume_get_users_503() or self._hit(self._config.get_users_503_rate)

    def apply_then_drop(self) -> bool:
        """True when an applied subscribe/unsubscribe should lose its answer."""
        return self._hit(self._config.apply_then_drop_rate)
