"""The image, tested without a Docker engine: the Dockerfile's paths and conventions, and its install step.

``test_clean_install_*`` builds the Docker build context the way Docker would (the Dockerfile's COPY sources,
filtered by .dockerignore) in a temporary folder and installs it with the Dockerfile's own command,
``pip install .``, into a fresh venv with no access to this repository. Then the installed console script must
print the spec, pass ``check`` and write a member to a sandbox list (which needs the package data files).

To keep CI fast, the venv with the dependencies is cached (integration_tests/cached_env.py) under a key made
of setup.py's install requirements: the first run is exactly ``pip install .`` in a new venv; later runs
reinstall this package from the fresh context (``pip install --no-deps --force-reinstall .``) and
``pip check`` that the cached dependencies still satisfy it. A change to the requirements builds a new venv.
``DESTINATION_ITERABLE_FRESH_INSTALL=1`` uses a brand-new, uncached venv instead (what the first run does).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from integration_tests.cached_env import (
    bin_dir,
    cached_venv,
    env_key,
    new_venv,
    project_requirements,
    run_console_script,
    run_logged,
)
from integration_tests.harness import make_catalog, record, stream_state, to_lines

REPO_ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = "destination-iterable"


# ----------------------------------------------------------------------------------------------- parsing
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def copy_sources() -> list[str]:
    """Every source path of every COPY (without --from) in the Dockerfile."""
    sources: list[str] = []
    for instruction, args in dockerfile_instructions():
        if instruction != "COPY":
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        assert "--from" not in args, "COPY --from is not expected in this Dockerfile"
        sources.extend(parts[:-1])
    return sources


def dockerignore_rules() -> list[tuple[bool, str]]:
    """(negated, pattern) in file order."""
    rules = []
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line.lstrip("!").strip().strip("/")))
    return rules


def _matches(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        tail = pattern[3:]
        parts = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[i:]), tail) for i in range(len(parts)))
    # Docker matches a pattern against the path and against each of its parent folders.
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def ignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` (relative, '/'-separated) out of the build context (last rule wins)."""
    verdict = False
    for negated, pattern in dockerignore_rules():
        if _matches(pattern, path):
            verdict = not negated
    return verdict


def build_context(target: Path) -> Path:
    """Copy what the Dockerfile's COPY lines would see into `target`."""
    for source in copy_sources():
        origin = REPO_ROOT / source
        files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(REPO_ROOT).as_posix()
            if ignored(rel):
                continue
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    return target


# ----------------------------------------------------------------------------------------------- Dockerfile
def test_every_path_the_dockerfile_copies_exists_and_reaches_the_build_context():
    sources = copy_sources()
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert not ignored(source), f".dockerignore excludes {source}, which the Dockerfile copies"
    # What `pip install .` needs is all copied: setup.py reads destination_iterable/__init__.py and README.md, and
    # pyproject.toml's [build-system] makes pip build a wheel (PEP 517) as it does from the repository.
    for needed in ("setup.py", "pyproject.toml", "README.md", "destination_iterable"):
        assert needed in sources, needed
    assert not ignored("destination_iterable/spec.json") and not ignored("destination_iterable/members/data/tlds.txt")
    assert ignored("destination_iterable/__pycache__/x.pyc") and ignored(".venv/bin/python")


def test_dockerfile_follows_airbyte_python_connector_conventions():
    instructions = dockerfile_instructions()
    metadata = yaml.safe_load((REPO_ROOT / "metadata.yaml").read_text())["data"]
    froms = [args for name, args in instructions if name == "FROM"]
    assert froms == [metadata["connectorBuildOptions"]["baseImage"]], "FROM must be the pinned base image"
    assert "@sha256:" in froms[0]

    env = {}
    for name, args in instructions:
        if name == "ENV":
            key, _, value = args.partition("=")
            env[key.strip()] = value.strip().strip('"')
    assert env.get("AIRBYTE_ENTRYPOINT") == CONSOLE_SCRIPT
    entrypoints = [json.loads(args) for name, args in instructions if name == "ENTRYPOINT"]
    assert entrypoints == [[CONSOLE_SCRIPT]]

    names = [name for name, _ in instructions]
    last_user = len(names) - 1 - names[::-1].index("USER") if "USER" in names else -1
    assert last_user >= 0 and instructions[last_user][1] == "airbyte", "the image must run as the non-root airbyte user"
    assert "RUN" not in names[last_user:], "everything after USER airbyte runs as airbyte; install before it"

    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert "pip install --no-cache-dir ." in runs
    setup_text = (REPO_ROOT / "setup.py").read_text()
    assert f'"{CONSOLE_SCRIPT}=destination_iterable.run:run"' in setup_text

    labels = " ".join(args for name, args in instructions if name == "LABEL")
    assert f"io.airbyte.name={metadata['dockerRepository']}" in labels
    assert f"io.airbyte.version={metadata['dockerImageTag']}" in labels


# ----------------------------------------------------------------------------------------------- clean install
@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The console script of a clean install of the build context (see the module docstring)."""
    context = build_context(tmp_path_factory.mktemp("docker-context"))
    install = ["--no-cache-dir", str(context)]  # the Dockerfile's `pip install --no-cache-dir .`
    if os.environ.get("DESTINATION_ITERABLE_FRESH_INSTALL") == "1":
        venv, built = new_venv(tmp_path_factory.mktemp("fresh") / "venv", install), 0.0
    else:
        venv, built = cached_venv("packaging", env_key(*project_requirements()), install)
    python = str(bin_dir(venv) / "python")
    if built is None:  # reused: replace the package by this context's build, keep the dependencies
        run_logged([python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(context)],
                   timeout=300)
    run_logged([python, "-m", "pip", "check"], timeout=120)
    script = bin_dir(venv) / CONSOLE_SCRIPT
    assert script.exists(), f"`pip install .` did not install the {CONSOLE_SCRIPT} console script"
    return script


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cold cache installs airbyte-cdk first (~1.5 min here)
def test_clean_install_prints_the_spec(installed, tmp_path):
    result = run_console_script(installed, ["spec"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [spec] = [m["spec"] for m in result.messages if m.get("type") == "SPEC"]
    shipped = json.loads((REPO_ROOT / "destination_iterable" / "spec.json").read_text())
    assert spec["connectionSpecification"] == shipped["connectionSpecification"]
    assert spec["supported_destination_sync_modes"] == shipped["supported_destination_sync_modes"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cold cache installs airbyte-cdk first (~1.5 min here)
def test_clean_install_checks_and_writes(installed, tmp_path, sandbox):
    config = {"api_key": sandbox.api_key, "api_base_url": sandbox.url, "privacy_consent": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(make_catalog("members")))

    check = run_console_script(installed, ["check", "--config", "config.json"], tmp_path)
    assert check.connection_status and check.connection_status["status"] == "SUCCEEDED", check.stdout[-2000:]

    messages = [record("members", {"email": " Ada@Example.COM "}), record("members", {"email": "not-an-email"}),
                stream_state("members", 1, state_id=7)]
    write = run_console_script(installed, ["write", "--config", "config.json", "--catalog", "catalog.json"], tmp_path,
                               stdin=to_lines(messages))
    assert write.returncode == 0, write.stdout[-3000:] + write.stderr[-3000:]
    assert [s["state"].get("id") for s in write.states] == [7]
    [members_list] = sandbox.client.list_by_name("members")
    assert sandbox.client.member_emails(members_list["id"]) == {"ada@example.com"}
