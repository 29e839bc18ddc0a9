"""The CDK-free write command reproduces the airbyte-cdk's observable behaviour.

Each test builds the same thing twice, once with the CDK (imported here, in the test process only) and once
with the connector's own modules, and compares the outputs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from airbyte_cdk.destinations import Destination
from airbyte_cdk.logger import AirbyteLogFormatter
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import get_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_iterable.airbyte_logging import AirbyteJsonFormatter, StdoutLineHandler, install_excepthook
from destination_iterable.cli_write import parse_args
from destination_iterable.config_file import connection_specification
from destination_iterable.destination import to_traced
from destination_iterable.errors import (
    ApiError,
    AuthError,
    ConfigError,
    IterableDestinationError,
    RetryBudgetExceeded,
    TransientError,
)
from destination_iterable.failures import failure_from_error, failure_from_exception, trace_message
from destination_iterable.masking import filter_secrets, secret_values, set_secrets
from destination_iterable.output import emit_json
from destination_iterable.run import command_of

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def secrets() -> Iterator[str]:
    """SECRET registered with both the CDK's filter and ours; both cleared afterwards."""
    update_secrets([SECRET])
    set_secrets([SECRET])
    yield SECRET
    update_secrets([])
    set_secrets([])


def _record(level: int, msg: Any, args: tuple = (), exc: BaseException | None = None,
            **extra: Any) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord("airbyte", level, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: B036 - any exception, as the excepthook sees it
        return caught


LOG_CASES = [
    (logging.INFO, "Begin writing to the destination...", ()),
    (logging.WARNING, "list %s has %d failures", ("a", 3)),
    (logging.ERROR, f"the key is {SECRET}!", ()),
    (logging.CRITICAL, "fatal with \u00e9 and \u2028 and \"quotes\" and \\ and \n newline", ()),
    (logging.INFO, "", ()),
]


@pytest.mark.parametrize(("level", "msg", "args"), LOG_CASES)
def test_log_lines_equal_the_cdk_formatter(secrets, level, msg, args):
    ours = AirbyteJsonFormatter().format(_record(level, msg, args))
    cdk = AirbyteLogFormatter(fmt="%(message)s").format(_record(level, msg, args))
    assert ours == cdk
    assert SECRET not in ours


def test_fatal_log_with_traceback_equals_the_cdk_formatter(secrets):
    exc = _raised(RuntimeError(f"boom {SECRET}"))
    ours = AirbyteJsonFormatter().format(_record(logging.CRITICAL, exc, exc=exc))
    cdk = AirbyteLogFormatter(fmt="%(message)s").format(_record(logging.CRITICAL, exc, exc=exc))
    assert ours == cdk
    parsed = orjson.loads(ours)
    assert parsed["log"]["level"] == "FATAL" and "Traceback" in parsed["log"]["message"]
    assert SECRET not in ours and "boom ****" in ours


@pytest.mark.parametrize("platform_debug", [False, True])
def test_debug_records_equal_the_cdk_formatter(secrets, monkeypatch, platform_debug):
    if platform_debug:
        monkeypatch.setenv("LOG_LEVEL", "debug")
    else:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    ours = AirbyteJsonFormatter().format(_record(logging.DEBUG, f"debug {SECRET}", request_id="r1"))
    cdk = AirbyteLogFormatter(fmt="%(message)s").format(_record(logging.DEBUG, f"debug {SECRET}", request_id="r1"))
    assert ours == cdk and SECRET not in ours


def test_unknown_levels_are_logged_as_info():
    """The CDK maps them to "INFO" too (and then fails to serialise it); this module prints them."""
    assert orjson.loads(AirbyteJsonFormatter().format(_record(25, "between")))["log"] == {
        "level": "INFO", "message": "between"}


def _cdk_trace(traced: AirbyteTracedException) -> dict[str, Any]:
    message = AirbyteMessageSerializer.dump(traced.as_airbyte_message())
    message["trace"].pop("emitted_at")
    return message


def _our_trace(failure: Any) -> dict[str, Any]:
    message = trace_message(failure)
    assert isinstance(message["trace"].pop("emitted_at"), int)
    return message


ERRORS = [
    ConfigError("Setting 'x' is required.", stream=None),
    ConfigError("List 'A' was deleted in Iterable during the sync.", stream="segment_a"),
    AuthError("Iterable did not accept the API key", status=401, code="BadApiKey"),
    AuthError("The key may not write lists", status=401, stream="s1"),
    TransientError("Iterable could not be reached."),
    RetryBudgetExceeded("Iterable kept failing for 3 s.", problem="429", stream="s2"),
    ApiError("Unexpected answer 418.", status=418),
    IterableDestinationError("Something else."),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__ + ("+stream" if e.stream else ""))
def test_typed_errors_give_the_cdk_trace(exc):
    """Same keys, order, values, stack_trace and failure type as `to_traced(exc).emit_message()` printed."""
    ours = _our_trace(failure_from_error(exc))
    assert ours == _cdk_trace(to_traced(exc))
    assert list(ours["trace"]["error"]) == list(_cdk_trace(to_traced(exc))["trace"]["error"])


def test_failure_types_and_auth_hint():
    assert failure_from_error(ConfigError("c")).failure_type == FailureType.config_error.value
    assert failure_from_error(TransientError("t")).failure_type == FailureType.transient_error.value
    assert failure_from_error(ApiError("a")).failure_type == FailureType.system_error.value
    auth = failure_from_error(AuthError("Iterable did not accept the API key", stream="s"))
    assert auth.failure_type == "config_error" and auth.stream == "s"
    assert auth.message == ("Iterable did not accept the API key. Use a Server-side API key of the Iterable "
                            "project, for the data center it belongs to.")


@pytest.mark.parametrize("exc", [RuntimeError("kaputt"), ValueError(), KeyError("k")], ids=repr)
def test_uncaught_exceptions_give_the_cdk_trace(exc):
    raised = _raised(exc)
    ours = _our_trace(failure_from_exception(raised))
    assert ours == _cdk_trace(AirbyteTracedException.from_exception(raised))
    assert ours["trace"]["error"]["failure_type"] == "system_error"
    assert "Traceback (most recent call last)" in ours["trace"]["error"]["stack_trace"]


def test_traces_mask_secrets_even_where_json_would_escape_them():
    """A secret with a quote or backslash is masked in every field before JSON-encoding (the CDK only masks
    the encoded text, where such a secret no longer appears verbatim)."""
    secret = 'ab"c\\d-secret'
    set_secrets([secret])
    try:
        failure = failure_from_exception(_raised(RuntimeError(f"key {secret}")))
        text = orjson.dumps(trace_message(failure)).decode()
        assert secret not in orjson.loads(text)["trace"]["error"]["internal_message"]
        assert secret not in text and orjson.dumps(secret).decode()[1:-1] not in text
        assert "****" in orjson.loads(text)["trace"]["error"]["stack_trace"]
    finally:
        set_secrets([])


SPECS: list[dict[str, Any]] = [
    {"properties": {"api_key": {"type": "string", "airbyte_secret": True}, "other": {"type": "string"}}},
    {"properties": {"auth": {"type": "object", "oneOf": [
        {"properties": {"password": {"type": "string", "airbyte_secret": True}}},
        {"properties": {"token": {"type": "string", "airbyte_secret": True}}}]}}},
    {"properties": {"nested": {"type": "object", "properties": {
        "deep": {"type": "object", "properties": {"secret": {"airbyte_secret": True}}}}}}},
    {"properties": {"flag": {"airbyte_secret": False}}},
]
CONFIGS: list[dict[str, Any]] = [
    {"api_key": "k1", "other": "o"},
    {"auth": {"token": "t1"}},
    {"auth": {"password": "p1", "token": "t2"}},
    {"nested": {"deep": {"secret": "s1"}}},
    {"nested": {"deep": "not-an-object"}},
    {"flag": "f"},
    {},
]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("config", CONFIGS)
def test_secret_values_equal_the_cdks_get_secrets(spec, config):
    assert secret_values(spec, config) == get_secrets(spec, config)


def test_the_api_key_is_the_spec_secret():
    assert secret_values(connection_specification(), {"api_key": "abc", "email_field": "email"}) == ["abc"]


def test_filter_secrets_masks_every_registered_secret_and_ignores_empty_ones():
    set_secrets(["alpha", "", "beta"])
    try:
        assert filter_secrets("alpha beta gamma alpha") == "**** **** gamma ****"
    finally:
        set_secrets([])
    assert filter_secrets("alpha") == "alpha"


def _parse(parser: Any, args: list[str]) -> tuple[Any, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: Any = vars(parser(args))
        except SystemExit as exit_:
            result = ("exit", exit_.code)
        except Exception as exc:  # noqa: BLE001 - compare whatever each parser raises
            result = ("raised", type(exc).__name__, str(exc))
    return result, out.getvalue(), err.getvalue()


class _CdkDestination(Destination):
    def write(self, config, configured_catalog, input_messages):  # pragma: no cover - never called
        return iter(())

    def check(self, logger, config):  # pragma: no cover - never called
        raise NotImplementedError


@pytest.mark.parametrize("args", [
    ["write", "--config", "c.json", "--catalog", "k.json"],
    ["write", "--catalog", "k.json", "--config", "c.json"],
    ["write"],
    ["write", "--config", "c.json"],
    ["write", "--catalog", "k.json"],
    ["write", "--config", "c.json", "--catalog", "k.json", "extra"],
    ["write", "--config"],
    ["write", "-h"],
    ["-h"],
    [],
], ids=" ".join)
def test_arguments_parse_like_the_cdk_destination(args, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["main.py", *args])
    assert _parse(parse_args, args) == _parse(_CdkDestination().parse_args, args)


@pytest.mark.parametrize(("args", "command"), [
    (["write", "--config", "c"], "write"), (["--x", "write"], "write"), (["spec"], "spec"),
    (["check", "--config", "write"], "check"), ([], None), (["-h"], None)])
def test_command_of(args, command):
    assert command_of(args) == command


@pytest.fixture
def airbyte_logger(capsys) -> Iterator[logging.Logger]:
    """A private logger with the connector's handler (pytest's own root handlers stay untouched)."""
    log = logging.getLogger("test_write_cli_light.airbyte")
    handler = StdoutLineHandler()
    handler.setFormatter(AirbyteJsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    log.removeHandler(handler)


def test_logs_and_protocol_messages_share_whole_lines_in_order(airbyte_logger, capsys):
    def worker(n: int) -> None:
        for i in range(200):
            airbyte_logger.info(f"worker {n} line {i} " + "x" * 300)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for i in range(200):
        emit_json({"type": "STATE", "state": {"i": i}})
    for thread in threads:
        thread.join()
    lines = capsys.readouterr().out.splitlines()
    parsed = [orjson.loads(line) for line in lines]
    assert len(parsed) == 1000
    assert [m["state"]["i"] for m in parsed if m["type"] == "STATE"] == list(range(200))
    for n in range(4):
        mine = [m["log"]["message"] for m in parsed if m["type"] == "LOG" and m["log"]["message"].startswith(
            f"worker {n} ")]
        assert [int(text.split()[3]) for text in mine] == list(range(200))


def test_excepthook_logs_fatal_then_traces(airbyte_logger, capsys, monkeypatch, secrets):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(airbyte_logger)
    exc = _raised(RuntimeError(f"bad {SECRET}"))
    sys.excepthook(type(exc), exc, exc.__traceback__)
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["type"] for m in lines] == ["LOG", "TRACE"]
    assert lines[0]["log"]["level"] == "FATAL" and lines[0]["log"]["message"].startswith("bad ****\nTraceback")
    error = lines[1]["trace"]["error"]
    assert error["internal_message"] == "bad ****" and error["failure_type"] == "system_error"
    assert error["message"] == "Something went wrong in the connector. See the logs for more details."
    assert SECRET not in str(lines)
