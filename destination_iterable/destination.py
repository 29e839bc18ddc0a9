"""Airbyte glue: the DestinationIterable connector (spec, check, write)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
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
    Type,
)
from airbyte_cdk.utils.airbyte_secrets_utils import get_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from jsonschema import Draft7Validator

from destination_iterable.catalog import streams_from_catalog
from destination_iterable.check import check_connection
from destination_iterable.config import parse_config
from destination_iterable.errors import AuthError, ConfigError, IterableDestinationError, TransientError
from destination_iterable.messages import LineReader
from destination_iterable.output import emit_json
from destination_iterable.writer import write_messages

logger = logging.getLogger("airbyte")


def spec_problem(config: Any, schema: Mapping[str, Any]) -> str | None:
    """The first way `config` breaks the spec, as a sentence that names the setting (never its value)."""
    if not isinstance(config, dict):
        return "The configuration must be a JSON object."
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
        "exclusiveMinimum": f"must be greater than {error.validator_value}",
        "minLength": "must not be empty",
    }.get(str(error.validator), "is not valid")
    return f"Setting '{name}' {expected}. Fix it in the destination's settings."


def to_traced(exc: IterableDestinationError) -> AirbyteTracedException:
    """Map our typed errors to Airbyte failure types (config / transient / system)."""
    if isinstance(exc, AuthError):
        exc = ConfigError(f"{exc.message}. Use a Server-side API key of the Iterable project, for the data center "
                          "it belongs to.", stream=exc.stream)
    if isinstance(exc, ConfigError):
        failure = FailureType.config_error
    elif isinstance(exc, TransientError):
        failure = FailureType.transient_error
    else:
        failure = FailureType.system_error
    descriptor = StreamDescriptor(name=exc.stream) if exc.stream else None
    return AirbyteTracedException(message=exc.message, internal_message=exc.message, failure_type=failure,
                                  stream_descriptor=descriptor)


class DestinationIterable(Destination):
    """Keeps one Iterable static list per stream (segment)."""

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Never raises: FAILED with a readable message, or SUCCEEDED."""
        ok, message = check_connection(config)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if ok else Status.FAILED, message=message)

    def write(self, config: Mapping[str, Any], configured_catalog: ConfiguredAirbyteCatalog,
              input_messages: Iterable[AirbyteMessage]) -> Iterable[AirbyteMessage]:
        """CDK API path (used when called in-process). The CLI uses the faster `run` path below."""
        settings = parse_config(config)
        catalog = ConfiguredAirbyteCatalogSerializer.dump(configured_catalog)
        specs = streams_from_catalog(catalog, settings)
        lines = (orjson.dumps(AirbyteMessageSerializer.dump(m)) for m in input_messages)
        chunks = ([line] for line in lines)
        for state in write_messages(settings, specs, chunks):
            yield AirbyteMessageSerializer.load(state)

    def run(self, args: list[str]) -> None:
        """CLI entry point; `write` bypasses the CDK's per-message objects and keeps the state `id`."""
        init_uncaught_exception_handler(logger)
        parsed = self.parse_args(args)
        if parsed.command == "spec":
            super().run(args)
            return
        try:
            if parsed.command == "check":
                self._run_check_cli(parsed.config)
            else:
                self._run_write_fast(parsed.config, parsed.catalog)
        except AirbyteTracedException as traced:
            self._fail(traced)
        except IterableDestinationError as exc:
            self._fail(to_traced(exc))

    def _read_config(self, config_path: str) -> tuple[dict[str, Any], str | None]:
        """Read the config, register its secrets for masking, and validate it against the spec."""
        try:
            raw_config = self.read_config(config_path=config_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"The config file could not be read as a JSON object ({type(exc).__name__}).") from None
        spec = self.spec(logger)
        if isinstance(raw_config, dict):
            update_secrets([s for s in get_secrets(spec.connectionSpecification, raw_config) if isinstance(s, str)])
        return raw_config, spec_problem(raw_config, spec.connectionSpecification)

    def _run_check_cli(self, config_path: str) -> None:
        try:
            raw_config, problem = self._read_config(config_path)
        except ConfigError as exc:
            raw_config, problem = {}, exc.message
        status = AirbyteConnectionStatus(status=Status.FAILED, message=problem) if problem else \
            self.check(logger, raw_config)
        emit_json(AirbyteMessageSerializer.dump(AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=status)))

    def _run_write_fast(self, config_path: str, catalog_path: str) -> None:
        raw_config, problem = self._read_config(config_path)
        if problem:
            raise ConfigError(problem)
        config = parse_config(raw_config)
        try:
            with open(catalog_path, "rb") as handle:
                catalog = orjson.loads(handle.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"The configured catalog file could not be read ({type(exc).__name__}).") from None
        specs = streams_from_catalog(catalog, config)
        term = _install_sigterm()
        logger.info("Begin writing to the destination...")
        for state in write_messages(config, specs, LineReader(sys.stdin.buffer).chunks(), term=term):
            emit_json(state)
        logger.info("Writing complete.")

    @staticmethod
    def _fail(traced: AirbyteTracedException) -> None:
        logger.error(traced.message or "The sync failed.")
        traced.emit_message()
        PRINT_BUFFER.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        # Exit now: a sender thread may still hang on a request that never answers (after SIGTERM, say);
        # everything acknowledged has been echoed, so nothing is lost by not waiting for it.
        os._exit(1)


def _install_sigterm() -> threading.Event:
    term = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: term.set())
    return term
