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

from destination_iterable.airbyte.catalog import streams_from_catalog, sync_id_of
from destination_iterable.airbyte.discover import build_destination_catalog, destination_catalog_message
from destination_iterable.airbyte.messages import LineReader, write_states
from destination_iterable.config import parse_config
from destination_iterable.errors import AuthError, ConfigError, IterableDestinationError, TransientError
from destination_iterable.iterable.check import check_connection
from destination_iterable.iterable.client import IterableClient
from destination_iterable.storage import RejectedRecordStore, StorageError, parse_storage_config

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


DISCOVER_RETRY_SECONDS = 60.0


def project_type(settings: Any) -> str:
    """The project kind discover offers matching keys for, from the identity settings.

    'user_id_field' set: userId-based without 'email_field', hybrid with it; otherwise email-based.
    """
    if settings.user_id_field:
        return "hybrid" if settings.email_field else "userid"
    return "email"


class DestinationIterable(Destination):
    """Keeps one Iterable static list per stream (segment)."""

    VALID_CMDS = {"spec", "check", "write", "discover"}

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Never raises: FAILED with a readable message, or SUCCEEDED. Also proves the rejected-record bucket."""
        ok, message = check_connection(config)
        if ok:
            ok, message = _check_storage(config, message)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if ok else Status.FAILED, message=message)

    def discover(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The DESTINATION_CATALOG message (data activation): one GET /api/lists and one GET /api/users/getFields."""
        try:
            settings = parse_config(config)
            client = IterableClient(settings.base_url, settings.api_key,
                                    retry_max_seconds=min(DISCOVER_RETRY_SECONDS, settings.retry_max_seconds),
                                    timeout_seconds=settings.request_timeout_seconds)
            try:
                lists = client.list_lists()
                fields = client.user_fields()
            finally:
                client.close()
        except IterableDestinationError as exc:
            raise to_traced(exc) from None
        catalog = build_destination_catalog(lists, fields, project_type(settings))
        logger.info(f"Discover: {len(catalog.operations)} operation(s) over "
                    f"{len({op.object_name for op in catalog.operations})} object(s).")
        return destination_catalog_message(catalog)

    def parse_args(self, args: list[str]) -> argparse.Namespace:
        """The CDK's commands plus `discover --config C` (airbyte-cdk 7.x has no destination discover)."""
        if args and args[0] == "discover":
            parser = argparse.ArgumentParser(prog="discover")
            parser.add_argument("--config", type=str, required=True, help="path to the JSON configuration file")
            parsed = parser.parse_args(args[1:])
            parsed.command = "discover"
            return parsed
        return super().parse_args(args)

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
            store = _open_store(config, sync_id_of(catalog), specs)
            yield from write_states(settings, specs, chunks, term=term, store=store)
        except IterableDestinationError as exc:
            raise to_traced(exc) from None

    def run_cmd(self, parsed_args: argparse.Namespace) -> Iterable[AirbyteMessage | dict[str, Any]]:
        """The CDK's commands; a config that breaks spec.json is explained by the setting's name."""
        try:
            # For discover the CDK reads the config, registers its secrets and validates it, then yields nothing.
            for message in super().run_cmd(parsed_args):
                status = message.connectionStatus if isinstance(message, AirbyteMessage) else None
                if status is not None and status.status == Status.FAILED and _is_spec_error(status.message):
                    status.message = self._spec_problem(parsed_args.config) or status.message
                yield message
            if parsed_args.command == "discover":
                yield self.discover(self.read_config(parsed_args.config))
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


def _check_storage(config: Mapping[str, Any], message: str) -> tuple[bool, str]:
    """With `object_storage_config` S3: write, list and delete a test object in the bucket."""
    try:
        storage = parse_storage_config(config)
        if storage is None:
            return True, message
        store = RejectedRecordStore(storage, None)
        try:
            ok, sentence = store.check()
        finally:
            try:
                store.close()
            except StorageError:
                pass
    except (ConfigError, StorageError) as exc:
        return False, exc.message
    except Exception as exc:  # noqa: BLE001 - check must never raise
        return False, f"The rejected-records storage check failed unexpectedly ({type(exc).__name__})."
    return ok, f"{message} {sentence}" if ok else sentence


def _open_store(config: Mapping[str, Any], sync_id: int | None, specs: list[Any]) -> RejectedRecordStore | None:
    """The rejected-record store of a write, or None when `object_storage_config` is None/absent."""
    storage = parse_storage_config(config)
    if storage is None:
        return None
    generation = next((s.generation_id for s in specs if s.generation_id is not None), None)
    return RejectedRecordStore(storage, sync_id, generation_id=generation)


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
