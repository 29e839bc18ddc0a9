"""Throughput chart: what the server accepted and refused per second, and the controller's target rate."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_run(path: Path, *, buckets: Sequence[dict[str, Any]], bucket_offset: float,
             controller: Sequence[Sequence[float]], run_start: float, run_end: float, limit: float,
             title: str) -> None:
    """Write a PNG.

    ``buckets`` are the sandbox's per-second counts (``t``, ``ok``, ``rate_limited``); ``bucket_offset`` is the
    sandbox timeline's second 0 in the connector's monotonic clock minus ``run_start``. ``controller`` is the
    controller's ``[(monotonic_t, target_rps)]`` (a step function); times are shown from ``run_start``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = run_end - run_start
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    xs = [bucket_offset + b["t"] for b in buckets]
    ax.bar(xs, [b["ok"] for b in buckets], width=1.0, align="edge", color="#4c9be8", alpha=0.75,
           label="accepted requests/s (server)")
    ax.bar(xs, [b["rate_limited"] for b in buckets], width=1.0, align="edge", color="#e8514c",
           bottom=[b["ok"] for b in buckets], label="429 answers/s (server)")
    if controller:
        times = [t - run_start for t, _ in controller] + [end]
        rates = [r for _, r in controller] + [controller[-1][1]]
        ax.step(times, rates, where="post", color="#1b7a3a", linewidth=1.6, label="controller target rate")
    if limit > 0:
        ax.axhline(limit, color="black", linestyle="--", linewidth=1.0, label=f"hidden limit ({limit:g}/s)")
    ax.set_xlim(0, max(end, 1.0))
    top = max([limit * 1.6] + [b["ok"] + b["rate_limited"] for b in buckets] + [r for _, r in controller or [(0, 0)]])
    ax.set_ylim(0, top * 1.05 if top > 0 else 1)
    ax.set_xlabel("seconds since the connector started")
    ax.set_ylabel("requests per second")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_rates(path: Path, *, buckets: Sequence[dict[str, Any]], bucket_offset: float,
               controllers: Sequence[tuple[str, Sequence[Sequence[float]], float]], run_start: float,
               limit_steps: Sequence[Sequence[float]], limit_label: str, title: str) -> None:
    """Write a PNG of one rate-matrix case (``bench/rate_matrix.py``).

    Like :func:`plot_run`, with one target line per connector process (``controllers``: ``(label,
    [(monotonic_t, target_rps)], end)``, ``end`` in seconds since ``run_start``), their sum when there are
    several, the limit as a step function (``limit_steps``: ``[(from_s, rps)]`` since ``run_start``) and a
    dotted line where each process ended.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = [stop for _, _, stop in controllers]
    end = max(ends) if ends else 1.0
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    xs = [bucket_offset + b["t"] for b in buckets]
    ok = [b["ok"] for b in buckets]
    ax.bar(xs, ok, width=1.0, align="edge", color="#4c9be8", alpha=0.75, label="accepted requests/s (server)")
    ax.bar(xs, [b["rate_limited"] for b in buckets], width=1.0, align="edge", color="#e8514c", bottom=ok,
           label="429 answers/s (server)")
    single = len(controllers) == 1
    steps = []  # per process: change times and rates, ending with 0 when it exits
    for label, timeline, stop in controllers:
        if not timeline:
            continue
        times = [t - run_start for t, _ in timeline] + [stop]
        rates = [r for _, r in timeline] + [0.0]
        steps.append((times, rates))
        ax.step(times, rates[:-1] + [rates[-2]], where="post", linewidth=1.6 if single else 1.0, label=label,
                color="#1b7a3a" if single else None)
    if len(steps) > 1:  # the sum of the targets, evaluated at every change of any of them
        changes = sorted({t for times, _ in steps for t in times})
        total = [sum(_step_value(times, rates, t) for times, rates in steps) for t in changes]
        ax.step(changes, total, where="post", color="#1b7a3a", linewidth=1.8, label="sum of targets")
    limit_x = [float(start) for start, _ in limit_steps] + [end]
    limit_y = [float(rps) for _, rps in limit_steps]
    ax.step(limit_x, limit_y + [limit_y[-1]], where="post", color="black", linestyle="--", linewidth=1.0,
            label=limit_label)
    for index, at in enumerate(ends if not single else []):
        ax.axvline(at, color="grey", linestyle=":", linewidth=1.0, label="a sync ends" if index == 0 else None)
    ax.set_xlim(0, max(end, 1.0))
    top = max([max(limit_y) * 1.6] + [b["ok"] + b["rate_limited"] for b in buckets])
    ax.set_ylim(0, top * 1.05)
    ax.set_xlabel("seconds since the connector(s) started")
    ax.set_ylabel("requests per second")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _step_value(times: Sequence[float], rates: Sequence[float], at: float) -> float:
    """The value of a step function (``rates[i]`` from ``times[i]`` on) at ``at``; 0 before it starts."""
    index = bisect_right(times, at)
    return rates[index - 1] if index else 0.0
