"""Request counters, concurrency high-water mark and the per-second subscribe timeline."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

FAULT_NAMES = ("errors", "drops", "applied_then_dropped", "get_users_503")


class Stats:
    """Everything ``/_sandbox/stats`` and ``/_sandbox/timeline`` report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter and restart the timeline clock."""
        with self._lock:
            self.requests: dict[str, dict[str, int]] = {}
            self.rate_limited = 0
            self.in_flight = 0
            self.peak_concurrency = 0
            self.faults = dict.fromkeys(FAULT_NAMES, 0)
            self.subscribers_received = 0
            self.channel_unsubscribes = 0
            # Second 0 of the timeline starts at a whole wall-clock second, so a bucket is exactly one
            # wall-clock second, the window of the fixed-window limiters.
            self.start_wall = float(math.floor(time.time()))
            self.start_mono = time.monotonic() - (time.time() - self.start_wall)
            self.timeline: dict[int, list[int]] = {}

    def begin(self) -> None:
        """An /api request started."""
        with self._lock:
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)

    def end(self) -> None:
        """An /api request finished."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)

    def record(self, route: str, status: int | str) -> None:
        """Count one answered (or dropped) request."""
        with self._lock:
            per_status = self.requests.setdefault(route, {})
            key = str(status)
            per_status[key] = per_status.get(key, 0) + 1
            if status == 429:
                self.rate_limited += 1

    def fault(self, name: str) -> None:
        """Count one injected fault."""
        with self._lock:
            self.faults[name] += 1

    def received(self, subscribers: int, channel_unsubscribe: bool = False) -> None:
        """Count subscribers of an accepted subscribe/unsubscribe body."""
        with self._lock:
            self.subscribers_received += subscribers
            self.channel_unsubscribes += int(channel_unsubscribe)

    def tick(self, accepted: bool, now: float | None = None) -> None:
        """A subscribe/unsubscribe request arriving at wall time ``now`` passed (True) or hit (False) the limit."""
        with self._lock:
            second = max(0, int((time.time() if now is None else now) - self.start_wall))
            bucket = self.timeline.setdefault(second, [0, 0])
            bucket[0 if accepted else 1] += 1

    def snapshot(self) -> dict[str, Any]:
        """The ``/_sandbox/stats`` body."""
        with self._lock:
            return {"requests": {route: dict(codes) for route, codes in self.requests.items()},
                    "rate_limited": self.rate_limited, "peak_concurrency": self.peak_concurrency,
                    "in_flight": self.in_flight, "faults": dict(self.faults),
                    "subscribers_received": self.subscribers_received,
                    "channel_unsubscribes": self.channel_unsubscribes}

    def timeline_snapshot(self, subscribe_rps: float) -> dict[str, Any]:
        """The ``/_sandbox/timeline`` body: one bucket per second from the start to the last request."""
        with self._lock:
            last = max(self.timeline, default=-1)
            buckets = [{"t": t, "ok": self.timeline.get(t, (0, 0))[0],
                        "rate_limited": self.timeline.get(t, (0, 0))[1]} for t in range(last + 1)]
            return {"start": self.start_wall, "subscribe_rps": subscribe_rps, "buckets": buckets}
