"""The `write` command without airbyte-cdk: the CDK import alone costs ~1.5 s of CPU and ~85 MB at start-up.

`python main.py write --config C --catalog K < input` parses its arguments like the CDK's destination,
logs and fails like the CDK (Airbyte JSON on stdout, secrets masked, TRACE errors), and streams stdin
through `write_messages`, echoing each STATE once it is safe.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import orjson

from destination_iterable.airbyte_logging import install_excepthook, setup_logging
from destination_iterable.catalog import streams_from_catalog
from destination_iterable.config import parse_config
from destination_iterable.config_file import load_config
from destination_iterable.errors import ConfigError, IterableDestinationError
from destination_iterable.failures import fail, failure_from_error
from destination_iterable.messages import LineReader
from destination_iterable.output import emit_json
from destination_iterable.writer import write_messages

logger = logging.getLogger("airbyte")


def parse_args(args: list[str]) -> argparse.Namespace:
    """The CDK destination's command line (same usage, help and errors)."""
    parent_parser = argparse.ArgumentParser(add_help=False)
    main_parser = argparse.ArgumentParser()
    subparsers = main_parser.add_subparsers(title="commands", dest="command")
    subparsers.add_parser("spec", help="outputs the json configuration specification", parents=[parent_parser])
    check_parser = subparsers.add_parser("check", help="checks the config can be used to connect",
                                         parents=[parent_parser])
    check_required = check_parser.add_argument_group("required named arguments")
    check_required.add_argument("--config", type=str, required=True, help="path to the json configuration file")
    write_parser = subparsers.add_parser("write", help="Writes data to the destination", parents=[parent_parser])
    write_required = write_parser.add_argument_group("required named arguments")
    write_required.add_argument("--config", type=str, required=True, help="path to the JSON configuration file")
    write_required.add_argument("--catalog", type=str, required=True,
                                help="path to the configured catalog JSON file")
    parsed = main_parser.parse_args(args)
    if not parsed.command:
        raise Exception("No command entered. ")  # the CDK's own error
    return parsed


def install_sigterm() -> threading.Event:
    """SIGTERM sets the returned event (the write stops cleanly); only possible on the main thread."""
    term = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: term.set())
    return term


def write(config_path: str, catalog_path: str) -> None:
    """Validate the config, read the catalog, stream stdin to Iterable and echo STATE messages."""
    raw_config, problem = load_config(config_path)
    if problem:
        raise ConfigError(problem)
    config = parse_config(raw_config)
    try:
        with open(catalog_path, "rb") as handle:
            catalog = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"The configured catalog file could not be read ({type(exc).__name__}).") from None
    specs = streams_from_catalog(catalog, config)
    term = install_sigterm()
    logger.info("Begin writing to the destination...")
    for state in write_messages(config, specs, LineReader(sys.stdin.buffer).chunks(), term=term):
        emit_json(state)
    logger.info("Writing complete.")


def main(args: list[str]) -> None:
    """Run `write` with `args` (the argv after the program name); exits 1 with a TRACE on failure."""
    setup_logging()
    install_excepthook(logger)
    parsed = parse_args(args)
    if parsed.command != "write":
        raise ValueError(f"cli_write runs only the write command, not {parsed.command!r}.")
    try:
        write(parsed.config, parsed.catalog)
    except IterableDestinationError as exc:
        fail(failure_from_error(exc))
