"""Virtualenvs that tests build once and reuse: under ``~/.cache/destination-iterable/``, keyed by what is in them.

A test that needs packages the project venv does not have (PyAirbyte, source-faker) or a clean install of
this package builds a venv here the first time (cold, ~1 min) and reuses it afterwards (warm). The name of a
venv carries a hash of everything that goes into it (pinned requirements, Python version), so changing a pin
builds a new one instead of reusing a stale one. Building is serialised with a lock file, and a venv counts
only once its ``.complete`` stamp exists, so an interrupted build is thrown away and redone.

A test that needs a brand-new venv per run (a clean ``pip install`` on each supported Python) keeps a
*wheelhouse* here instead: the wheels of this package's dependencies and build requirements, downloaded once per
Python version and requirement set (``cached_wheelhouse``), so that the venv itself is new every time but installs
with ``--no-index`` from local files. (pip's own HTTP cache does not help here: the registry mirror answers
without cache headers, so pip stores nothing and every install downloads everything again.)

The helpers shared by the install tests live here too: ``copy_source_tree``, ``project_requirements``,
``build_requirements`` and ``run_console_script``.

``DESTINATION_ITERABLE_CACHE_DIR`` moves the cache (default ``$XDG_CACHE_HOME/destination-iterable`` or
``~/.cache/destination-iterable``).
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from integration_tests.harness import RunResult, parse_output

REPO_ROOT = Path(__file__).resolve().parent.parent
STAMP = ".complete"
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "--quiet"]
# Never part of a source tree that gets installed: VCS, venvs, build output and caches.
SOURCE_TREE_IGNORE = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                      ".pytest_cache", ".ruff_cache", ".tmp", "secrets")


def cache_root() -> Path:
    """Where cached venvs live."""
    explicit = os.environ.get("DESTINATION_ITERABLE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "destination-iterable"


def python_tag(python: str | os.PathLike[str] | None = None) -> str:
    """e.g. ``py3.11`` (of this interpreter, or of `python`): a venv is only reused by the same minor version."""
    if python is None:
        return f"py{sys.version_info.major}.{sys.version_info.minor}"
    proc = run_logged([str(python), "-c", "import sys; print('py%d.%d' % sys.version_info[:2])"], timeout=60)
    return proc.stdout.strip()


def env_key(*parts: str, tag: str | None = None) -> str:
    """A short stable hash of the strings that define a venv's content (and of the Python minor version)."""
    digest = hashlib.sha256("\n".join((tag or python_tag(), *parts)).encode()).hexdigest()
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


def _build_once(target: Path, build: Callable[[Path], object], *, ready: Callable[[Path], bool] | None = None,
                stamp: str = "") -> float | None:
    """Build `target` with ``build(target)`` unless a complete one is there; seconds spent, or None if reused."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run (or thread) may be building the same thing
        if (target / STAMP).exists() and (ready is None or ready(target)):
            return None
        started = time.monotonic()
        shutil.rmtree(target, ignore_errors=True)
        try:
            build(target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        (target / STAMP).write_text(stamp + "\n")
        return time.monotonic() - started


def cached_venv(name: str, key: str, install: Sequence[str], *, timeout: float = 900) -> tuple[Path, float | None]:
    """The venv ``<cache>/<name>-<key>``, built with ``pip install <install...>`` if it is not there yet.

    Returns (venv path, seconds spent building or None when it was reused).
    """
    venv = cache_root() / f"{name}-{python_tag()}-{key}"
    built = _build_once(venv, lambda target: new_venv(target, install, timeout=timeout),
                        ready=lambda target: (bin_dir(target) / "python").exists(), stamp=" ".join(install))
    return venv, built


def cached_wheelhouse(name: str, key: str, download: Sequence[str], *, python: str | os.PathLike[str],
                      tag: str, timeout: float = 900) -> tuple[Path, float | None]:
    """The folder ``<cache>/<name>-<tag>-<key>`` of wheels, filled once by ``<python> -m pip download <download...>``.

    `python` must be (a venv of) the interpreter the wheels are for, so that pip picks that version's wheels;
    `tag` (``py3.x``) and `key` name what is in it. Returns (folder, seconds spent downloading or None if reused).
    """
    folder = cache_root() / f"{name}-{tag}-{key}"

    def build(target: Path) -> None:
        run_logged([str(python), "-m", "pip", "download", *PIP_QUIET, "--dest", str(target), *download],
                   timeout=timeout)

    return folder, _build_once(folder, build, stamp=" ".join(download))


def new_venv(venv: Path, install: Sequence[str], *, timeout: float = 900,
             python: str | os.PathLike[str] | None = None) -> Path:
    """A brand-new venv at `venv` (of `python`, default this interpreter) with ``pip install <install...>`` done.

    No caching; with an empty `install` the venv has only what ``python -m venv`` puts in it.
    """
    run_logged([str(python or sys.executable), "-m", "venv", str(venv)], timeout=120)
    if install:
        run_logged([str(bin_dir(venv) / "python"), "-m", "pip", "install", *PIP_QUIET, *install], timeout=timeout)
    return venv


# ------------------------------------------------------------------------------------- shared by the install tests
def copy_source_tree(target: Path, source: Path = REPO_ROOT) -> Path:
    """A copy of the source tree at `target`, without VCS data, venvs, build output and caches.

    ``pip install`` builds in the folder it is given (setuptools writes ``build/`` and ``*.egg-info`` there), so
    the install tests build from a copy: nothing is left in the repository, and parallel builds do not collide.
    """
    ignore = shutil.ignore_patterns(*SOURCE_TREE_IGNORE)

    def skip(folder: str, names: list[str]) -> set[str]:
        skipped = set(ignore(folder, names))
        if Path(folder).resolve() == (source / "bench").resolve():
            skipped.add("out")  # benchmark results (git-ignored)
        return skipped

    shutil.copytree(source, target, ignore=skip, symlinks=True)
    return target


def project_requirements() -> list[str]:
    """setup.py's MAIN_REQUIREMENTS, read without running setup.py (part of the cache keys)."""
    text = (REPO_ROOT / "setup.py").read_text()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MAIN_REQUIREMENTS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return [text]


def build_requirements() -> list[str]:
    """pyproject.toml's ``[build-system] requires`` (what ``pip install .`` puts in its isolated build env)."""
    path = REPO_ROOT / "pyproject.toml"
    if not path.exists():
        return ["setuptools", "wheel"]  # what pip assumes for a project without pyproject.toml
    text = path.read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: read the one list this needs
        match = re.search(r"^requires\s*=\s*(\[[^\]]*\])", text, re.MULTILINE)
        return list(ast.literal_eval(match.group(1))) if match else ["setuptools", "wheel"]
    return list(tomllib.loads(text).get("build-system", {}).get("requires", ["setuptools", "wheel"]))


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would let a venv's program see another Python's packages."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def run_console_script(script: Path, args: Sequence[str], cwd: Path, stdin: bytes = b"",
                       timeout: float = 120) -> RunResult:
    """Run an installed program (a venv's console script) outside the repository; parse its protocol output."""
    proc = subprocess.run([str(script), *args], input=stdin, capture_output=True, timeout=timeout, cwd=cwd,
                          env=clean_env())
    return parse_output(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
