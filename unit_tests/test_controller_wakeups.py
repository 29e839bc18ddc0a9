"""AdaptiveRateController with many sender threads (real time): one thread sleeps until the next send time
and the others wait to be woken, so pacing costs a few wake-ups per request instead of one per waiting
thread; the schedule, the in-flight bound and stopping are unchanged."""

from __future__ import annotations

import threading
import time

import pytest

from destination_iterable.iterable.rate import OK, AdaptiveRateController, Stopped


class CountingSleep:
    """time.sleep that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self.lock:
            self.calls += 1
        time.sleep(seconds)


def run_senders(ctl: AdaptiveRateController, threads: int, requests: int, hold: float = 0.0) -> list[float]:
    """`threads` senders share `requests` acquire/release pairs; returns the send times, in order."""
    sent: list[float] = []
    lock = threading.Lock()
    left = [requests]
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            while True:
                with lock:
                    if not left[0]:
                        return
                    left[0] -= 1
                permit = ctl.acquire()
                with lock:
                    sent.append(time.monotonic())
                time.sleep(hold)
                ctl.release(permit, OK)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not errors and not any(w.is_alive() for w in workers), errors
    return sorted(sent)


@pytest.mark.parametrize("hold", [0.0, 0.1])
def test_many_waiting_threads_do_not_all_wake_for_every_request(monkeypatch, hold):
    """24 threads at a fixed 50 requests/s (answers instant, or taking 0.1 s): the pacing keeps its spacing
    and rate, and the wake-ups (sleeps and condition waits) per request stay around two (every waiting
    thread sleeping, or waking on every answer, would be ~20 per request)."""
    sleep = CountingSleep()
    waits = [0]
    real_wait = threading.Condition.wait

    def counting_wait(self: threading.Condition, timeout: float | None = None) -> bool:
        waits[0] += 1
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Condition, "wait", counting_wait)
    ctl = AdaptiveRateController(initial_rps=50.0, max_rps=50.0, max_in_flight=32, sleep=sleep)
    sent = run_senders(ctl, threads=24, requests=75, hold=hold)
    elapsed = sent[-1] - sent[0]
    assert 74 / 50 * 0.9 <= elapsed <= 74 / 50 * 1.6, elapsed  # on schedule, no burst, no stall
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 10] >= 0.02 * (1 - ctl._est.PACE_CREDIT) - 0.002, gaps  # spaced out
    assert sleep.calls + waits[0] <= 4 * 75, (sleep.calls, waits[0])
    snap = ctl.snapshot()
    assert snap["sent"] == snap["ok"] == 75 and snap["in_flight"] == 0


def test_the_in_flight_bound_still_holds_with_a_pacer():
    """Requests that take a while: never more in flight than the bound, and all of them get sent."""
    ctl = AdaptiveRateController(initial_rps=200.0, max_rps=200.0, max_in_flight=3)
    peak = [0]
    real_acquire = ctl.acquire

    def acquire(stop=None):
        permit = real_acquire(stop)
        peak[0] = max(peak[0], ctl.snapshot()["in_flight"])
        return permit

    ctl.acquire = acquire  # type: ignore[method-assign]
    sent = run_senders(ctl, threads=12, requests=60, hold=0.02)
    assert len(sent) == 60 and peak[0] <= 3


def test_stop_reaches_every_waiting_thread_quickly():
    """12 threads waiting for the next send time at 0.5 requests/s: setting the stop event makes all of them
    raise Stopped within a fraction of a second (the pacer sees it, then wakes the next, and so on)."""
    ctl = AdaptiveRateController(initial_rps=0.5, max_rps=0.5, max_in_flight=32)
    ctl.release(ctl.acquire(), OK)  # the next send time is now ~2 s away
    stop = threading.Event()
    stopped: list[float] = []
    lock = threading.Lock()

    def waiter() -> None:
        try:
            ctl.acquire(stop)
        except Stopped:
            with lock:
                stopped.append(time.monotonic())

    workers = [threading.Thread(target=waiter) for _ in range(12)]
    for worker in workers:
        worker.start()
    time.sleep(0.3)
    set_at = time.monotonic()
    stop.set()
    for worker in workers:
        worker.join(timeout=5)
    assert len(stopped) == 12, stopped
    assert max(stopped) - set_at < 0.5, max(stopped) - set_at
