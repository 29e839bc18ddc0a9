"""Failures as Airbyte TRACE error messages, shaped exactly like the airbyte-cdk's (without importing it).

`failure_from_error` maps our typed errors to failure types (config / transient / system), as
`destination.to_traced` always did; `failure_from_exception` is the CDK's view of an uncaught exception.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from destination_iterable.errors import AuthError, ConfigError, IterableDestinationError, TransientError
from destination_iterable.masking import filter_secrets
from destination_iterable.output import write_line

CONFIG_ERROR = "config_error"
TRANSIENT_ERROR = "transient_error"
SYSTEM_ERROR = "system_error"
GENERIC_MESSAGE = "Something went wrong in the connector. See the logs for more details."
# The CDK builds its TRACE from an AirbyteTracedException that was never raised; its "stack trace" is that
# exception's one-line rendering. The same text is written here, so the platform sees what it saw before.
TRACED_EXCEPTION_TYPE = "airbyte_cdk.utils.traced_exception.AirbyteTracedException"
AUTH_HINT = ". Use a Server-side API key of the Iterable project, for the data center it belongs to."

logger = logging.getLogger("airbyte")


@dataclass(frozen=True)
class Failure:
    """What one TRACE error says."""

    message: str | None
    internal_message: str | None
    failure_type: str
    stack_trace: str
    stream: str | None = None


def _unraised_trace(text: str | None) -> str:
    return f"{TRACED_EXCEPTION_TYPE}: {text}\n" if text else f"{TRACED_EXCEPTION_TYPE}\n"


def failure_from_error(exc: IterableDestinationError) -> Failure:
    """Our typed error as a failure: config_error (auth errors get a hint), transient_error or system_error."""
    message = exc.message
    if isinstance(exc, AuthError):
        message = f"{exc.message}{AUTH_HINT}"
        failure_type = CONFIG_ERROR
    elif isinstance(exc, ConfigError):
        failure_type = CONFIG_ERROR
    elif isinstance(exc, TransientError):
        failure_type = TRANSIENT_ERROR
    else:
        failure_type = SYSTEM_ERROR
    return Failure(message=message, internal_message=message, failure_type=failure_type,
                   stack_trace=_unraised_trace(message), stream=exc.stream)


def failure_from_exception(exc: BaseException) -> Failure:
    """An uncaught exception, as the CDK reports it: generic message, its text and full traceback."""
    stack = "".join(traceback.TracebackException.from_exception(exc).format())
    return Failure(message=None, internal_message=str(exc), failure_type=SYSTEM_ERROR, stack_trace=stack)


def trace_message(failure: Failure, *, emitted_at: int | None = None) -> dict[str, Any]:
    """The TRACE message (keys in the CDK's order, absent optional fields left out), secrets masked."""
    error: dict[str, Any] = {"message": filter_secrets(failure.message or GENERIC_MESSAGE)}
    if failure.internal_message is not None:
        error["internal_message"] = filter_secrets(failure.internal_message)
    error["stack_trace"] = filter_secrets(failure.stack_trace)
    error["failure_type"] = failure.failure_type
    if failure.stream:
        error["stream_descriptor"] = {"name": filter_secrets(failure.stream)}
    stamp = time.time_ns() // 1_000_000 if emitted_at is None else emitted_at
    return {"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": stamp, "error": error}}


def emit_trace(failure: Failure) -> None:
    """Print the TRACE message (masked again as a whole, as the CDK does)."""
    write_line(filter_secrets(orjson.dumps(trace_message(failure)).decode()))


def fail(failure: Failure) -> NoReturn:
    """Log the error, print its TRACE and exit 1 at once.

    Exiting without waiting: a sender thread may still hang on a request that never answers (after
    SIGTERM, say); everything acknowledged has been echoed, so nothing is lost by not waiting for it.
    """
    logger.error(failure.message or "The sync failed.")
    emit_trace(failure)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
