"""Reliability soak: a large sync against the sandbox with every fault on, killed and resumed a few times.

    python -m bench.soak --records 200000 --minutes 3 [--kills 3] [--rps 3] [--seed 1] [--json out.json]

What it does:

1. starts the sandbox CLI (a separate process) with all faults on: 5xx answers, dropped connections,
   requests applied and then dropped, latency with jitter, a low subscribe rate limit, new lists that are
   unknown for a while, getUsers 503s and a few GDPR-forgotten emails;
2. seeds three lists and builds the input: four streams (append, append with CDC deletes of seeded members,
   overwrite = mirror of a segment onto a list that holds 2% stale members, soft_delete), a STREAM state
   with a platform `id` every 500 records of a stream, and a COMPLETE stream status per stream at the end;
3. runs `python main.py write` and, for each of the first `--kills` attempts, stops it after a random delay
   (SIGKILL and SIGTERM alternately); the next attempt is fed, as the platform does, only the input after
   the last STATE the previous attempt echoed; the last attempt runs to the end;
4. checks the final membership of every list against the expected one (nothing lost, nothing extra, no
   duplicate list) and prints the figures: records, attempts, faults injected, retries, time, lost, extra.

Exit status 0 only when every list is exact and the last attempt succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from integration_tests.sandbox import SandboxClient

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "soak-key-0123456789abcdef0123"
STATE_EVERY = 500
MAX_EXTRA_ATTEMPTS = 3  # failed attempts (not stopped by us) that are retried, as the platform would
FORGOTTEN = [f"soak_a.{n}@example.com" for n in (7, 77, 777)]
FAULTS = {"error_rate": 0.05, "drop_rate": 0.03, "apply_then_drop_rate": 0.05, "latency_ms": 30,
          "latency_jitter_ms": 60, "new_list_invalid_seconds": 2, "get_users_503_rate": 0.2, "get_users_503_next": 1,
          "get_users_per_minute": 5, "size_per_minute": 5}


# ----------------------------------------------------------------------------------------------- sandbox
def start_sandbox(rps: float, seed: int) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m integration_tests.sandbox` with every fault knob on; return it and its URL."""
    args = [sys.executable, "-m", "integration_tests.sandbox", "--port", "0", "--api-key", API_KEY,
            "--subscribe-rps", str(rps), "--seed", str(seed), "--forgotten-emails", ",".join(FORGOTTEN)]
    for knob, value in FAULTS.items():
        args += ["--" + knob.replace("_", "-"), str(value)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("sandbox listening on "):
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


# ----------------------------------------------------------------------------------------------- input
@dataclass
class Workload:
    """Input lines, where each STATE sits, and the expected final membership per list."""

    lines: list[bytes] = field(default_factory=list)
    state_at: dict[int, int] = field(default_factory=dict)  # state id -> index of its line
    expected: dict[str, set[str]] = field(default_factory=dict)
    records: int = 0
    catalog: dict[str, Any] = field(default_factory=dict)
    seeds: list[dict[str, Any]] = field(default_factory=list)


def build_workload(records: int) -> Workload:
    """Four streams sharing `records`; see the module docstring."""
    work = Workload()
    share = records // 4
    n_stale, n_old_b, n_old_d = max(1, share // 50), max(2, share // 20), max(2, 2 * share)
    old_b = [f"soak_b.old{n}@example.com" for n in range(n_old_b)]
    old_d = [f"soak_d.old{n}@example.com" for n in range(n_old_d)]
    work.seeds = [{"name": "soak_b", "generate": {"count": n_old_b, "email_pattern": "soak_b.old{i}@example.com"}},
                  {"name": "soak_c", "generate": {"count": n_stale, "email_pattern": "soak_c.stale{i}@example.com"}},
                  {"name": "soak_d", "generate": {"count": n_old_d, "email_pattern": "soak_d.old{i}@example.com"}}]
    rows: dict[str, list[dict[str, Any]]] = {
        "soak_a": [{"email": f"soak_a.{n}@example.com", "n": n} for n in range(share)],
        "soak_b": [{"email": f"soak_b.{n}@example.com"} for n in range(share - len(old_b) // 2)]
        + [{"email": e, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"} for e in old_b[: len(old_b) // 2]],
        "soak_c": [{"email": f"soak_c.{n}@example.com"} for n in range(share)],
        "soak_d": [{"email": e} for e in old_d[:share]],
    }
    work.expected = {
        "soak_a": {r["email"] for r in rows["soak_a"]} - set(FORGOTTEN),
        "soak_b": {r["email"] for r in rows["soak_b"] if "_ab_cdc_deleted_at" not in r} | set(old_b[len(old_b) // 2:]),
        "soak_c": {r["email"] for r in rows["soak_c"]},
        "soak_d": set(old_d[share:]),
    }
    work.catalog = {"streams": [
        _entry("soak_a", "append"), _entry("soak_b", "append"),
        {**_entry("soak_c", "overwrite"), "generation_id": 5, "minimum_generation_id": 5},
        _entry("soak_d", "soft_delete")]}
    sent = dict.fromkeys(rows, 0)
    cursors = dict.fromkeys(rows, 0)
    state_id = 0
    while any(cursors[s] < len(rows[s]) for s in rows):
        for stream, items in rows.items():
            for _ in range(7):  # small runs per stream, as sources interleave
                if cursors[stream] >= len(items):
                    break
                data = items[cursors[stream]]
                cursors[stream] += 1
                work.lines.append(orjson.dumps({"type": "RECORD", "record": {
                    "stream": stream, "data": data, "emitted_at": 1700000000000}}))
                work.records += 1
                sent[stream] += 1
                if sent[stream] % STATE_EVERY == 0 or cursors[stream] == len(items):
                    state_id += 1
                    work.state_at[state_id] = len(work.lines)
                    work.lines.append(orjson.dumps({"type": "STATE", "state": {
                        "type": "STREAM", "id": state_id, "stream": {
                            "stream_descriptor": {"name": stream}, "stream_state": {"cursor": sent[stream]}}}}))
    for stream in rows:
        work.lines.append(orjson.dumps({"type": "TRACE", "trace": {
            "type": "STREAM_STATUS", "emitted_at": 1700000000000.0,
            "stream_status": {"stream_descriptor": {"name": stream}, "status": "COMPLETE"}}}))
    return work


def _entry(name: str, mode: str) -> dict[str, Any]:
    return {"stream": {"name": name, "json_schema": {"type": "object"},
                       "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "full_refresh", "destination_sync_mode": mode}


# ----------------------------------------------------------------------------------------------- attempts
@dataclass
class Attempt:
    """One connector run."""

    number: int
    start_line: int
    stop_signal: str | None = None
    returncode: int | None = None
    seconds: float = 0.0
    last_state: int | None = None
    states: int = 0
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    client_stats: dict[str, Any] | None = None  # the connector's request counters (not after a SIGKILL)


def run_attempt(number: int, url: str, work: Workload, start_line: int, stop_after: float | None,
                stop_signal: int, tmp: Path) -> Attempt:
    """Run the connector on work.lines[start_line:], stopping it after `stop_after` s (None: to the end)."""
    config = {"api_key": API_KEY, "api_base_url": url, "privacy_consent": True, "email_field": "email",
              "retry_max_seconds": 120, "batch_max_age_seconds": 5, "progress_interval_seconds": 10,
              "mirror_max_removal_percent": 50}
    (tmp / "config.json").write_text(json.dumps(config))
    (tmp / "catalog.json").write_text(json.dumps(work.catalog))
    attempt = Attempt(number, start_line)
    metrics = tmp / f"metrics-{number}.json"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "write", "--config", str(tmp / "config.json"),
                             "--catalog", str(tmp / "catalog.json")], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "DESTINATION_ITERABLE_METRICS_FILE": str(metrics)})

    def feed() -> None:
        try:
            assert proc.stdin is not None
            for index in range(start_line, len(work.lines), 2000):
                proc.stdin.write(b"\n".join(work.lines[index:index + 2000]) + b"\n")
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if not raw.startswith(b"{"):
                continue
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "STATE":
                attempt.states += 1
                attempt.last_state = message["state"].get("id")
            elif kind == "LOG" and message["log"]["message"].startswith("SYNC_SUMMARY "):
                attempt.summary = json.loads(message["log"]["message"][len("SYNC_SUMMARY "):])
            elif kind == "TRACE" and message["trace"].get("error"):
                attempt.error = message["trace"]["error"]

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=read, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        proc.wait(timeout=stop_after)
    except subprocess.TimeoutExpired:
        attempt.stop_signal = signal.Signals(stop_signal).name
        proc.send_signal(stop_signal)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            attempt.stop_signal += "+SIGKILL"
            proc.kill()
            proc.wait()
    threads[1].join(timeout=10)
    attempt.returncode = proc.returncode
    attempt.seconds = time.monotonic() - started
    if metrics.exists():
        attempt.client_stats = orjson.loads(metrics.read_bytes()).get("client")
    return attempt


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--minutes", type=float, default=3.0, help="rough length; kills are spread over it")
    parser.add_argument("--kills", type=int, default=3, help="attempts to stop before the one that finishes")
    parser.add_argument("--rps", type=float, default=3.0, help="the sandbox's subscribe rate limit (requests/s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    began = time.monotonic()
    work = build_workload(args.records)
    sandbox, url = start_sandbox(args.rps, args.seed)
    client = SandboxClient(url, timeout=120)
    attempts: list[Attempt] = []
    try:
        client.seed(work.seeds)
        client.set_config(seed=args.seed)
        window = args.minutes * 60 / max(1, args.kills + 1)
        start_line = 0
        with tempfile.TemporaryDirectory() as tmp:
            number = 0
            while True:
                number += 1
                stop = number <= args.kills
                stop_after = rng.uniform(0.4, 1.0) * window if stop else None
                sig = signal.SIGKILL if number % 2 else signal.SIGTERM
                attempt = run_attempt(number, url, work, start_line, stop_after, sig, Path(tmp))
                attempts.append(attempt)
                print(f"attempt {number}: from line {start_line}, {attempt.seconds:.1f} s, "
                      f"{attempt.stop_signal or 'ran to the end'}, exit {attempt.returncode}, "
                      f"{attempt.states} states echoed (last id {attempt.last_state})", flush=True)
                if attempt.last_state is not None:
                    start_line = work.state_at[attempt.last_state] + 1
                if attempt.returncode == 0:
                    break  # the sync succeeded (possibly just before a stop signal): the platform is done
                if number > args.kills + MAX_EXTRA_ATTEMPTS:
                    break
                if not stop:
                    print("  the attempt failed; the platform retries it", flush=True)
        figures = verify(client, work, attempts, time.monotonic() - began, args)
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=30)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    ok = figures["members_lost"] == 0 and figures["members_extra"] == 0 and figures["duplicate_lists"] == 0 \
        and attempts[-1].returncode == 0
    print("SOAK " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def verify(client: SandboxClient, work: Workload, attempts: list[Attempt], seconds: float,
           args: argparse.Namespace) -> dict[str, Any]:
    """Compare every list with the expected membership and collect the figures."""
    lists = client.lists()
    by_name: dict[str, list[int]] = {}
    for item in lists:
        by_name.setdefault(item["name"], []).append(item["id"])
    per_list = {}
    lost = extra = duplicates = 0
    for name, expected in work.expected.items():
        ids = by_name.get(name, [])
        duplicates += max(0, len(ids) - 1)
        actual = client.member_emails(ids[0]) if ids else set()
        missing, surplus = expected - actual, actual - expected
        lost += len(missing)
        extra += len(surplus)
        per_list[name] = {"expected": len(expected), "actual": len(actual), "lost": len(missing),
                          "extra": len(surplus), "lost_sample": sorted(missing)[:3],
                          "extra_sample": sorted(surplus)[:3], "lists_with_this_name": len(ids)}
    stats = client.stats()
    requests_by_status: dict[str, int] = {}
    for codes in stats["requests"].values():
        for code, count in codes.items():
            requests_by_status[code] = requests_by_status.get(code, 0) + count
    retries_reported = sum((a.client_stats or {}).get("retries", 0) for a in attempts)
    requests_reported = sum((a.client_stats or {}).get("requests", 0) for a in attempts)
    return {
        "records": work.records, "streams": len(work.expected), "input_lines": len(work.lines),
        "attempts": len(attempts),
        "stops": [a.stop_signal for a in attempts if a.stop_signal],
        "attempt_seconds": [round(a.seconds, 1) for a in attempts],
        "attempt_exit_codes": [a.returncode for a in attempts],
        "last_error": attempts[-1].error,
        "faults_injected": {**stats["faults"], "rate_limited_429": stats["rate_limited"]},
        "faults_injected_total": sum(stats["faults"].values()) + stats["rate_limited"],
        "server_requests_by_status": requests_by_status,
        "retries_by_connector": retries_reported,
        "requests_by_connector": requests_reported,
        "retries_note": "summed over the attempts that were not SIGKILLed (a killed process reports nothing)",
        "subscribers_received": stats["subscribers_received"],
        "seconds": round(seconds, 1),
        "members_lost": lost, "members_extra": extra, "duplicate_lists": duplicates,
        "other_lists": sorted(n for n in by_name if n not in work.expected),
        "lists": per_list,
        "sandbox_faults": FAULTS, "subscribe_rps": args.rps, "seed": args.seed,
    }


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
