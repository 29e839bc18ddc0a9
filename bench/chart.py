"""Throughput chart: what the server accepted and refused per second, and the controller's target rate."""

from __future__ import annotations

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
