"""Issue 3: every `check` outcome, through the real CLI against the sandbox."""

from __future__ import annotations

import socket

from integration_tests.harness import make_config, run_cli


def check(config, env=None):
    result = run_cli("check", config, env=env, timeout=90)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    status = result.connection_status
    assert status is not None, result.stdout
    for secret in (config.get("api_key"),):
        assert secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return status


def test_valid_key_succeeds_without_creating_anything(sandbox):
    status = check(make_config(sandbox))
    assert status["status"] == "SUCCEEDED", status
    assert sandbox.client.lists() == []


def test_consent_off(sandbox):
    status = check(make_config(sandbox, privacy_consent=False))
    assert status["status"] == "FAILED" and "consent is off" in status["message"]


def test_invalid_key(sandbox):
    status = check(make_config(sandbox, api_key="not-a-real-key-0000000000000000"))
    assert status["status"] == "FAILED" and "did not accept the API key" in status["message"]


def test_read_only_key_cannot_write(sandbox):
    status = check(make_config(sandbox, api_key=sandbox.read_only_key))
    assert status["status"] == "FAILED" and "Read-only" in status["message"]
    stats = sandbox.client.stats()
    assert "POST /api/lists" not in stats["requests"], "the write probe must not create a list"
    assert sandbox.client.lists() == []


def test_key_of_the_other_data_center(sandbox, sandbox_factory):
    eu = sandbox_factory(api_key="eu-project-key-0123456789abcdef", port=0)
    config = make_config(sandbox, api_key="eu-project-key-0123456789abcdef")
    status = check(config, env={"ITERABLE_OTHER_DATA_CENTER_URL": eu.url})
    assert status["status"] == "FAILED"
    assert "EU data center" in status["message"] and "Change 'Data center' to EU" in status["message"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_host(sandbox):
    config = make_config(sandbox, api_base_url=f"http://127.0.0.1:{free_port()}", retry_max_seconds=2)
    status = check(config)
    assert status["status"] == "FAILED" and "Could not reach Iterable" in status["message"]
    assert "connection" in status["message"]


def test_timeout(sandbox):
    sandbox.client.set_config(latency_ms=3000)
    config = make_config(sandbox, retry_max_seconds=2, request_timeout_seconds=1)
    status = check(config)
    assert status["status"] == "FAILED" and "timed out" in status["message"]


def test_plain_http_to_a_remote_host_is_refused(sandbox):
    status = check(make_config(sandbox, api_base_url="http://iterable.example.com"))
    assert status["status"] == "FAILED" and "https://" in status["message"]


def test_config_of_wrong_types_fails_with_a_message(sandbox):
    status = check(make_config(sandbox, privacy_consent="yes"))
    assert status["status"] == "FAILED" and "privacy_consent" in status["message"]
