"""Virtualenvs that tests build once and reuse: under ``~/.cache/destination-iterable/``, keyed by what is in them.

A test that needs packages the project venv does not have (PyAirbyte, source-faker) or a clean install of
this package builds a venv here the first time (cold, ~1 min) and reuses it afterwards (warm). The name of a
venv carries a hash of everything that goes into it (pinned requirements, Python version), so changing a pin
builds a new one instead of reusing a stale one. Building is serialised with a lock file, and a venv counts
only once its ``.complete`` stamp exists, so an interrupted build is thrown away and redone.

``DESTINATION_ITERABLE_CACHE_DIR`` moves the cache (default ``$XDG_CACHE_HOME/destination-iterable`` or
``~/.cache/destination-iterable``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

STAMP = ".complete"
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "--quiet"]


def cache_root() -> Path:
    """Where cached venvs live."""
    explicit = os.environ.get("DESTINATION_ITERABLE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "destination-iterable"


def python_tag() -> str:
    """e.g. ``py3.11``: a venv is only reused by the same Python minor version."""
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def env_key(*parts: str) -> str:
    """A short stable hash of the strings that define a venv's content."""
    digest = hashlib.sha256("\n".join((python_tag(), *parts)).encode()).hexdigest()
    return digest[:12]


def bin_dir(venv: Path) -> Path:
    """The venv's scripts folder."""
    return venv / ("Scripts" if os.name == "nt" else "bin")


class BuildError(RuntimeError):
    """pip or venv failed; the message carries the tail of its output."""


def run_logged(args: Sequence[str], *, timeout: float, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; raise BuildError with the output tail when it fails."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})})
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise BuildError(f"`{' '.join(map(str, args))}` exited {proc.returncode}:\n{tail}")
    return proc


def cached_venv(name: str, key: str, install: Sequence[str], *, timeout: float = 900) -> tuple[Path, float | None]:
    """The venv ``<cache>/<name>-<key>``, built with ``pip install <install...>`` if it is not there yet.

    Returns (venv path, seconds spent building or None when it was reused).
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{name}-{python_tag()}-{key}"
    with open(root / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building the same venv
        if (venv / STAMP).exists() and (bin_dir(venv) / "python").exists():
            return venv, None
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        try:
            new_venv(venv, install, timeout=timeout)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / STAMP).write_text(" ".join(install) + "\n")
        return venv, time.monotonic() - started


def new_venv(venv: Path, install: Sequence[str], *, timeout: float = 900) -> Path:
    """A brand-new venv at `venv` with ``pip install <install...>`` done (no caching)."""
    run_logged([sys.executable, "-m", "venv", str(venv)], timeout=120)
    run_logged([str(bin_dir(venv) / "python"), "-m", "pip", "install", *PIP_QUIET, *install], timeout=timeout)
    return venv
