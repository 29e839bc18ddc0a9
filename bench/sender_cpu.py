"""CPU per bulk request on the sender side: the connector's client against an unthrottled sandbox.

    python -m bench.sender_cpu [--requests 300] [--threads 1,4,32] [--rows 1000] [--fields first_name,plan]
                               [--busy-main] [--encoded] [--phases] [--profile] [--repeat 1] [--json FILE]

The sandbox runs in a subprocess (``python -m integration_tests.sandbox``, no limits), so its CPU is not
counted. Requests are ``IterableClient.subscribe`` calls of ``--rows`` new members each, with dataFields
like the connector's (``first_name``, ``plan`` by default, as in ``bench.throughput``), made the way the
pipeline makes them:

* ``threads 1``: one thread calls ``subscribe`` in a loop; the figure is that thread's ``time.thread_time()``;
* ``threads N``: jobs go through a ``ThreadPoolExecutor(32)`` hop with at most N in flight (the pipeline's
  executor), and the figure is the CPU of every thread but the main one (process CPU minus the main
  thread's), which is what ``bench.throughput`` reports as "other threads";
* ``--busy-main``: the main thread keeps parsing JSON lines (as the pipeline's reader does) while the
  senders run, so they compete for the GIL; the main thread's CPU is not in the figure.

``--encoded`` hands the client rows encoded ahead (an object with ``json`` and ``len()``, as the sink
may pass them) instead of row dicts, so the senders do not serialise rows.

``--phases`` also measures the parts alone (single thread): ``orjson.dumps`` of a body, the rate
controller's acquire + release, one raw ``urllib3`` POST of the same body, and one plain
``requests.Session.post``. ``--profile`` prints a cProfile of the single-thread run (cumulative, top 30).
Process CPU includes interpreter-wide work (GC, allocator), so it is the honest total.

Note: rows built here are fresh and compact in memory, so ``orjson.dumps`` of them is cheap (~0.1 ms per
1,000 rows). Rows built by the pipeline's reader are scattered and cold by the time a sender serialises
them (~0.5-1 ms per 1,000 rows measured); ``--encoded`` shows the sender side without that cost.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import requests
import urllib3

from destination_iterable.client import IterableClient
from destination_iterable.rate import OK, AdaptiveRateController
from destination_iterable.rows import EncodedRows

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-0123456789abcdef012345"
FIRST = ("Jane", "John", "Maria", "Wei", "Aisha", "Lukas", "Sofia", "Mateo", "Yuki", "Olga", "Chloé", "Zoë")
LAST = ("doe", "smith", "garcia", "chen", "khan", "mueller", "rossi", "silva", "tanaka", "ivanova")
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.co.uk", "icloud.com", "gmx.de", "example.org")
PLANS = ("free", "starter", "pro", "enterprise", None)
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP")
ALL_FIELDS = ("first_name", "last_name", "plan", "signup_date", "score", "country", "customer_id")


# ------------------------------------------------------------------------------------------ set-up
def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    """``python -m integration_tests.sandbox`` with every limit off; returns it and its URL."""
    args = [sys.executable, "-m", "integration_tests.sandbox", "--port", "0", "--api-key", API_KEY,
            "--subscribe-rps", "0", "--lists-read-rps", "0", "--list-write-rps", "0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("sandbox listening on "):
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


class Rows:
    """Fresh members (never sent before) with the connector's row shape."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def _value(self, name: str, n: int) -> Any:
        return {"first_name": FIRST[n % len(FIRST)], "last_name": LAST[n % len(LAST)].title(),
                "plan": PLANS[n % len(PLANS)], "signup_date": f"2024-0{1 + n % 9}-1{n % 10}T08:30:00",
                "score": n % 1000 / 10, "country": COUNTRIES[n % len(COUNTRIES)],
                "customer_id": f"cus_{n:010d}"}[name]

    def batch(self, rows: int) -> list[dict[str, Any]]:
        """`rows` new members."""
        with self.lock:
            start = next(self.counter) * rows
        out = []
        for n in range(start, start + rows):
            row: dict[str, Any] = {"email": f"{FIRST[n % len(FIRST)].lower()}.{LAST[n % len(LAST)]}.{n}"
                                            f"@{DOMAINS[n % len(DOMAINS)]}"}
            if self.fields:
                row["dataFields"] = {name: self._value(name, n) for name in self.fields}
            out.append(row)
        return out


def make_client(url: str) -> IterableClient:
    """The client as `writer.build_client` makes it (one controller, 32 in flight, 32 pooled connections)."""
    controller = AdaptiveRateController(max_in_flight=32)
    return IterableClient(url, API_KEY, controller=controller, retry_max_seconds=60, timeout_seconds=60,
                          pool_size=32)


def warm_controller(client: IterableClient) -> None:
    """Unthrottled runs ramp the controller's target up quickly; start the measured part there."""
    est = client.controller._est  # noqa: SLF001 - benchmark only
    est._target = 1e6  # noqa: SLF001
    est._srtt = 0.02  # noqa: SLF001


# ------------------------------------------------------------------------------------------ measurements
def cpu_ms(seconds: float, requests_: int) -> float:
    return round(1000.0 * seconds / max(1, requests_), 3)


def run_single(url: str, list_id: int, batches: list[list[dict[str, Any]]], profile: bool) -> dict[str, Any]:
    """One thread calls subscribe in a loop."""
    client = make_client(url)
    warm_controller(client)
    client.subscribe(list_id, batches[0])  # connect
    profiler = cProfile.Profile() if profile else None
    wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
    if profiler:
        profiler.enable()
    for rows in batches[1:]:
        result = client.subscribe(list_id, rows)
        assert result.success_count == len(rows), result
    if profiler:
        profiler.disable()
    cpu, proc, wall = time.thread_time() - cpu, time.process_time() - proc, time.perf_counter() - wall
    client.close()
    n = len(batches) - 1
    out = {"threads": 1, "requests": n, "thread_cpu_ms": cpu_ms(cpu, n), "process_cpu_ms": cpu_ms(proc, n),
           "wall_ms": cpu_ms(wall, n)}
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        out["profile"] = text.getvalue()
    return out


class BusyReader:
    """Main-thread work that holds the GIL like the pipeline's reader: parses varied record lines and keeps
    the resulting rows in buffers for a while (so it touches as much memory as the real reader does)."""

    KEEP = 64_000  # rows kept alive, like the pipeline's buffers and queued jobs

    def __init__(self) -> None:
        self.lines = 0
        rows = Rows(["first_name", "plan", "score", "country"])
        self.input = [orjson.dumps({"type": "RECORD", "record": {"stream": f"s{n % 4}", "emitted_at": n,
                                                                 "data": {"email": row["email"],
                                                                          **row["dataFields"]}}})
                      for n, row in enumerate(rows.batch(20_000))]
        self.kept: list[Any] = [None] * self.KEEP
        self.at = 0

    def chunk(self) -> None:
        loads, lines, kept, keep = orjson.loads, self.input, self.kept, self.KEEP
        at = self.at
        for n in range(at, at + 500):
            data = loads(lines[n % len(lines)])["record"]["data"]
            kept[n % keep] = {"email": data["email"].strip().lower(),
                              "dataFields": {"first_name": data["first_name"], "plan": data["plan"]}}
        self.at = at + 500
        self.lines += 500


def run_pool(url: str, list_id: int, batches: list[list[dict[str, Any]]], in_flight: int,
             busy_main: bool) -> dict[str, Any]:
    """Jobs through a ThreadPoolExecutor(32), at most `in_flight` at a time; CPU of all non-main threads."""
    client = make_client(url)
    warm_controller(client)
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="iterable-send")
    for f in [executor.submit(client.subscribe, list_id, batches[0]) for _ in range(1)]:
        f.result()
    # warm every worker thread and pooled connection outside the measurement
    for f in [executor.submit(time.sleep, 0.01) for _ in range(32)]:
        f.result()
    slots = threading.Semaphore(in_flight)
    done = threading.Event()
    left = [len(batches) - 1]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def job(rows: list[dict[str, Any]]) -> None:
        try:
            result = client.subscribe(list_id, rows)
            assert result.success_count == len(rows), result
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            slots.release()
            with lock:
                left[0] -= 1
                if not left[0]:
                    done.set()

    reader = BusyReader()
    wall, main_cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
    for rows in batches[1:]:
        while not slots.acquire(blocking=not busy_main):
            reader.chunk()
        executor.submit(job, rows)
    while not done.is_set():
        if busy_main:
            reader.chunk()
        else:
            done.wait(0.5)
    main_cpu, proc, wall = time.thread_time() - main_cpu, time.process_time() - proc, time.perf_counter() - wall
    executor.shutdown()
    client.close()
    if errors:
        raise errors[0]
    n = len(batches) - 1
    return {"threads": in_flight, "busy_main": busy_main, "requests": n,
            "other_threads_cpu_ms": cpu_ms(proc - main_cpu, n), "process_cpu_ms": cpu_ms(proc, n),
            "wall_ms": cpu_ms(wall, n), "main_lines": reader.lines}


def run_phases(url: str, list_id: int, batches: list[list[dict[str, Any]]]) -> dict[str, float]:
    """The parts alone, single thread, CPU ms per request."""
    out: dict[str, float] = {}
    bodies = [{"listId": list_id, "subscribers": rows} for rows in batches]
    cpu = time.thread_time()
    payloads = [orjson.dumps(body) for body in bodies]
    out["orjson_dumps"] = cpu_ms(time.thread_time() - cpu, len(bodies))
    out["body_kb"] = round(statistics.mean(len(p) for p in payloads) / 1024, 1)

    controller = AdaptiveRateController(initial_rps=1e6, max_in_flight=32)
    controller._est._srtt = 0.02  # noqa: SLF001 - benchmark only
    n = 5000
    cpu = time.thread_time()
    for _ in range(n):
        controller.release(controller.acquire(), OK)
    out["controller_acquire_release"] = cpu_ms(time.thread_time() - cpu, n)

    headers = {"Api-Key": API_KEY, "Content-Type": "application/json"}
    pool = urllib3.HTTPConnectionPool(urllib3.util.parse_url(url).host, urllib3.util.parse_url(url).port, maxsize=1)
    fresh = Rows(["first_name", "plan"])
    raw = [orjson.dumps({"listId": list_id, "subscribers": fresh.batch(len(batches[0]))}) for _ in payloads]
    pool.urlopen("POST", "/api/lists/subscribe", body=raw[0], headers=headers)
    cpu = time.thread_time()
    for payload in raw[1:]:
        resp = pool.urlopen("POST", "/api/lists/subscribe", body=payload, headers=headers)
        assert resp.status == 200
        orjson.loads(resp.data)
    out["urllib3_post_and_loads"] = cpu_ms(time.thread_time() - cpu, len(raw) - 1)
    pool.close()

    session = requests.Session()
    raw = [orjson.dumps({"listId": list_id, "subscribers": fresh.batch(len(batches[0]))}) for _ in payloads]
    session.post(url + "/api/lists/subscribe", data=raw[0], headers=headers, timeout=(10, 60))
    cpu = time.thread_time()
    for payload in raw[1:]:
        resp = session.post(url + "/api/lists/subscribe", data=payload, headers=headers, timeout=(10, 60))
        assert resp.status_code == 200
        orjson.loads(resp.content)
    out["requests_post_and_loads"] = cpu_ms(time.thread_time() - cpu, len(raw) - 1)
    session.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sender_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per run (default 300)")
    parser.add_argument("--threads", default="1,4,32", help="comma-separated in-flight counts (1 = one plain thread)")
    parser.add_argument("--rows", type=int, default=1000, help="members per request (default 1000)")
    parser.add_argument("--fields", default="first_name,plan",
                        help=f"dataFields per row, from {','.join(ALL_FIELDS)} ('' for none)")
    parser.add_argument("--busy-main", action="store_true", help="the main thread parses JSON meanwhile (GIL)")
    parser.add_argument("--encoded", action="store_true", help="pass rows encoded ahead instead of row dicts")
    parser.add_argument("--phases", action="store_true", help="also measure the parts alone")
    parser.add_argument("--profile", action="store_true", help="cProfile the single-thread run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (the median is printed too)")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)
    fields = [f for f in args.fields.split(",") if f]
    unknown = set(fields) - set(ALL_FIELDS)
    if unknown:
        parser.error(f"unknown fields {sorted(unknown)}")
    proc, url = start_sandbox()
    results: dict[str, Any] = {"switch_interval_s": sys.getswitchinterval(), "runs": []}
    try:
        admin = IterableClient(url, API_KEY)
        list_id = admin.create_list(f"sender-cpu-{time.time_ns()}", "bench.sender_cpu")
        rows = Rows(fields)
        if args.phases:
            results["phases_ms"] = run_phases(url, list_id, [rows.batch(args.rows) for _ in range(100)])
            print("phases (CPU ms per request, single thread):", orjson.dumps(results["phases_ms"]).decode())
        for setting in [int(t) for t in args.threads.split(",") if t]:
            figures = []
            for _ in range(args.repeat):
                batches = [rows.batch(args.rows) for _ in range(args.requests + 1)]
                if args.encoded:
                    batches = [EncodedRows(batch) for batch in batches]  # type: ignore[misc]
                if setting == 1 and not args.busy_main:
                    run = run_single(url, list_id, batches, args.profile)
                else:
                    run = run_pool(url, list_id, batches, setting, args.busy_main)
                profile = run.pop("profile", None)
                results["runs"].append(run)
                print(orjson.dumps(run).decode(), flush=True)
                if profile:
                    print(profile)
                figures.append(run.get("thread_cpu_ms", run.get("other_threads_cpu_ms")))
            if args.repeat > 1:
                print(f"threads {setting}: median sender CPU {statistics.median(figures):.3f} ms per request "
                      f"(runs: {', '.join(f'{f:.3f}' for f in figures)})", flush=True)
        admin.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
