"""The real `write` CLI runs without importing airbyte-cdk and still prints what the CDK printed.

Every run here is `python -X importtime main.py write ...` against the sandbox; the import log on stderr
proves that no `airbyte_cdk` module was imported, on success and on every failure path. The LOG and TRACE
lines are compared with what the CDK itself builds for the same failure (the CDK is imported by the test
process only), and must never contain the API key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType, StreamDescriptor
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from integration_tests.harness import (
    REPO_ROOT,
    RunResult,
    make_catalog,
    make_config,
    parse_output,
    record,
    stream_state,
    stream_status,
    to_lines,
)

WRONG_KEY = "wrong-light-key-5a4b3c2d1e0f9a8b7c"
LEVELS = {"FATAL", "ERROR", "WARN", "INFO", "DEBUG"}
INJECT = textwrap.dedent("""
    import logging, sys
    import destination_iterable.writer as writer

    def broken_write(config, specs, chunks, term=None):
        logging.getLogger("airbyte").warning("about to fail with key %s", config.api_key)
        logging.getLogger("urllib3").warning("library warning with key " + config.api_key)
        logging.getLogger("urllib3").info("library info: not shown, the root logger is at WARNING")
        raise RuntimeError("injected failure, key " + config.api_key)
        yield

    writer.write_messages = broken_write
    sys.argv = ["main.py", *sys.argv[1:]]
    from destination_iterable.run import run
    run()
""")
VIA_DESTINATION = ("import sys; from destination_iterable.destination import DestinationIterable; "
                   "DestinationIterable().run(sys.argv[1:])")


@dataclass
class LightRun:
    """A CLI run with the modules it imported."""

    result: RunResult
    imported: list[str]

    @property
    def lines(self) -> list[dict[str, Any]]:
        """Every stdout line, each of which must be one JSON object."""
        return [json.loads(line) for line in self.result.stdout.splitlines() if line.strip()]


def run_write(config: dict | str, catalog: dict | str, messages: list, *, script: str | None = None,
              code: str | None = None) -> LightRun:
    """`python -X importtime main.py write ...` (or `script`/`-c code` with the same arguments)."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path, catalog_path = Path(tmp) / "config.json", Path(tmp) / "catalog.json"
        config_path.write_text(config if isinstance(config, str) else json.dumps(config))
        catalog_path.write_text(catalog if isinstance(catalog, str) else json.dumps(catalog))
        if script is not None:
            entry = [str(Path(tmp) / "entry.py")]
            Path(entry[0]).write_text(script)
        elif code is not None:
            entry = ["-c", code]
        else:
            entry = [str(REPO_ROOT / "main.py")]
        args = [sys.executable, "-X", "importtime", *entry, "write", "--config", str(config_path),
                "--catalog", str(catalog_path)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.run(args, input=to_lines(messages), capture_output=True, timeout=120, cwd=REPO_ROOT,
                              env=env)
    stderr = proc.stderr.decode()
    imported = [line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")]
    rest = "\n".join(line for line in stderr.splitlines() if not line.startswith("import time:"))
    return LightRun(parse_output(proc.returncode, proc.stdout.decode(), rest), imported)


def assert_no_cdk(run: LightRun) -> None:
    """The import log is there and names no airbyte_cdk module (nor airbyte_protocol, its models)."""
    assert "destination_iterable.cli_write" in run.imported, run.imported[-20:]
    leaked = [m for m in run.imported if m.startswith(("airbyte_cdk", "airbyte_protocol"))]
    assert not leaked, leaked[:10]
    assert "destination_iterable.destination" not in run.imported


def assert_cdk_shapes(run: LightRun) -> None:
    """Every stdout line is a protocol message; LOG lines exactly as the CDK's formatter prints them."""
    for line in run.lines:
        assert line["type"] in {"LOG", "TRACE", "STATE"}, line
        if line["type"] == "LOG":
            assert list(line) == ["type", "log"] and list(line["log"]) == ["level", "message"], line
            assert line["log"]["level"] in LEVELS and isinstance(line["log"]["message"], str)


def cdk_trace(error: dict[str, Any]) -> dict[str, Any]:
    """What the CDK prints for the typed error behind `error` (the old `to_traced(...).emit_message()`)."""
    descriptor = error.get("stream_descriptor")
    traced = AirbyteTracedException(message=error["message"], internal_message=error["message"],
                                    failure_type=FailureType(error["failure_type"]),
                                    stream_descriptor=StreamDescriptor(**descriptor) if descriptor else None)
    message = AirbyteMessageSerializer.dump(traced.as_airbyte_message())
    del message["trace"]["emitted_at"]
    return message


def assert_failed_like_the_cdk(run: LightRun, key: str, failure_type: str, message_part: str) -> dict[str, Any]:
    """Exit 1; an ERROR log, then the TRACE as the CDK builds it, as the last two lines; no key anywhere."""
    result = run.result
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert_no_cdk(run)
    assert_cdk_shapes(run)
    *_, log, trace = run.lines
    assert trace["type"] == "TRACE" and list(trace) == ["type", "trace"], trace
    assert list(trace["trace"]) == ["type", "emitted_at", "error"] and isinstance(trace["trace"]["emitted_at"], int)
    error = trace["trace"]["error"]
    assert error["failure_type"] == failure_type and message_part in error["message"], error
    assert log == {"type": "LOG", "log": {"level": "ERROR", "message": error["message"]}}
    expected = cdk_trace(error)
    del trace["trace"]["emitted_at"]
    assert trace == expected and list(error) == list(expected["trace"]["error"])
    assert key not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return error


def test_successful_write_imports_no_airbyte_cdk(sandbox):
    config = make_config(sandbox)
    messages = [record("light_ok", {"email": f"m{i}@example.com"}) for i in range(5)]
    messages += [stream_state("light_ok", 5, state_id=7), stream_status("light_ok")]
    run = run_write(config, make_catalog("light_ok"), messages)
    assert run.result.returncode == 0, run.result.stdout[-3000:] + run.result.stderr[-3000:]
    assert_no_cdk(run)
    assert_cdk_shapes(run)
    assert [s["state"]["id"] for s in run.result.states] == [7]
    assert run.result.states[0]["state"]["destinationStats"] == {"recordCount": 5.0}
    assert run.lines[0] == {"type": "LOG", "log": {"level": "INFO", "message": "Begin writing to the destination..."}}
    assert run.lines[-1] == {"type": "LOG", "log": {"level": "INFO", "message": "Writing complete."}}
    assert run.result.list_summary("light_ok")["added"] == 5
    assert config["api_key"] not in run.result.stdout + run.result.stderr


def test_wrong_api_key_fails_like_the_cdk_without_printing_the_key(sandbox):
    sandbox.client.set_config(echo_api_key_in_errors=True)
    run = run_write(make_config(sandbox, api_key=WRONG_KEY, retry_max_seconds=2), make_catalog("light_key"),
                    [record("light_key", {"email": "a@example.com"})])
    error = assert_failed_like_the_cdk(run, WRONG_KEY, "config_error", "Use a Server-side API key")
    assert error["internal_message"] == error["message"]


def test_consent_off_fails_like_the_cdk(sandbox):
    config = make_config(sandbox, privacy_consent=False)
    run = run_write(config, make_catalog("light_consent"), [record("light_consent", {"email": "a@example.com"})])
    assert_failed_like_the_cdk(run, config["api_key"], "config_error", "Data-privacy consent is off")


@pytest.mark.parametrize(("content", "message"), [
    ('{"api_key": "%s", "privacy_consent": tru', "could not be read as a JSON object (ValueError)"),
    ('["%s"]', "could not be read as a JSON object (ValueError)"),
    ('{"api_key": "%s", "privacy_consent": true, "retry_max_seconds": "soon"}', "Setting 'retry_max_seconds'"),
    ('{"api_key": "%s"}', "Setting 'privacy_consent' is required"),
], ids=["truncated_json", "not_an_object", "wrong_type", "missing_setting"])
def test_bad_config_file_fails_like_the_cdk(sandbox, content, message):
    run = run_write(content % WRONG_KEY, make_catalog("light_cfg"), [])
    assert_failed_like_the_cdk(run, WRONG_KEY, "config_error", message)


def test_unreadable_catalog_fails_like_the_cdk(sandbox):
    config = make_config(sandbox)
    run = run_write(config, '{"streams": [', [])
    assert_failed_like_the_cdk(run, config["api_key"], "config_error",
                               "The configured catalog file could not be read (JSONDecodeError).")


def test_uncaught_exception_logs_fatal_and_traces_like_the_cdk(sandbox):
    config = make_config(sandbox)
    key = config["api_key"]
    run = run_write(config, make_catalog("light_crash"), [record("light_crash", {"email": "a@example.com"})],
                    script=INJECT)
    result = run.result
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_cdk(run)
    assert_cdk_shapes(run)
    assert key not in result.stdout + result.stderr
    logs = [line["log"] for line in run.lines if line["type"] == "LOG"]
    assert {"level": "WARN", "message": "about to fail with key ****"} in logs
    assert {"level": "WARN", "message": "library warning with key ****"} in logs
    assert not any("library info" in entry["message"] for entry in logs)
    *_, fatal, trace = run.lines
    assert fatal["log"]["level"] == "FATAL"
    assert fatal["log"]["message"].startswith("injected failure, key ****\nTraceback (most recent call last):")
    assert trace["type"] == "TRACE" and trace["trace"]["type"] == "ERROR"
    error = trace["trace"]["error"]
    assert list(error) == ["message", "internal_message", "stack_trace", "failure_type"]
    assert error["message"] == "Something went wrong in the connector. See the logs for more details."
    assert error["internal_message"] == "injected failure, key ****"
    assert error["failure_type"] == "system_error"
    assert error["stack_trace"].startswith("Traceback (most recent call last):")
    assert error["stack_trace"].endswith("RuntimeError: injected failure, key ****\n")


def test_destination_run_write_delegates_after_the_cdk_configured_logging(sandbox):
    """`DestinationIterable().run(["write", ...])` (the CDK already imported, its log handler installed, as in
    the reliability suite's fork server) prints each line once, in the same format."""
    config = make_config(sandbox)
    messages = [record("light_cdk", {"email": "a@example.com"}), stream_state("light_cdk", 1, state_id=3)]
    run = run_write(config, make_catalog("light_cdk"), messages, code=VIA_DESTINATION)
    assert run.result.returncode == 0, run.result.stdout[-3000:] + run.result.stderr[-3000:]
    assert any(m.startswith("airbyte_cdk") for m in run.imported)
    assert_cdk_shapes(run)
    texts = [line["log"]["message"] for line in run.lines if line["type"] == "LOG"]
    assert texts.count("Begin writing to the destination...") == 1 and texts[-1] == "Writing complete."
    assert [s["state"]["id"] for s in run.result.states] == [3]
