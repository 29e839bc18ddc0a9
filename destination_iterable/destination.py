"""Airbyte glue: the DestinationIterable connector (spec, check, write)."""

from __future__ import annotations

import logging
import os
import sys
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
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_iterable.catalog import streams_from_catalog
from destination_iterable.check import check_connection
from destination_iterable.config import parse_config
from destination_iterable.config_file import load_config, spec_problem
from destination_iterable.errors import ConfigError, IterableDestinationError
from destination_iterable.failures import failure_from_error
from destination_iterable.masking import registered_secrets
from destination_iterable.output import emit_json
from destination_iterable.writer import write_messages

__all__ = ["DestinationIterable", "spec_problem", "to_traced"]

logger = logging.getLogger("airbyte")


def to_traced(exc: IterableDestinationError) -> AirbyteTracedException:
    """Map our typed errors to Airbyte failure types (config / transient / system), see failures.py."""
    failure = failure_from_error(exc)
    descriptor = StreamDescriptor(name=failure.stream) if failure.stream else None
    return AirbyteTracedException(message=failure.message, internal_message=failure.internal_message,
                                  failure_type=FailureType(failure.failure_type), stream_descriptor=descriptor)


class DestinationIterable(Destination):
    """Keeps one Iterable static list per stream (segment)."""

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Never raises: FAILED with a readable message, or SUCCEEDED."""
        ok, message = check_connection(config)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if ok else Status.FAILED, message=message)

    def write(self, config: Mapping[str, Any], configured_catalog: ConfiguredAirbyteCatalog,
              input_messages: Iterable[AirbyteMessage]) -> Iterable[AirbyteMessage]:
        """CDK API path (used when called in-process). The CLI runs cli_write, without the CDK's objects."""
        settings = parse_config(config)
        catalog = ConfiguredAirbyteCatalogSerializer.dump(configured_catalog)
        specs = streams_from_catalog(catalog, settings)
        lines = (orjson.dumps(AirbyteMessageSerializer.dump(m)) for m in input_messages)
        chunks = ([line] for line in lines)
        for state in write_messages(settings, specs, chunks):
            yield AirbyteMessageSerializer.load(state)

    def run(self, args: list[str]) -> None:
        """CLI entry point. `write` runs the CDK-free command (cli_write), which keeps the state `id`."""
        init_uncaught_exception_handler(logger)
        parsed = self.parse_args(args)
        if parsed.command == "write":
            from destination_iterable.cli_write import main as write_main

            write_main(args)
            return
        if parsed.command == "spec":
            super().run(args)
            return
        try:
            self._run_check_cli(parsed.config)
        except AirbyteTracedException as traced:
            self._fail(traced)
        except IterableDestinationError as exc:
            self._fail(to_traced(exc))

    @staticmethod
    def _read_config(config_path: str) -> tuple[dict[str, Any], str | None]:
        """Read the config, register its secrets for masking (ours and the CDK's), and validate it."""
        raw_config, problem = load_config(config_path)
        update_secrets(registered_secrets())
        return dict(raw_config), problem

    def _run_check_cli(self, config_path: str) -> None:
        try:
            raw_config, problem = self._read_config(config_path)
        except ConfigError as exc:
            raw_config, problem = {}, exc.message
        status = AirbyteConnectionStatus(status=Status.FAILED, message=problem) if problem else \
            self.check(logger, raw_config)
        PRINT_BUFFER.flush()  # the CDK's buffered log lines first, then the status
        emit_json(AirbyteMessageSerializer.dump(AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=status)))

    @staticmethod
    def _fail(traced: AirbyteTracedException) -> None:
        logger.error(traced.message or "The sync failed.")
        PRINT_BUFFER.flush()
        traced.emit_message()
        sys.stdout.flush()
        sys.stderr.flush()
        # Exit now: a sender thread may still hang on a request that never answers (after SIGTERM, say);
        # everything acknowledged has been echoed, so nothing is lost by not waiting for it.
        os._exit(1)
