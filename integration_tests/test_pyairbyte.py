"""PyAirbyte end to end: source-faker ``users`` -> PyAirbyte -> destination-iterable (this repo) -> sandbox list.

PyAirbyte (``airbyte``) and ``airbyte-source-faker`` come from the package registry, each into its own venv
(their dependencies conflict), built once under ``~/.cache/destination-iterable/`` and keyed by the pinned
versions (integration_tests/cached_env.py): cold ~2 min, warm only the job itself. PyAirbyte runs offline
(``AIRBYTE_OFFLINE_MODE=1``, ``DO_NOT_TRACK=1``, ``AIRBYTE_NO_UV=1``) with ``local_executable`` connectors.

The destination executable PyAirbyte starts is a thin recorder in front of the real ``destination-iterable``:
it keeps the catalog and the stdin of ``write`` so the test can prove PyAirbyte sent ``append_dedup`` and
records with ``_airbyte_*`` fields inside ``data``, and that the connector handled both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from destination_iterable.members.identity import normalize_email
from integration_tests.cached_env import bin_dir, cached_venv, env_key

REPO_ROOT = Path(__file__).resolve().parent.parent
PYAIRBYTE_PINS = ("airbyte==0.71.3",)
SOURCE_FAKER_PINS = ("airbyte-source-faker==7.2.1",)
USERS = 60
LIST_TEMPLATE = "PyAirbyte {stream}"
OFFLINE_ENV = {"AIRBYTE_OFFLINE_MODE": "1", "DO_NOT_TRACK": "1", "AIRBYTE_NO_UV": "1"}
AIRBYTE_FIELDS = {"_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta"}

RECORDER = """#!{python}
# Records what PyAirbyte hands the destination (catalog + stdin of `write`), then runs the real one.
import os, shutil, subprocess, sys
real = {real!r}
record = {record!r}
args = sys.argv[1:]
if not args or args[0] != "write":
    os.execv(real[0], real + args)
run = len([name for name in os.listdir(record) if name.startswith("catalog-")])
shutil.copy(args[args.index("--catalog") + 1], os.path.join(record, f"catalog-{{run}}.json"))
child = subprocess.Popen(real + args, stdin=subprocess.PIPE)
with open(os.path.join(record, f"input-{{run}}.jsonl"), "wb") as tape:
    for chunk in iter(lambda: sys.stdin.buffer.read1(65536), b""):
        tape.write(chunk)
        child.stdin.write(chunk)
child.stdin.close()
sys.exit(child.wait())
"""


def _say(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write("\n")
            reporter.write_line(f"[pyairbyte] {line}")


@pytest.fixture(scope="module")
def envs(request: pytest.FixtureRequest) -> dict[str, Path]:
    """The PyAirbyte and source-faker venvs, built in parallel on first use and reused afterwards."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        pyairbyte = pool.submit(cached_venv, "pyairbyte", env_key(*PYAIRBYTE_PINS), PYAIRBYTE_PINS)
        faker = pool.submit(cached_venv, "source-faker", env_key(*SOURCE_FAKER_PINS), SOURCE_FAKER_PINS)
        (pyairbyte_env, built_a), (faker_env, built_b) = pyairbyte.result(), faker.result()
    if built_a is not None or built_b is not None:
        _say(request, f"installed {' '.join(PYAIRBYTE_PINS + SOURCE_FAKER_PINS)} in "
                      f"{time.monotonic() - started:.0f} s (cached for later runs)")
    return {"pyairbyte": pyairbyte_env, "faker": faker_env}


def _real_destination() -> list[str]:
    """The console script of the environment running the tests, else `python main.py`."""
    script = Path(sys.executable).parent / "destination-iterable"
    if script.exists():
        return [str(script)]
    return [sys.executable, str(REPO_ROOT / "main.py")]


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(executable for PyAirbyte, folder where it records the catalog and stdin)."""
    record = tmp_path / "recorded"
    record.mkdir()
    exe = tmp_path / "bin" / "destination-iterable"
    exe.parent.mkdir()
    exe.write_text(RECORDER.format(python=sys.executable, real=_real_destination(), record=str(record)))
    exe.chmod(0o755)
    yield exe, record


def _run_job(envs: dict[str, Path], tmp_path: Path, exe: Path, config: dict[str, Any],
             direct_config: dict[str, Any]) -> dict[str, Any]:
    job = {"faker": str(bin_dir(envs["faker"]) / "source-faker"), "destination": str(exe), "count": USERS,
           "cache_dir": str(tmp_path / "cache"), "config": config, "direct_config": direct_config}
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {**os.environ, **OFFLINE_ENV, "AIRBYTE_LOGGING_ROOT": str(tmp_path / "logs"),
           "AIRBYTE_TEMP_DIR": str(tmp_path / "tmp"), "AIRBYTE_CACHE_ROOT": str(tmp_path / "cache"),
           "AIRBYTE_INSTALL_DIR": str(tmp_path / "install")}
    (tmp_path / "tmp").mkdir()
    env.pop("VIRTUAL_ENV", None)
    python = bin_dir(envs["pyairbyte"]) / "python"
    proc = subprocess.run([str(python), str(REPO_ROOT / "integration_tests" / "pyairbyte_job.py"),
                           str(tmp_path / "job.json"), str(tmp_path / "result.json")],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    if proc.returncode != 0:
        logs = "\n".join(p.read_text()[-3000:] for p in (tmp_path / "logs").rglob("*.log")) \
            if (tmp_path / "logs").exists() else ""
        pytest.fail(f"PyAirbyte job failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n"
                    f"{logs}")
    return json.loads((tmp_path / "result.json").read_text())


def _recorded(record: Path, run: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    catalog = json.loads((record / f"catalog-{run}.json").read_text())
    lines = (record / f"input-{run}.jsonl").read_text().splitlines()
    return catalog, [json.loads(line) for line in lines if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cold cache installs PyAirbyte and source-faker first (~1.5 min here)
def test_pyairbyte_writes_faker_users_into_a_list(envs, recorder, sandbox, tmp_path):
    exe, record = recorder
    config = {"api_key": sandbox.api_key, "api_base_url": sandbox.url, "privacy_consent": True,
              "list_name_template": LIST_TEMPLATE, "data_fields": ["*"]}
    direct_config = {**config, "list_name_template": "PyAirbyte direct {stream}", "data_fields": []}

    result = _run_job(envs, tmp_path, exe, config, direct_config)

    # Run 0, from the cache: PyAirbyte sent append_dedup for a stream with a primary key ...
    catalog, messages = _recorded(record, 0)
    [users] = catalog["streams"]
    assert users["stream"]["name"] == "users"
    assert users["destination_sync_mode"] == "append_dedup"
    assert users["primary_key"] == [["id"]]
    # ... and cached records with PyAirbyte's own fields inside `data`.
    records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
    assert len(records) == USERS == result["records_read"]
    assert all(AIRBYTE_FIELDS <= set(data) for data in records)

    # The list holds exactly the valid emails of the records (checked the way the connector checks them).
    expected = {email for email, _ in map(normalize_email, (r.get("email") for r in records)) if email}
    assert len(expected) >= USERS * 0.9
    [iterable_list] = sandbox.client.list_by_name("PyAirbyte users")
    assert iterable_list["listType"] == "Standard"
    assert sandbox.client.member_emails(iterable_list["id"]) == expected

    # data_fields ["*"]: profile fields arrive, PyAirbyte's `_airbyte_*` fields never do.
    profile = sandbox.client.user(email=sorted(expected)[0])
    assert profile is not None
    assert {"name", "age", "occupation"} <= set(profile["dataFields"])
    assert not [key for key in profile["dataFields"] if key.startswith("_airbyte")]

    # The destination echoed the state with its record count; PyAirbyte saw every record written.
    assert result["states"], "the destination echoed no STATE"
    assert result["states"][-1]["destinationStats"]["recordCount"] == USERS
    assert result["processed_records"] == USERS

    # Run 1, `write(source, cache=False)`: the source's messages pass straight through (no `_airbyte_*` fields,
    # the source's own TRACE messages included); same members, membership only.
    catalog, messages = _recorded(record, 1)
    assert catalog["streams"][0]["destination_sync_mode"] == "append_dedup"
    direct_records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
    assert len(direct_records) == USERS and not any(AIRBYTE_FIELDS & set(data) for data in direct_records)
    [direct_list] = sandbox.client.list_by_name("PyAirbyte direct users")
    assert sandbox.client.member_emails(direct_list["id"]) == expected
    assert result["direct_states"] and result["direct_states"][-1]["destinationStats"]["recordCount"] == USERS


def test_readme_shows_the_pyairbyte_lines_this_test_runs():
    """The README's PyAirbyte snippet uses the calls the job above makes."""
    readme = (REPO_ROOT / "README.md").read_text()
    for needle in ('ab.get_source("source-faker"', 'ab.get_destination(', "local_executable=",
                   "destination.write(", "AIRBYTE_OFFLINE_MODE"):
        assert needle in readme, needle


def test_cached_env_names_carry_the_pins():
    """Changing a pin must build a new venv instead of reusing a stale one."""
    assert env_key(*PYAIRBYTE_PINS) != env_key("airbyte==0.71.2")
    assert env_key(*PYAIRBYTE_PINS) == env_key(*PYAIRBYTE_PINS)
