"""``pip install .`` on every Python that setup.py claims (``python_requires=">=3.10,<3.14"``), then spec and write.

For each of CPython 3.10, 3.11, 3.12 and 3.13 that this machine has, the module fixture creates a brand-new venv
in a temporary folder with that interpreter's own ``venv`` and pip, and installs a copy of the source tree into
it, non-editable (a PEP 517 wheel build through pyproject.toml's ``[build-system]``). The installs run in
parallel. Then, per version:

* the installed distribution is a wheel install (a ``.dist-info`` with a ``WHEEL`` file, not the ``.egg-info`` of
  the legacy ``setup.py install``) that holds every file of ``destination_iterable/`` (every subpackage, spec.json,
  members/data/tlds.txt) and nothing from the rest of the repository;
* ``destination-iterable spec`` prints the shipped spec, from the installed package, not the repository;
* ``destination-iterable write`` sends three members to a sandbox list and echoes the STATE.

Interpreters: ``DESTINATION_ITERABLE_PYTHONS`` (paths separated by ``os.pathsep``) first, then every ``python3.x``
on PATH, then ``$PYENV_ROOT``/``~/.pyenv`` ``versions/3.x.*/bin/python3.x``; each is asked for its version (a pyenv
shim for a version that is not active fails and is passed over). A version with no working interpreter is skipped,
with every candidate tried and why it did not do.

Speed (2 cores): pip's HTTP cache stores nothing here (the registry mirror sends no cache headers), so each
version's dependencies (~80 wheels, ~60 MB) are downloaded once into a wheelhouse under
``~/.cache/destination-iterable/`` keyed by Python version, setup.py's requirements and the build requirements
(integration_tests/cached_env.py). Every run still makes new venvs and resolves and installs from those wheels
(``--no-index --no-compile``). Measured here: warm ~75 s for the four installs, ~2 min for the module; cold (first
run, or after a requirement change; the downloads overlap) ~85 s and ~2.2 min. ``DESTINATION_ITERABLE_FRESH_INSTALL=1``
installs straight from the package index instead, exactly ``pip install .``, with no cache at all.

integration_tests/test_packaging.py covers the Docker build context and the Dockerfile's install command on the
Python running the tests; this module covers the source tree on each supported Python.
"""

from __future__ import annotations

import ast
import functools
import glob
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from integration_tests.cached_env import (
    BuildError,
    bin_dir,
    build_requirements,
    cached_wheelhouse,
    clean_env,
    copy_source_tree,
    env_key,
    new_venv,
    project_requirements,
    run_console_script,
    run_logged,
)
from integration_tests.harness import make_catalog, make_config, record, stream_state, to_lines

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "destination_iterable"
DISTRIBUTION = "airbyte-destination-iterable"
CONSOLE_SCRIPT = "destination-iterable"


def python_requires() -> str:
    """setup.py's ``python_requires``, read without running setup.py."""
    for node in ast.walk(ast.parse((REPO_ROOT / "setup.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == "python_requires":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no python_requires")


# Every 3.x minor version that setup.py claims (3.10-3.13 for ">=3.10,<3.14").
VERSIONS = tuple(f"3.{minor}" for minor in range(40) if f"3.{minor}" in SpecifierSet(python_requires()))
EXTRA_PYTHONS_ENV = "DESTINATION_ITERABLE_PYTHONS"
FRESH_ENV = "DESTINATION_ITERABLE_FRESH_INSTALL"
INSTALL_TIMEOUT = 600
PROBE = "import sys, venv, ensurepip; print('%s %d.%d' % (sys.implementation.name, *sys.version_info[:2]))"

# Lists the installed distribution without importing the package (so it works even if the package is broken).
INSPECT = """
import json, sys, importlib.metadata as md
dist = md.distribution(sys.argv[1])
print(json.dumps({"files": [f.as_posix() for f in dist.files or []], "wheel": dist.read_text("WHEEL"),
                  "site": str(dist.locate_file("")), "requires_python": dist.metadata["Requires-Python"]}))
"""


# ----------------------------------------------------------------------------------------------- interpreters
def candidates(version: str) -> list[str]:
    """Interpreter paths that may be CPython `version`, in order of preference, without duplicates."""
    found = [p for p in os.environ.get(EXTRA_PYTHONS_ENV, "").split(os.pathsep) if p.strip()]
    name = f"python{version}"
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(folder or ".") / name
        if path.is_file() and os.access(path, os.X_OK):
            found.append(str(path))
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    for root in dict.fromkeys(r for r in roots if r):
        pattern = os.path.join(root, "versions", f"{version}.*", "bin", name)
        newest_first = sorted(glob.glob(pattern), key=_patch_level, reverse=True)
        found.extend(newest_first)
    return list(dict.fromkeys(found))


def _patch_level(path: str) -> tuple[int, ...]:
    release = Path(path).parent.parent.name  # .../versions/3.12.1/bin/python3.12
    return tuple(int(part) if part.isdigit() else -1 for part in release.split("."))


@functools.cache
def probe(python: str) -> tuple[str | None, str]:
    """("cpython 3.x", "") for a working interpreter with venv and ensurepip, else (None, why not)."""
    try:
        proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=60, env=clean_env())
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        return None, f"exit {proc.returncode}: {lines[0] if lines else ''}"
    return proc.stdout.strip(), ""


def find_python(version: str) -> tuple[str | None, list[str]]:
    """(first interpreter that is CPython `version`, or None; why each earlier candidate was passed over)."""
    passed_over = []
    for python in candidates(version):
        identity, why = probe(python)
        if identity == f"cpython {version}":
            return python, passed_over
        passed_over.append(f"{python} ({why or identity})")
    return None, passed_over


# ----------------------------------------------------------------------------------------------- installs
@dataclass
class Install:
    """One version's venv, or why there is none."""

    version: str
    python: str | None = None
    venv: Path | None = None
    seconds: float = 0.0
    downloaded: float | None = None  # seconds spent filling the wheelhouse, None when it was reused
    skip: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def script(self) -> Path:
        assert self.venv is not None
        return bin_dir(self.venv) / CONSOLE_SCRIPT

    @property
    def interpreter(self) -> Path:
        assert self.venv is not None
        return bin_dir(self.venv) / "python"


def install(version: str, python: str, workdir: Path) -> Install:
    """A new venv of `python` in `workdir` with a copy of the source tree pip-installed into it."""
    result = Install(version, python=python, venv=workdir / "venv")
    started = time.monotonic()
    try:
        source = copy_source_tree(workdir / "src")
        new_venv(result.venv, [], python=python)  # the interpreter's own venv + bundled pip
        venv_python = str(result.interpreter)
        if os.environ.get(FRESH_ENV) == "1":
            args = [str(source)]  # exactly `pip install .`, from the package index
        else:
            key = env_key(*project_requirements(), *build_requirements(), tag=f"py{version}")
            wheels, result.downloaded = cached_wheelhouse(
                "wheelhouse", key, [str(source), *build_requirements()], python=venv_python, tag=f"py{version}",
                timeout=INSTALL_TIMEOUT)
            args = ["--no-index", "--find-links", str(wheels), "--no-compile", str(source)]
        run_logged([venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args],
                   timeout=INSTALL_TIMEOUT, env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"))
    except (BuildError, OSError, subprocess.SubprocessError) as exc:
        result.error = str(exc)
    result.seconds = time.monotonic() - started
    return result


def _versions_requested(request: pytest.FixtureRequest) -> list[str]:
    """The versions that the selected tests of this module ask for (all of them when run as a whole)."""
    wanted = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec and "version" in callspec.params:
            wanted.add(callspec.params["version"])
    return [v for v in VERSIONS if v in wanted] or list(VERSIONS)


def _say(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write("\n")
            reporter.write_line(f"[python-versions] {line}")


@pytest.fixture(scope="module")
def installs(request: pytest.FixtureRequest) -> Iterator[dict[str, Install]]:
    """{version: Install} for the requested versions, installed in parallel into new venvs (removed afterwards)."""
    started = time.monotonic()
    results: dict[str, Install] = {}
    jobs: dict[str, str] = {}
    for version in _versions_requested(request):
        python, passed_over = find_python(version)
        if python is None:
            tried = "; ".join(passed_over) or f"no python{version} on PATH or under ~/.pyenv/versions"
            results[version] = Install(version, skip=f"Python {version} not found: {tried}")
        else:
            jobs[version] = python
    with tempfile.TemporaryDirectory(prefix="destination-iterable-pyversions-") as tmp:
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            futures = {v: pool.submit(install, v, python, Path(tmp) / f"py{v}") for v, python in jobs.items()}
            results.update({v: future.result() for v, future in futures.items()})
        total = time.monotonic() - started
        each = ", ".join(
            f"{v} {r.seconds:.0f} s" + (f" (downloads {r.downloaded:.0f} s)" if r.downloaded else "")
            + (" FAILED" if r.error else "")
            for v, r in results.items() if r.skip is None)
        skipped = [v for v, r in results.items() if r.skip]
        _say(request, f"pip install into new venvs: {each or 'none'}; {total:.0f} s in all"
                      + (f"; not found: {', '.join(skipped)}" if skipped else ""))
        yield results


def installed(installs: dict[str, Install], version: str) -> Install:
    """The version's install, skipping the test when the interpreter is absent and failing when pip failed."""
    result = installs[version]
    if result.skip:
        pytest.skip(result.skip)
    if result.error:
        pytest.fail(f"pip install on Python {version} ({result.python}) failed:\n{result.error}", pytrace=False)
    return result


def shipped_files() -> set[str]:
    """Every file of the package in the source tree, as a path relative to site-packages."""
    files = set()
    for path in (REPO_ROOT / PACKAGE).rglob("*"):
        rel = path.relative_to(REPO_ROOT)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc" \
                and not any(part.startswith(".") for part in rel.parts):
            files.add(rel.as_posix())
    return files


# ----------------------------------------------------------------------------------------------- tests
parametrize_versions = pytest.mark.parametrize("version", VERSIONS, ids=[f"py{v}" for v in VERSIONS])


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first test waits for the parallel installs (cold: downloads first)
@parametrize_versions
def test_installs_a_wheel_with_every_subpackage_and_data_file(installs, version, tmp_path):
    result = installed(installs, version)
    proc = run_logged([str(result.interpreter), "-c", INSPECT, DISTRIBUTION], timeout=60, cwd=tmp_path,
                      env=clean_env())
    dist = json.loads(proc.stdout)
    files = set(dist["files"])
    metadata_dirs = {f.split("/", 1)[0] for f in files if f.endswith("/METADATA") or f.endswith("/PKG-INFO")}
    assert len(metadata_dirs) == 1 and next(iter(metadata_dirs)).endswith(".dist-info"), \
        f"not a wheel install: {metadata_dirs}"
    assert dist["wheel"] and "Wheel-Version" in dist["wheel"], "no WHEEL file: installed by legacy setup.py install"
    assert dist["requires_python"] == python_requires()
    site = Path(dist["site"])
    assert not list(site.glob("*destination_iterable*.egg-info")), "legacy setup.py install metadata in the venv"
    assert not list(site.glob("*.egg-link")) and not list(site.glob("__editable__*")), "an editable install"

    for required in (f"{PACKAGE}/spec.json", f"{PACKAGE}/members/data/tlds.txt", f"{PACKAGE}/__init__.py",
                     *(f"{PACKAGE}/{sub}/__init__.py" for sub in ("airbyte", "iterable", "members", "sync"))):
        assert required in files, f"{required} is not installed on Python {version}"
    for sub in sorted(p.parent.name for p in (REPO_ROOT / PACKAGE).glob("*/__init__.py")):  # e.g. storage, when added
        assert f"{PACKAGE}/{sub}/__init__.py" in files, f"subpackage {sub} is not installed on Python {version}"
    missing = shipped_files() - files
    assert not missing, f"in the source tree but not installed: {sorted(missing)}"
    top_level = {f.split("/", 1)[0] for f in files} - {PACKAGE, *metadata_dirs, ".."}
    assert not top_level, f"installed besides the package: {sorted(top_level)}"
    assert any(f.endswith(f"bin/{CONSOLE_SCRIPT}") for f in files), "console script not installed"


@pytest.mark.slow
@pytest.mark.timeout(900)
@parametrize_versions
def test_spec_from_the_installed_package(installs, version, tmp_path):
    result = installed(installs, version)
    where = run_logged([str(result.interpreter), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
                       timeout=120, cwd=tmp_path, env=clean_env())
    imported = Path(where.stdout.strip()).resolve()
    assert imported.is_relative_to(result.venv.resolve()), f"{PACKAGE} imported from {imported}, not the venv"

    spec = run_console_script(result.script, ["spec"], tmp_path)
    assert spec.returncode == 0, spec.stderr[-3000:]
    [message] = [m["spec"] for m in spec.messages if m.get("type") == "SPEC"]
    shipped = json.loads((REPO_ROOT / PACKAGE / "spec.json").read_text())
    assert message["connectionSpecification"] == shipped["connectionSpecification"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@parametrize_versions
def test_write_to_a_sandbox_list(installs, version, tmp_path, sandbox):
    result = installed(installs, version)
    (tmp_path / "config.json").write_text(json.dumps(make_config(sandbox)))
    (tmp_path / "catalog.json").write_text(json.dumps(make_catalog("members")))
    tag = version.replace(".", "")
    emails = {f"py{tag}-{n}@example.com" for n in range(3)}
    messages = [*(record("members", {"email": email}) for email in sorted(emails)),
                stream_state("members", 3, state_id=int(tag))]

    write = run_console_script(result.script, ["write", "--config", "config.json", "--catalog", "catalog.json"],
                               tmp_path, stdin=to_lines(messages))
    assert write.returncode == 0, write.stdout[-3000:] + write.stderr[-3000:]
    assert [s["state"].get("id") for s in write.states] == [int(tag)], write.stdout[-3000:]
    [members_list] = sandbox.client.list_by_name("members")
    assert sandbox.client.member_emails(members_list["id"]) == emails
