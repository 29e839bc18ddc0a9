"""Sandbox speed benchmark: 1,000-subscriber subscribe requests from a few client threads.

    python -m bench.sandbox_speed [--seconds 10] [--concurrency 4] [--batch 1000]

Starts the sandbox CLI in a subprocess (limits off), sends realistic bodies with one
``requests.Session`` per thread, and prints requests/s and subscribers/s.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-0123456789abcdef012345"


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m integration_tests.sandbox`` and return it with its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "integration_tests.sandbox", "--port", "0", "--api-key", API_KEY],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("sandbox listening on "):
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


def make_body(list_id: int, start: int, batch: int) -> bytes:
    """A subscribe body like the connector sends: email, userId and a few dataFields."""
    subscribers = [{"email": f"Person.{n}@Example.com", "userId": f"user-{n}",
                    "dataFields": {"firstName": f"Name{n}", "score": n % 100, "vip": n % 7 == 0,
                                   "signupDate": "2024-05-01"}}
                   for n in range(start, start + batch)]
    return orjson.dumps({"listId": list_id, "subscribers": subscribers})


def worker(url: str, list_id: int, batch: int, deadline: float, counter: itertools.count,
           statuses: Counter, latencies: list[float], lock: threading.Lock) -> None:
    """Send subscribe requests until the deadline."""
    session = requests.Session()
    headers = {"Api-Key": API_KEY, "Content-Type": "application/json"}
    while time.monotonic() < deadline:
        body = make_body(list_id, next(counter) * batch, batch)
        began = time.monotonic()
        resp = session.post(f"{url}/api/lists/subscribe", data=body, headers=headers, timeout=30)
        elapsed = time.monotonic() - began
        with lock:
            statuses[resp.status_code] += 1
            latencies.append(elapsed)
    session.close()


def run(seconds: float, concurrency: int, batch: int) -> dict[str, float]:
    """Run the benchmark; return its figures."""
    proc, url = start_sandbox()
    try:
        list_id = requests.post(f"{url}/api/lists", json={"name": "bench"}, headers={"Api-Key": API_KEY},
                                timeout=10).json()["listId"]
        counter, statuses, latencies, lock = itertools.count(), Counter(), [], threading.Lock()
        deadline = time.monotonic() + seconds
        began = time.monotonic()
        threads = [threading.Thread(target=worker, args=(url, list_id, batch, deadline, counter, statuses,
                                                         latencies, lock)) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        stats = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ok = statuses.get(200, 0)
    return {"requests": sum(statuses.values()), "ok": ok, "seconds": elapsed, "rps": ok / elapsed,
            "subscribers_per_s": ok * batch / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000 if len(latencies) > 1 else 0.0,
            "server_subscribers": stats["subscribers_received"]}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    figures = run(args.seconds, args.concurrency, args.batch)
    print(f"{figures['ok']:.0f} ok requests of {args.batch} subscribers in {figures['seconds']:.1f} s "
          f"with {args.concurrency} client threads")
    print(f"requests/s: {figures['rps']:.1f}")
    print(f"subscribers/s: {figures['subscribers_per_s']:.0f}")
    print(f"latency p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
