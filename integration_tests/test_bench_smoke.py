"""Smoke test of the throughput benchmark (bench/throughput.py): tiny runs, correctness only, no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throughput import FIGURE_LABELS

ROOT = Path(__file__).resolve().parent.parent


def run_bench(tmp_path: Path, *args: str) -> tuple[str, dict]:
    """Run `python -m bench.throughput` with its cache and scratch space under tmp_path."""
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, "-m", "bench.throughput", "--cache-dir", str(tmp_path / "cache"),
                           "--work-dir", str(tmp_path), "--json", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def assert_every_figure(stdout: str) -> None:
    labels = [line.split(":", 1)[0] for line in stdout.splitlines()]
    missing = [label for label in FIGURE_LABELS if label not in labels]
    assert not missing, f"figures missing from the output: {missing}\n{stdout}"


@pytest.mark.parametrize("limit", ["0", "50"])
def test_add_sync_lands_every_valid_unique_member(tmp_path: Path, limit: str) -> None:
    stdout, figures = run_bench(tmp_path, "--records", "3000", "--streams", "2", "--limit", limit)
    assert_every_figure(stdout)
    assert "membership check: OK" in stdout
    assert figures["membership_ok"] and figures["returncode"] == 0
    assert figures["actual_members"] == figures["expected_members"]
    assert len(figures["expected_members"]) == 2 and 2500 < sum(figures["expected_members"].values()) < 3000
    assert figures["states_echoed"] == figures["states_expected"] > 0
    assert figures["accepted_requests"] >= 3 and figures["peak_rss_mb"] > 0 and figures["baseline_cpu_s"] > 0
    if limit == "50":
        assert figures["ideal_s"] is not None and figures["efficiency"] is not None


def test_mirror_removes_the_seeded_members_not_in_the_sync(tmp_path: Path) -> None:
    stdout, figures = run_bench(tmp_path, "--mode", "mirror", "--members", "2000", "--records", "1500",
                                "--limit", "0")
    assert_every_figure(stdout)
    assert figures["membership_ok"]
    unique = sum(figures["expected_members"].values())  # the sync's members: member1000 .. member(999 + unique)
    assert 1000 < unique < 1500
    assert figures["removed_by_mirror"] == 1000  # seeded member0 .. member999 are not in the sync
    assert sum(figures["actual_members"].values()) == unique


def test_rate_matrix_prints_its_table(tmp_path: Path) -> None:
    """bench/rate_matrix.py at a tiny scale on one case: the table prints and the sync is correct (no timing)."""
    import importlib.util

    out = tmp_path / "matrix.json"
    charts = ["--charts", str(tmp_path)] if importlib.util.find_spec("matplotlib") else ["--no-charts"]
    proc = subprocess.run([sys.executable, "-m", "bench.rate_matrix", "--cases", "per-minute", "--scale", "0.005",
                           "--cache-dir", str(tmp_path / "cache"), "--work-dir", str(tmp_path), "--out", str(out),
                           *charts], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("| case | limit | records | requests | ideal s | wall s |") for line in lines)
    row = next(line for line in lines if line.startswith("| per-minute |"))
    assert row.endswith("| yes |")  # 3 requests fit in the first minute's quota of 180
    [result] = json.loads(out.read_text())
    assert result["membership_ok"] and result["met"] and result["records"] == 3000 and result["requests"] >= 3
    # The paced window (first request to last answer) lies inside the wall after start-up, after the lists' set-up.
    assert 0 < result["paced_s"] < result["wall_s"] and result["paced_efficiency"] > 0
    if charts[0] == "--charts":
        assert (tmp_path / "rate-per-minute.png").stat().st_size > 0


def test_rate_matrix_robustness_cases_set_their_own_latency() -> None:
    """bucket-20-slow and bucket-20-fast give the sandbox their round trip; the issue's cases keep 250 +/- 150 ms."""
    from bench.rate_matrix import ALL_CASES, LATENCY, sandbox_knobs

    cases = {case.name: case for case in ALL_CASES}
    names = ("bucket-20-slow", "bucket-20-fast", "bucket-20")
    slow, fast, plain = (sandbox_knobs(cases[name], 1 / 3) for name in names)
    assert (slow["latency_ms"], slow["latency_jitter_ms"]) == (400.0, 1200.0)  # 1 +/- 0.6 s
    assert (fast["latency_ms"], fast["latency_jitter_ms"]) == (20.0, 60.0)  # 50 +/- 30 ms
    assert {key: plain[key] for key in LATENCY} == LATENCY
    assert "round trip 1000 +/- 600 ms" in cases["bucket-20-slow"].describe


def test_rate_matrix_max_rps_reaches_every_sync_config() -> None:
    """--max-rps gives each sync the user's cap (and its own lists); without it the connector is not told a limit."""
    from bench.rate_matrix import build_parser, cap_text, sync_config
    from destination_iterable.config import parse_config

    assert build_parser().parse_args(["--max-rps", "5.5"]).max_rps == 5.5
    assert build_parser().parse_args([]).max_rps is None
    configs = [sync_config("http://127.0.0.1:1", [], index, 4, 5.5) for index in range(4)]
    # The connector reads the cap from each config as the user's setting (a mistyped key would be ignored).
    assert [parse_config(c).max_requests_per_second for c in configs] == [5.5] * 4
    assert len({c["list_name_template"] for c in configs}) == 4
    assert "max_requests_per_second" not in sync_config("http://127.0.0.1:1", [], 0, 1, None)
    assert cap_text(5.5) == ", each sync capped at 5.5/s" and cap_text(None) == ""
