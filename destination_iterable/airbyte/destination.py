"""The connector: `DestinationIterable`, one airbyte-cdk `Destination` for spec, check and write.

The CDK parses the command line, reads and validates the config against spec.json, registers its secrets
for masking, logs as Airbyte JSON and turns uncaught exceptions into TRACE errors. Overridden is only
what the CDK gets wrong for this connector: its parser drops every STATE key it does not model (such as
the platform's `id`), so `write` reads stdin itself and echoes STATE messages as the dicts they came in.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
from airbyte_cdk.destinations import Destination
from airbyte_cdk.exception_handler import init_uncaught_exception_handler
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    FailureType,
    Status,
    StreamDescriptor,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from jsonschema import Draft7Validator

from destination_iterable.airbyte.catalog import streams_from_catalog
from destination_iterable.airbyte.messages import LineReader, write_states
from destination_iterable.config import parse_config
from destination_iterable.errors import AuthError, ConfigError, IterableDestinationError, TransientError
from destination_iterable.iterable.check import check_connection

logger = logging.getLogger("airbyte")

AUTH_HINT = ". Use a Server-side API key of the Iterable project, for the data center it belongs to."


def to_traced(exc: IterableDestinationError) -> AirbyteTracedException:
    """Our typed error as the CDK's traced exception: config_error, transient_error or system_error."""
    message = exc.message
    if isinstance(exc, AuthError):
        message, failure_type = f"{exc.message}{AUTH_HINT}", FailureType.config_error
    elif isinstance(exc, ConfigError):
        failure_type = FailureType.config_error
    elif isinstance(exc, TransientError):
        failure_type = FailureType.transient_error
    else:
        failure_type = FailureType.system_error
    descriptor = StreamDescriptor(name=exc.stream) if exc.stream else None
    return AirbyteTracedException(message=message, internal_message=message, failure_type=failure_type,
                                  stream_descriptor=descriptor)


class DestinationIterable(Destination):
    """Keeps one Iterable static list per stream (segment)."""

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Never raises: FAILED with a readable message, or SUCCEEDED."""
        ok, message = check_connection(config)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if ok else Status.FAILED, message=message)

    def write(self, config: Mapping[str, Any], configured_catalog: ConfiguredAirbyteCatalog,
              input_messages: Iterable[AirbyteMessage]) -> Iterable[AirbyteMessage]:
        """The CDK's in-process API: protocol objects in, the STATE messages that may be echoed out."""
        catalog = ConfiguredAirbyteCatalogSerializer.dump(configured_catalog)
        chunks = ([AirbyteMessageSerializer.dump(message)] for message in input_messages)
        for state in self._write_dicts(config, catalog, chunks):
            yield AirbyteMessageSerializer.load(state)

    def _run_write(self, config: Mapping[str, Any], configured_catalog_path: str,
                   input_stream: io.TextIOWrapper) -> Iterable[dict[str, Any]]:
        """The `write` command: stdin lines in, STATE messages out as the dicts they came in (see `run`)."""
        try:
            with open(configured_catalog_path, "rb") as handle:
                catalog = orjson.loads(handle.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise to_traced(ConfigError(f"The configured catalog file could not be read ({type(exc).__name__}).")
                            ) from None
        stdin = getattr(input_stream, "buffer", input_stream)
        logger.info("Begin writing to the destination...")
        yield from self._write_dicts(config, catalog, LineReader(stdin).chunks(), term=sigterm_event())
        logger.info("Writing complete.")

    @staticmethod
    def _write_dicts(config: Mapping[str, Any], catalog: Any, chunks: Iterable[list[Any]],
                     term: threading.Event | None = None) -> Iterator[dict]:
        """Validate settings and catalog, write every chunk of messages, yield the STATE dicts to echo."""
        try:
            settings = parse_config(config)
            specs = streams_from_catalog(catalog, settings)
            yield from write_states(settings, specs, chunks, term=term)
        except IterableDestinationError as exc:
            raise to_traced(exc) from None

    def run_cmd(self, parsed_args: argparse.Namespace) -> Iterable[AirbyteMessage | dict[str, Any]]:
        """The CDK's commands; a config that breaks spec.json is explained by the setting's name."""
        try:
            for message in super().run_cmd(parsed_args):
                status = message.connectionStatus if isinstance(message, AirbyteMessage) else None
                if status is not None and status.status == Status.FAILED and _is_spec_error(status.message):
                    status.message = self._spec_problem(parsed_args.config) or status.message
                yield message
        except AirbyteTracedException as traced:
            if not _is_spec_error(traced.message):
                raise
            raise AirbyteTracedException(message=self._spec_problem(parsed_args.config) or traced.message,
                                         internal_message=traced.internal_message,
                                         failure_type=FailureType.config_error) from None

    def _spec_problem(self, config_path: str) -> str | None:
        """The first way the config breaks spec.json, as a sentence naming the setting (never its value)."""
        return spec_problem(self.read_config(config_path), self.spec(logger).connectionSpecification)

    def run(self, args: list[str]) -> None:
        """The CDK's `run`, printing STATE dicts untouched and exiting at once after a failure.

        As in the CDK's source entry point, stdout goes through the CDK's print buffer, so log lines and
        protocol messages keep their order.
        """
        init_uncaught_exception_handler(logger)
        parsed = self.parse_args(args)
        with PRINT_BUFFER:
            try:
                for message in self.run_cmd(parsed):
                    print_message(message)
            except AirbyteTracedException as traced:
                logger.error(traced.message or "The sync failed.")
                traced.with_traceback(None).emit_message()  # a known failure: its message says it all
                exit_now()
            except Exception as exc:  # noqa: BLE001 - reported by the CDK's own handler (FATAL log, TRACE)
                sys.excepthook(type(exc), exc, exc.__traceback__)
                exit_now()


def _is_spec_error(message: str | None) -> bool:
    return bool(message) and str(message).startswith("Config validation error")


def spec_problem(config: Any, schema: Mapping[str, Any]) -> str | None:
    """The first way `config` breaks the spec, as a sentence that names the setting (never its value)."""
    errors = sorted(Draft7Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    name = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        name = str(error.message).split("'")[1] if "'" in str(error.message) else name
        return f"Setting '{name}' is required. Fill it in in the destination's settings."
    expected = {
        "type": f"must be of type {error.validator_value}",
        "enum": f"must be one of {error.validator_value}",
        "pattern": "does not have the expected format",
        "minimum": f"must be at least {error.validator_value}",
        "maximum": f"must be at most {error.validator_value}",
        "minLength": "must not be empty",
    }.get(str(error.validator), "is not valid")
    return f"Setting '{name}' {expected}. Fix it in the destination's settings."


def print_message(message: AirbyteMessage | dict[str, Any]) -> None:
    """Print one protocol message and flush it (STATE dicts are printed as they are)."""
    data = message if isinstance(message, dict) else AirbyteMessageSerializer.dump(message)
    print(orjson.dumps(data).decode() + "\n", end="")
    PRINT_BUFFER.flush()


def exit_now() -> None:
    """Exit 1 without waiting for the interpreter's shutdown.

    A sender thread may still hang on a request that never answers (after SIGTERM, say); everything
    acknowledged has been echoed, so nothing is lost by not waiting for it.
    """
    PRINT_BUFFER.flush()
    sys.__stdout__.flush()
    sys.__stderr__.flush()
    os._exit(1)


def sigterm_event() -> threading.Event:
    """An event that SIGTERM sets (the write then stops cleanly); only possible on the main thread."""
    term = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: term.set())
    return term
