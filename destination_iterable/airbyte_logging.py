"""Airbyte-JSON logging and the uncaught-exception hook, as the airbyte-cdk sets them up (without importing it).

Every record that reaches the root logger is printed to stdout as
`{"type":"LOG","log":{"level":"INFO","message":"..."}}` with the registered secrets masked. The "airbyte"
logger logs from INFO; other libraries' loggers from WARNING (the root level), as under the CDK.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import orjson

from destination_iterable.failures import emit_trace, failure_from_exception
from destination_iterable.masking import filter_secrets
from destination_iterable.output import write_line

LEVELS = {logging.CRITICAL: "FATAL", logging.ERROR: "ERROR", logging.WARNING: "WARN", logging.INFO: "INFO",
          logging.DEBUG: "DEBUG"}
_DEFAULT_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, None, None, None).__dict__)


def log_line(level: str, message: str) -> str:
    """One LOG protocol message as a JSON line."""
    return orjson.dumps({"type": "LOG", "log": {"level": level, "message": message}}).decode()


def platform_debug() -> bool:
    """Debug logs requested by the platform (`LOG_LEVEL=debug`)."""
    return os.environ.get("LOG_LEVEL", "info").lower() == "debug"


def extra_args(record: logging.LogRecord) -> Mapping[str, Any]:
    """The `extra=` fields of a record."""
    return {k: str(getattr(record, k)) for k in set(record.__dict__) - _DEFAULT_ATTRS if hasattr(record, k)}


class AirbyteJsonFormatter(logging.Formatter):
    """The CDK's AirbyteLogFormatter: a LOG message per record (DEBUG records as the CDK prints them)."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The protocol line of one record, secrets masked."""
        level = LEVELS.get(record.levelno, "INFO")
        if level != "DEBUG":
            return log_line(level, filter_secrets(super().format(record)))
        extras = extra_args(record)
        if platform_debug():
            message = f"{filter_secrets(record.getMessage())} ///\nExtra logs: {filter_secrets(json.dumps(extras))}"
            return log_line(level, message)
        return filter_secrets(json.dumps({"type": "DEBUG", "message": record.getMessage(), "data": extras}))


class StdoutLineHandler(logging.Handler):
    """Writes each formatted record as one flushed stdout line (shared lock with the protocol messages)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Format and print one record."""
        try:
            write_line(self.format(record))
        except Exception:  # logging must never raise: report it on stderr, like any handler
            self.handleError(record)


def setup_logging(name: str = "airbyte") -> logging.Logger:
    """The CDK's `init_logger`: `name` logs from INFO; the root logger's only handler prints Airbyte JSON."""
    root = logging.getLogger()
    for old in list(root.handlers):  # e.g. the CDK's own console handler, when the CDK was imported already
        old.flush()
        root.removeHandler(old)
    handler = StdoutLineHandler()
    handler.setFormatter(AirbyteJsonFormatter())
    root.addHandler(handler)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    return logger


def install_excepthook(logger: logging.Logger) -> None:
    """The CDK's uncaught-exception handler: a FATAL log with the traceback, then a system_error TRACE."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logger.fatal(exc, exc_info=exc)
        emit_trace(failure_from_exception(exc))

    sys.excepthook = hook
