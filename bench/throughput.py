"""End-to-end throughput benchmark: the real CLI against the local sandbox with a hidden rate limit.

    python -m bench.throughput --records 1000000 --streams 4 --limit 20 [--chart FILE.png]
    python -m bench.throughput --mode mirror --members 2000000 --records 1000000 --limit 20
    python -m bench.throughput --records 1000000 --limit 0            # unthrottled: CPU vs the orjson baseline

Generates (once, cached by its arguments) a realistic input file, starts the sandbox with
``--subscribe-rps LIMIT`` (the connector is not told), runs ``python main.py write`` with that file as
stdin, and reports wall time against the ideal, the share of 429 answers, the connector's CPU time and
peak RSS (from ``wait4``), and the CPU time of a process that only parses the same lines with orjson.
It ends with a correctness check: every list must hold exactly the valid unique members of its stream.

Exit status: 0 when the sync succeeded and the membership check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests

from bench.inputs import DUPLICATE_SHARE, MIRROR_PATTERN, ensure_input

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-throughput-key-0123456789abcdef"
METRICS_FILE_ENV = "DESTINATION_ITERABLE_METRICS_FILE"
BULK_ROUTES = ("POST /api/lists/subscribe", "POST /api/lists/unsubscribe")
DEFAULT_DATA_FIELDS = "first_name,plan"
BASELINE_CODE = """
import sys, orjson
loads = orjson.loads
count = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        loads(line)
        count += 1
print(count)
"""
FIGURE_LABELS = ("records", "server limit", "wall seconds", "ideal seconds", "efficiency", "429 share",
                 "connector CPU seconds", "CPU seconds per 100k records", "orjson baseline CPU seconds",
                 "CPU ratio vs orjson baseline", "peak RSS", "states echoed", "membership check")


class ThreadSampler:
    """Samples the CPU time of a child's threads from /proc (Linux): main thread vs all the others."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.ticks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def start(self) -> ThreadSampler:
        """Begin sampling in the background."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        """Read every thread's utime+stime once."""
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat", "rb") as handle:
                    raw = handle.read().decode("ascii", "replace")
            except OSError:
                continue
            name = raw[raw.find("(") + 1:raw.rfind(")")]
            fields = raw[raw.rfind(")") + 2:].split()
            self.ticks[int(tid)] = int(fields[11]) + int(fields[12])
            self.names[int(tid)] = name

    def stop(self) -> None:
        """Stop sampling (the last sample may be up to one interval old)."""
        self._stop.set()
        self._thread.join()

    def split(self) -> tuple[float, float]:
        """(main thread CPU s, other threads CPU s) as last sampled."""
        main = self.ticks.get(self.pid, 0) / self.hz
        others = sum(t for tid, t in self.ticks.items() if tid != self.pid) / self.hz
        return main, others


@dataclass
class ChildRun:
    """A finished child process: exit code, wall seconds and its own rusage."""

    returncode: int
    wall: float
    user: float
    sys: float
    max_rss_kb: int
    started: float  # monotonic
    ended: float
    main_thread_cpu: float = 0.0  # sampled from /proc (slightly low: the last interval is missed)
    other_threads_cpu: float = 0.0

    @property
    def cpu(self) -> float:
        """User + system seconds."""
        return self.user + self.sys


@dataclass
class Figures:
    """Everything one benchmark run reports (also written with --json)."""

    mode: str
    records: int
    streams: int
    limit: float
    data_fields: list[str]
    input_lines: int
    input_mb: float
    wall_s: float = 0.0
    ideal_s: float | None = None
    ideal_records_s: float | None = None
    efficiency: float | None = None
    efficiency_records: float | None = None
    bulk_requests: int = 0
    accepted_requests: int = 0
    rate_limited: int = 0
    share_429: float = 0.0
    cpu_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0
    cpu_per_100k: float = 0.0
    main_thread_cpu_s: float = 0.0
    other_threads_cpu_s: float = 0.0
    startup_cpu_s: float = 0.0
    baseline_cpu_s: float = 0.0
    baseline_runs_s: list[float] = field(default_factory=list)
    cpu_ratio: float = 0.0
    cpu_ratio_excl_startup: float = 0.0
    peak_rss_mb: float = 0.0
    states_expected: int = 0
    states_echoed: int = 0
    expected_members: dict[str, int] = field(default_factory=dict)
    actual_members: dict[str, int] = field(default_factory=dict)
    membership_ok: bool = False
    returncode: int = 0
    members_seeded: int = 0
    removed_by_mirror: int = 0
    controller: dict[str, Any] = field(default_factory=dict)
    first_accept_s: float | None = None  # seconds from the connector's start (1-second resolution)
    last_accept_s: float | None = None
    accepted_rate: float | None = None  # mean accepted requests/s between the first and the last accepted second
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str = ""
    code: str = ""  # git commit (+ "dirty") and short hashes of the connector files the figures depend on


# --------------------------------------------------------------------------- processes
def run_child(args: list[str], *, stdin_path: str | None, stdout_path: str, stderr_path: str,
              env: dict[str, str] | None = None, timeout: float | None = None,
              sample_threads: bool = False) -> ChildRun:
    """Run a process to completion and read its own resource usage with ``wait4``."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(args, stdin=stdin, stdout=out, stderr=err, cwd=ROOT, env=env)
        sampler = ThreadSampler(proc.pid).start() if sample_threads and os.path.isdir("/proc/self/task") else None
        timer = None
        if timeout:
            timer = threading.Timer(timeout, proc.kill)
            timer.daemon = True
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if sampler is not None:
                sampler.stop()
            if timer is not None:
                timer.cancel()
            if stdin is not subprocess.DEVNULL:
                stdin.close()
        ended = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    main, others = sampler.split() if sampler is not None else (0.0, 0.0)
    return ChildRun(proc.returncode, ended - started, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, started, ended,
                    main, others)


class Sandbox:
    """The sandbox CLI in a subprocess, with a small client for its inspection routes."""

    def __init__(self, limit: float, workdir: Path) -> None:
        args = [sys.executable, "-m", "integration_tests.sandbox", "--port", "0", "--api-key", API_KEY,
                "--subscribe-rps", str(limit)]
        self.stderr = open(workdir / "sandbox.stderr", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("sandbox listening on "):
            self.stop()
            raise SystemExit(f"the sandbox did not start: {line!r} (see {workdir / 'sandbox.stderr'})")
        self.url = line.rsplit(" ", 1)[-1]
        self.session = requests.Session()

    def get(self, path: str) -> Any:
        """GET an inspection route."""
        resp = self.session.get(self.url + path, timeout=120)
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, body: Any) -> Any:
        """POST to a control route."""
        resp = self.session.post(self.url + path, data=orjson.dumps(body), timeout=600)
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> None:
        """Terminate the sandbox (our own child, by its pid)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


# --------------------------------------------------------------------------- connector inputs
def make_config(url: str, data_fields: list[str], mode: str) -> dict[str, Any]:
    """Connector settings: defaults except the sandbox URL, consent, fields and (mirror) the valve."""
    config: dict[str, Any] = {"api_key": API_KEY, "api_base_url": url, "privacy_consent": True,
                              "email_field": "email", "data_fields": data_fields}
    if mode == "mirror":
        config["mirror_max_removal_percent"] = 100
    return config


def make_catalog(streams: list[str], mode: str) -> dict[str, Any]:
    """One configured stream per segment: append (add mode) or a truncating overwrite (mirror mode)."""
    properties = {name: {"type": ["null", kind]} for name, kind in (
        ("email", "string"), ("first_name", "string"), ("last_name", "string"), ("plan", "string"),
        ("signup_date", "string"), ("score", "integer"), ("country", "string"), ("customer_id", "integer"))}
    entries = []
    for name in streams:
        entry: dict[str, Any] = {
            "stream": {"name": name, "json_schema": {"type": "object", "properties": properties},
                       "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "full_refresh" if mode == "mirror" else "incremental",
            "destination_sync_mode": "overwrite" if mode == "mirror" else "append",
        }
        if mode == "mirror":
            entry["generation_id"] = 1
            entry["minimum_generation_id"] = 1
        entries.append(entry)
    return {"streams": entries}


def parse_output(path: Path) -> tuple[int, dict[str, Any] | None, list[str]]:
    """(STATE messages echoed, SYNC_SUMMARY payload, TRACE error messages) from the connector's stdout."""
    states, summary, errors = 0, None, []
    with open(path, "rb") as handle:
        for line in handle:
            if not line.startswith(b"{"):
                continue
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            kind = message.get("type")
            if kind == "STATE":
                states += 1
            elif kind == "LOG":
                text = message.get("log", {}).get("message", "")
                if text.startswith("SYNC_SUMMARY "):
                    summary = orjson.loads(text[len("SYNC_SUMMARY "):])
            elif kind == "TRACE" and message.get("trace", {}).get("error"):
                errors.append(str(message["trace"]["error"].get("message")))
    return states, summary, errors


# --------------------------------------------------------------------------- the run
def connector_dir() -> Path:
    """The checkout whose main.py is measured: this one, or $BENCH_CONNECTOR_DIR (A/B comparisons)."""
    return Path(os.environ.get("BENCH_CONNECTOR_DIR") or ROOT)


def startup_cpu(workdir: Path, config_path: Path) -> float:
    """CPU seconds of a write with no streams and no input: the fixed cost inside every run.

    (`spec` is not used: it loads airbyte-cdk, which `write` does not.)
    """
    catalog_path = workdir / "empty-catalog.json"
    catalog_path.write_bytes(orjson.dumps({"streams": []}))
    run = run_child([sys.executable, str(connector_dir() / "main.py"), "write", "--config", str(config_path),
                     "--catalog", str(catalog_path)], stdin_path=os.devnull,
                    stdout_path=str(workdir / "startup.out"), stderr_path=str(workdir / "startup.err"))
    return run.cpu


def baseline_cpu(input_path: str, workdir: Path) -> ChildRun:
    """The orjson-only baseline: a process that reads the input line by line with orjson.loads."""
    return run_child([sys.executable, "-c", BASELINE_CODE, input_path], stdin_path=None,
                     stdout_path=str(workdir / "baseline.out"), stderr_path=str(workdir / "baseline.err"))


def run_benchmark(args: argparse.Namespace) -> tuple[Figures, dict[str, Any]]:
    """Run everything; returns the figures and raw material for the chart."""
    mode = args.mode
    streams = args.streams if args.streams is not None else (1 if mode == "mirror" else 4)
    mirror_offset = None
    if mode == "mirror":
        mirror_offset = args.members // 2  # the sync's members overlap the seeded list's second half
    meta, generated = ensure_input(args.records, streams, seed=args.seed, mirror_offset=mirror_offset,
                                   cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                                   duplicate_share=args.duplicates)
    if generated:
        print(f"input generated: {meta.path}", flush=True)
    data_fields = [f for f in args.data_fields.split(",") if f] if args.data_fields else []
    figures = Figures(code=code_version(), mode=mode, records=meta.records, streams=streams, limit=args.limit,
                      data_fields=data_fields, input_lines=meta.lines, input_mb=meta.bytes / 1e6,
                      states_expected=meta.states, load_before=os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-", dir=args.work_dir))
    sandbox = Sandbox(args.limit, workdir)
    try:
        expected = dict(meta.expected_members)
        if mode == "mirror":
            figures.members_seeded = args.members
            sandbox.post("/_sandbox/seed", {"lists": [{"name": meta.streams[0], "generate": {
                "count": args.members, "email_pattern": MIRROR_PATTERN}}]})
        figures.expected_members = expected
        config_path, catalog_path = workdir / "config.json", workdir / "catalog.json"
        config_path.write_bytes(orjson.dumps(make_config(sandbox.url, data_fields, mode)))
        catalog_path.write_bytes(orjson.dumps(make_catalog(meta.streams, mode)))
        metrics_path = workdir / "metrics.json"
        wrap = os.environ.get("BENCH_WRAP", "").split()  # experiments: a script that runs main.py (e.g. patched)
        env = {**os.environ, METRICS_FILE_ENV: str(metrics_path)}
        command = [sys.executable, *wrap, str(connector_dir() / "main.py"),
                   "write", "--config", str(config_path), "--catalog", str(catalog_path)]
        if args.profile and args.profiler == "pyinstrument":
            command = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", args.profile,
                       *command[1:]]
        elif args.profile:
            command = [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "250", "--gil", "-f", "raw",
                       "-o", args.profile, "--", *command]
        timeline_before = sandbox.get("/_sandbox/timeline")
        connector = run_child(command, stdin_path=meta.path, stdout_path=str(workdir / "connector.out"),
                              stderr_path=str(workdir / "connector.err"), env=env, timeout=args.timeout,
                              sample_threads=not args.profile)
        figures.load_after = os.getloadavg()
        figures.returncode = connector.returncode
        figures.wall_s = connector.wall
        figures.cpu_user_s, figures.cpu_sys_s, figures.cpu_s = connector.user, connector.sys, connector.cpu
        figures.cpu_per_100k = connector.cpu / max(meta.records, 1) * 100_000
        figures.main_thread_cpu_s, figures.other_threads_cpu_s = connector.main_thread_cpu, connector.other_threads_cpu
        figures.peak_rss_mb = connector.max_rss_kb / 1024
        figures.states_echoed, summary, errors = parse_output(workdir / "connector.out")
        if connector.returncode != 0:
            tail = (workdir / "connector.err").read_bytes()[-2000:].decode("utf-8", "replace")
            figures.error = "; ".join(errors) or tail or f"exit status {connector.returncode}"
        if summary:
            figures.removed_by_mirror = sum(entry.get("removed_by_mirror", 0) for entry in summary["lists"])
        stats = sandbox.get("/_sandbox/stats")
        timeline = sandbox.get("/_sandbox/timeline")
        lists = sandbox.get("/_sandbox/lists")["lists"]
    finally:
        sandbox.stop()
    by_name = {entry["name"]: entry["size"] for entry in lists}
    figures.actual_members = {name: by_name.get(name, 0) for name in meta.streams}
    figures.membership_ok = figures.actual_members == expected and connector.returncode == 0
    for route in BULK_ROUTES:
        codes = stats["requests"].get(route, {})
        figures.bulk_requests += sum(codes.values())
        figures.accepted_requests += codes.get("200", 0)
        figures.rate_limited += codes.get("429", 0)
    figures.share_429 = figures.rate_limited / figures.bulk_requests if figures.bulk_requests else 0.0
    if args.limit > 0:
        figures.ideal_s = figures.accepted_requests / args.limit
        figures.ideal_records_s = meta.records / (1000 * args.limit)
        figures.efficiency = figures.ideal_s / figures.wall_s if figures.wall_s else None
        figures.efficiency_records = figures.ideal_records_s / figures.wall_s if figures.wall_s else None
    metrics: dict[str, Any] = {}
    if metrics_path.exists():
        metrics = orjson.loads(metrics_path.read_bytes())
        figures.controller = metrics.get("snapshot", {})
    runs = sorted(baseline_cpu(meta.path, workdir).cpu for _ in range(max(1, args.baseline_runs)))
    figures.baseline_runs_s = runs
    figures.baseline_cpu_s = base = runs[len(runs) // 2]  # the median: the machine is shared and noisy
    figures.startup_cpu_s = startup_cpu(workdir, config_path)
    figures.cpu_ratio = figures.cpu_s / base if base else math.inf
    figures.cpu_ratio_excl_startup = (figures.cpu_s - figures.startup_cpu_s) / base if base else math.inf
    # The sandbox's timeline second 0, on the shared monotonic clock (wall and monotonic read together).
    sandbox_start_mono = timeline["start"] - time.time() + time.monotonic()
    busy = [b for b in timeline["buckets"] if b["ok"]]
    if busy:
        offset = sandbox_start_mono - connector.started
        figures.first_accept_s = offset + busy[0]["t"]
        figures.last_accept_s = offset + busy[-1]["t"] + 1
        span = busy[-1]["t"] + 1 - busy[0]["t"]
        figures.accepted_rate = sum(b["ok"] for b in busy) / span
    raw = {"timeline": timeline, "timeline_before": timeline_before, "metrics": metrics,
           "run_start": connector.started, "run_end": connector.ended,
           "bucket_offset": sandbox_start_mono - connector.started, "workdir": str(workdir)}
    (workdir / "raw.json").write_bytes(orjson.dumps(raw))
    return figures, raw


# --------------------------------------------------------------------------- output
def code_version() -> str:
    """What was measured: the git commit, whether the tree is dirty, and hashes of the hot-path/rate files."""
    import hashlib

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "destination_iterable"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    hashes = []
    for name in ("rate.py", "pipeline.py", "sink.py", "messages.py", "identity.py"):
        path = ROOT / "destination_iterable" / name
        if path.exists():
            hashes.append(f"{name[:-3]}:{hashlib.sha1(path.read_bytes()).hexdigest()[:7]}")  # noqa: S324
    return f"{commit or 'unknown'}{'+dirty' if dirty else ''} ({', '.join(hashes)})"


def _fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def report(f: Figures) -> str:
    """The human-readable figures (every label of FIGURE_LABELS appears once)."""
    lines = [
        f"records: {f.records} ({f.streams} stream(s), {f.input_lines} lines, {f.input_mb:.1f} MB input, "
        f"mode {f.mode}, data_fields {f.data_fields})",
        f"server limit: {f'{f.limit:g} requests/s (hidden from the connector)' if f.limit > 0 else 'none'}",
        f"wall seconds: {f.wall_s:.2f}",
    ]
    if f.ideal_s is not None:
        lines.append(f"ideal seconds: {f.ideal_s:.2f} ({f.accepted_requests} accepted requests / {f.limit:g} per s; "
                     f"records / (1000 x limit) = {f.ideal_records_s:.2f})")
        lines.append(f"efficiency: {f.efficiency:.3f} (by records: {f.efficiency_records:.3f})")
    else:
        lines.append("ideal seconds: n/a (server unthrottled)")
        lines.append("efficiency: n/a (server unthrottled)")
    if f.accepted_rate is not None:
        lines.append(f"server side: first accepted request in second {f.first_accept_s:.1f}, last in second "
                     f"{f.last_accept_s:.1f} after the connector started; {f.accepted_rate:.2f} accepted requests/s "
                     "in between")
    lines += [
        f"429 share: {100 * f.share_429:.2f}% ({f.rate_limited} of {f.bulk_requests} subscribe/unsubscribe "
        f"requests)",
        f"connector CPU seconds: {f.cpu_s:.2f} (user {f.cpu_user_s:.2f}, sys {f.cpu_sys_s:.2f}; start-up alone "
        f"{f.startup_cpu_s:.2f}; sampled: main thread {f.main_thread_cpu_s:.2f}, other threads "
        f"{f.other_threads_cpu_s:.2f})",
        f"CPU seconds per 100k records: {f.cpu_per_100k:.3f}",
        f"orjson baseline CPU seconds: {f.baseline_cpu_s:.2f} (median of "
        f"{', '.join(f'{run:.2f}' for run in f.baseline_runs_s) or 'one run'})",
        f"CPU ratio vs orjson baseline: {f.cpu_ratio:.2f} (without the start-up: {f.cpu_ratio_excl_startup:.2f})",
        f"peak RSS: {f.peak_rss_mb:.1f} MB",
        f"states echoed: {f.states_echoed} of {f.states_expected}",
    ]
    if f.mode == "mirror":
        lines.append(f"mirror: {f.members_seeded} members seeded, {f.removed_by_mirror} removed by the mirror")
    total_expected, total_actual = sum(f.expected_members.values()), sum(f.actual_members.values())
    verdict = "OK" if f.membership_ok else "FAILED"
    lines.append(f"membership check: {verdict} ({len(f.actual_members)} list(s), {total_actual} members, "
                 f"expected {total_expected} valid unique emails)")
    if not f.membership_ok:
        lines.append(f"  expected {f.expected_members}")
        lines.append(f"  actual   {f.actual_members}")
    if f.controller:
        c = f.controller
        lines.append(f"controller: final target {c.get('target_rps', 0):.2f}/s, sent {c.get('sent')}, "
                     f"ok {c.get('ok')}, 429 {c.get('rate_limited')}, errors {c.get('errors')}")
    lines.append(f"load average before/after: {_fmt_load(f.load_before)} / {_fmt_load(f.load_after)} "
                 f"({os.cpu_count()} CPUs)")
    lines.append(f"code: {f.code}")
    if f.error:
        lines.append(f"connector error: {f.error}")
    return "\n".join(lines)


def summarize_profile(path: Path, top: int = 25) -> str:
    """Top functions of a py-spy raw (collapsed) profile: self and inclusive shares of the samples."""
    self_count: dict[str, int] = {}
    incl_count: dict[str, int] = {}
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(frame) for frame in stack.split(";")]
        self_count[frames[-1]] = self_count.get(frames[-1], 0) + count
        for name in set(frames):
            incl_count[name] = incl_count.get(name, 0) + count
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self %  function"]
    for name, count in sorted(self_count.items(), key=lambda item: -item[1])[:top]:
        out.append(f"{100 * count / total:6.1f}  {name}")
    out += ["", "incl %  function"]
    for name, count in sorted(incl_count.items(), key=lambda item: -item[1])[:top]:
        out.append(f"{100 * count / total:6.1f}  {name}")
    return "\n".join(out)


def _frame_name(frame: str) -> str:
    """'func (path/to/module.py:12)' -> 'func (module.py)'."""
    name, _, where = frame.partition(" (")
    filename = where.rsplit(":", 1)[0].rsplit("/", 1)[-1] if where else ""
    return f"{name} ({filename})" if filename else name


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="RECORD messages in the input")
    parser.add_argument("--streams", type=int, default=None, help="streams (default 4; 1 in mirror mode)")
    parser.add_argument("--limit", type=float, default=20.0,
                        help="the sandbox's subscribe+unsubscribe limit in requests/s (0 = unthrottled)")
    parser.add_argument("--mode", choices=("add", "mirror"), default="add")
    parser.add_argument("--members", type=int, default=2_000_000,
                        help="mirror mode: members seeded into the list first")
    parser.add_argument("--data-fields", default=DEFAULT_DATA_FIELDS,
                        help=f"comma-separated data_fields setting (default {DEFAULT_DATA_FIELDS}; '' for none)")
    parser.add_argument("--chart", default=None, help="write a PNG chart of the run here")
    parser.add_argument("--json", default=None, help="write the figures as JSON here")
    parser.add_argument("--profile", default=None,
                        help="profile the connector and write the profile here (CPU and RSS figures then "
                             "describe the profiler too); summarise a py-spy profile with --summarize")
    parser.add_argument("--profiler", choices=("py-spy", "pyinstrument"), default="py-spy",
                        help="py-spy: every thread holding the GIL (CPU in Python), collapsed stacks; "
                             "pyinstrument: the main thread, text tree")
    parser.add_argument("--summarize", default=None, metavar="RAW",
                        help="only print the top functions of a py-spy raw profile written by --profile")
    parser.add_argument("--seed", type=int, default=1, help="input generator seed")
    parser.add_argument("--duplicates", type=float, default=DUPLICATE_SHARE,
                        help=f"share of records that repeat an earlier member (default {DUPLICATE_SHARE})")
    parser.add_argument("--cache-dir", default=None,
                        help="where inputs are cached (default $BENCH_CACHE_DIR or <tmp>/destination-iterable-bench)")
    parser.add_argument("--work-dir", default=None, help="parent of the run's scratch directory (default <tmp>)")
    parser.add_argument("--baseline-runs", type=int, default=3,
                        help="runs of the orjson-only baseline (the median is used; default 3)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch directory (connector output, metrics, raw timeline) after a good run")
    parser.add_argument("--timeout", type=float, default=3600.0, help="kill the connector after this many seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = build_parser().parse_args(argv)
    if args.summarize:
        print(summarize_profile(Path(args.summarize)))
        return 0
    if args.records < 1 or (args.streams is not None and args.streams < 1) or args.limit < 0:
        raise SystemExit("--records and --streams must be >= 1 and --limit >= 0")
    figures, raw = run_benchmark(args)
    print(report(figures), flush=True)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({**asdict(figures), "workdir": raw["workdir"]},
                                                 option=orjson.OPT_INDENT_2))
    if args.chart:
        from bench.chart import plot_run

        title = (f"{figures.mode} sync of {figures.records:,} records, {figures.streams} stream(s), hidden limit "
                 f"{figures.limit:g}/s: wall {figures.wall_s:.1f} s, efficiency "
                 f"{figures.efficiency if figures.efficiency is not None else float('nan'):.3f}, "
                 f"429 share {100 * figures.share_429:.2f}%")
        plot_run(Path(args.chart), buckets=raw["timeline"]["buckets"], bucket_offset=raw["bucket_offset"],
                 controller=raw["metrics"].get("timeline", []), run_start=raw["run_start"],
                 run_end=raw["run_end"], limit=figures.limit, title=title)
        print(f"chart: {args.chart}")
    if args.keep or not figures.membership_ok:
        print(f"scratch directory (kept): {raw['workdir']}")
    else:
        shutil.rmtree(raw["workdir"], ignore_errors=True)
    return 0 if figures.membership_ok else 1


if __name__ == "__main__":
    sys.exit(main())
