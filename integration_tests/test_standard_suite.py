"""Airbyte's standard connector tests (airbyte-cdk ``DestinationTestSuiteBase``), offline against the sandbox.

What runs, from ``acceptance-test-config.yml``:

- ``test_check[<config>]``: in-process ``check`` for every ``connection`` config; exactly one CONNECTION_STATUS
  with the declared status, and no ``airbyte_secret`` value (the API key) anywhere in the output. On top of the
  standard assertions this module checks the user-facing message of each scenario (``EXPECTED_MESSAGES``).
- ``test_config_matches_spec[<config>]``: every ``spec`` config validates against ``spec.json``.
- The Docker image tests are skipped, with the reason printed: they need a Docker engine and the internet.

The configs point at ``http://127.0.0.1:18777``. A class fixture starts the sandbox there with the configs' own
keys; it turns on ``echo_api_key_in_errors``, so every error body Iterable sends back contains the caller's key
and the secret-leak check proves the connector never prints an answer body. A second sandbox plays the other
data center (``ITERABLE_OTHER_DATA_CENTER_URL``) for the wrong-data-center scenario. If port 18777 is taken
(another run on the same machine), the configs are copied to a temporary connector root with the sandbox's
actual address instead, so the same scenarios still run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
from airbyte_cdk.test import entrypoint_wrapper
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import DestinationTestSuiteBase

from destination_iterable import DestinationIterable
from integration_tests.sandbox import SandboxServer

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]

REPO_ROOT = Path(__file__).resolve().parent.parent
ACCEPTANCE_DIR = "integration_tests/acceptance"
OTHER_DC_ENV = "ITERABLE_OTHER_DATA_CENTER_URL"
RUN_IMAGE_TESTS_ENV = "DESTINATION_ITERABLE_IMAGE_TESTS"
IMAGE_TESTS_SKIP_REASON = (
    "Docker image tests skipped: they build the image with a Docker engine and download Airbyte's Dockerfile "
    "template and base image from the internet, and neither is available here. integration_tests/"
    "test_packaging.py checks what can be checked without them (Dockerfile paths, a clean `pip install .`, "
    f"`destination-iterable spec`). Set {RUN_IMAGE_TESTS_ENV}=1 to run them where Docker and the internet are."
)

# The message each `connection` scenario must show the user (a substring of CONNECTION_STATUS.message).
EXPECTED_MESSAGES = {
    "config": "Connected to Iterable (US data center); the API key may write lists.",
    "invalid_api_key_config": "Iterable did not accept the API key. Check that it was copied completely and is "
                              "still enabled (Iterable > Integrations > API Keys).",
    "read_only_api_key_config": "The API key can read lists but may not change them (it looks like a Read-only "
                                "key). Create a Server-side key",
    "consent_off_config": "Data-privacy consent is off. Turn on",
    "wrong_data_center_config": "This API key belongs to a project in Iterable's EU data center, but the "
                                "destination is set to US. Change 'Data center' to EU.",
    "unreachable_config": "Could not reach Iterable at http://127.0.0.1:1",
    "invalid_config": "Config validation error",
}


def _load(name: str) -> dict[str, Any]:
    return json.loads((REPO_ROOT / ACCEPTANCE_DIR / name).read_text())


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Print a line in the pytest output even under -q (skip reasons are otherwise only shown with -rs)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write("\n")
        reporter.write_line(f"[standard tests] {line}")


class TestDestinationIterableStandard(DestinationTestSuiteBase):
    """The standard suite, with the connector class given and the connector root pinned to this repository."""

    connector = DestinationIterable
    connector_name = "destination-iterable"  # the folder name of a checkout may differ
    _root: ClassVar[Path] = REPO_ROOT
    _outputs: ClassVar[dict[str, entrypoint_wrapper.EntrypointOutput]] = {}
    _image_reason_shown: ClassVar[bool] = False

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        """This repository, or the temporary copy made when the sandbox could not get its fixed port."""
        return cls._root

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def acceptance_sandboxes(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                             ) -> Iterator[SandboxServer]:
        """The sandbox the acceptance configs point at, plus the 'other data center' one."""
        valid = _load("config.json")
        address = urlsplit(valid["api_base_url"])
        host, port = address.hostname or "127.0.0.1", address.port or 80
        keys = {"api_key": valid["api_key"], "read_only_key": _load("read_only_api_key_config.json")["api_key"]}
        no_limits = {"subscribe_rps": 0, "lists_read_rps": 0, "list_write_rps": 0}
        if _port_free(host, port):
            main = SandboxServer(**keys, host=host, port=port, echo_api_key_in_errors=True, **no_limits).start()
        else:
            main = SandboxServer(**keys, host=host, port=0, echo_api_key_in_errors=True, **no_limits).start()
            cls._root = cls._relocated_root(tmp_path_factory.mktemp("connector-root"), valid["api_base_url"],
                                             main.url)
            _say(request, f"port {port} is taken, so the acceptance configs were copied to {cls._root} with the "
                          f"sandbox at {main.url}")
        other_dc = SandboxServer(api_key=_load("wrong_data_center_config.json")["api_key"], port=0,
                                 echo_api_key_in_errors=True, **no_limits).start()
        previous = os.environ.get(OTHER_DC_ENV)
        os.environ[OTHER_DC_ENV] = other_dc.url
        try:
            yield main
        finally:
            if previous is None:
                os.environ.pop(OTHER_DC_ENV, None)
            else:
                os.environ[OTHER_DC_ENV] = previous
            other_dc.stop()
            main.stop()
            cls._root = REPO_ROOT

    @staticmethod
    def _relocated_root(root: Path, fixed_url: str, actual_url: str) -> Path:
        shutil.copy(REPO_ROOT / "acceptance-test-config.yml", root / "acceptance-test-config.yml")
        shutil.copy(REPO_ROOT / "metadata.yaml", root / "metadata.yaml")
        target = root / ACCEPTANCE_DIR
        target.mkdir(parents=True)
        for path in (REPO_ROOT / ACCEPTANCE_DIR).glob("*.json"):
            (target / path.name).write_text(path.read_text().replace(fixed_url, actual_url))
        return root

    @pytest.fixture(autouse=True)
    def skip_image_tests(self, request: pytest.FixtureRequest) -> None:
        """Skip the Docker image tests (reason printed once) unless explicitly asked for."""
        if request.node.get_closest_marker("image_tests") is None or os.environ.get(RUN_IMAGE_TESTS_ENV) == "1":
            return
        if not type(self)._image_reason_shown:
            type(self)._image_reason_shown = True
            _say(request, IMAGE_TESTS_SKIP_REASON)
        pytest.skip(IMAGE_TESTS_SKIP_REASON)

    # ------------------------------------------------------------------ the standard check test, plus messages
    def _assert_no_secrets_in_output(self, scenario: ConnectorTestScenario,
                                     output: entrypoint_wrapper.EntrypointOutput, *, verb: str) -> None:
        """Keep each check's output for the message assertion below, then run the standard leak check."""
        type(self)._outputs[scenario.id] = output
        super()._assert_no_secrets_in_output(scenario, output, verb=verb)

    def test_check(self, scenario: ConnectorTestScenario) -> None:
        """The standard check test, then: the user sees the message the docs promise for this scenario."""
        super().test_check(scenario)
        expected = EXPECTED_MESSAGES.get(scenario.id)
        assert expected is not None, f"add the expected check message of scenario {scenario.id!r}"
        statuses = self._outputs[scenario.id].connection_status_messages
        message = statuses[0].connectionStatus.message or ""
        assert expected in message, message


def test_every_acceptance_config_is_listed() -> None:
    """A config file nobody tests is a stale config; a listed file that is missing fails collection anyway."""
    listed = (REPO_ROOT / "acceptance-test-config.yml").read_text()
    for path in (REPO_ROOT / ACCEPTANCE_DIR).glob("*.json"):
        assert f"{ACCEPTANCE_DIR}/{path.name}" in listed, path.name
        assert path.stem in EXPECTED_MESSAGES, path.stem
