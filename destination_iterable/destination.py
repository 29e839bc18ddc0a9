"""Airbyte glue: the DestinationIterable connector (spec, check, write)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from airbyte_cdk.destinations import Destination
from airbyte_cdk.exception_handler import init_uncaught_exception_handler
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
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit
from airbyte_cdk.utils.airbyte_secrets_utils import get_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_iterable.catalog import streams_from_catalog
from destination_iterable.check import check_connection
from destination_iterable.config import parse_config
from destination_iterable.errors import AuthError, ConfigError, IterableDestinationError, TransientError
from destination_iterable.messages import LineReader, emit_json
from destination_iterable.writer import write_messages

logger = logging.getLogger("airbyte")


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
        if parsed.command != "write":
            super().run(args)
            return
        try:
            self._run_write_fast(parsed.config, parsed.catalog)
        except AirbyteTracedException as traced:
            self._fail(traced)
        except IterableDestinationError as exc:
            self._fail(to_traced(exc))

    def _run_write_fast(self, config_path: str, catalog_path: str) -> None:
        raw_config = self.read_config(config_path=config_path)
        spec = self.spec(logger)
        update_secrets(get_secrets(spec.connectionSpecification, raw_config))
        check_config_against_spec_or_exit(raw_config, spec)
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
        sys.exit(1)


def _install_sigterm() -> threading.Event:
    term = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: term.set())
    return term
