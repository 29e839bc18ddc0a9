"""CLI: ``python -m integration_tests.sandbox --port PORT --api-key KEY [knobs]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from .config import KNOBS, KnobError
from .server import SandboxServer


def build_parser() -> argparse.ArgumentParser:
    """Flags for the keys, the address and every knob."""
    parser = argparse.ArgumentParser(prog="python -m integration_tests.sandbox",
                                     description="Local Iterable list-API sandbox.")
    parser.add_argument("--api-key", required=True, help="the accepted full-access key")
    parser.add_argument("--read-only-key", default=None, help="a key that may only GET")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    for knob in KNOBS:
        flag = "--" + knob.name.replace("_", "-")
        if isinstance(knob.default, bool):
            parser.add_argument(flag, dest=knob.name, action="store_true", default=None, help=knob.help)
        else:
            parser.add_argument(flag, dest=knob.name, default=None,
                                help=f"{knob.help} (default {knob.default!r})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; exit 0."""
    args = vars(build_parser().parse_args(argv))
    knobs: dict[str, Any] = {k.name: args[k.name] for k in KNOBS if args[k.name] is not None}
    try:
        server = SandboxServer(api_key=args["api_key"], read_only_key=args["read_only_key"],
                               port=args["port"], host=args["host"], **knobs)
        server.start()
    except (KnobError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"sandbox listening on {server.url}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
