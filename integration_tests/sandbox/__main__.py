"""CLI: ``python -m integration_tests.sandbox --port PORT --api-key KEY [knobs]``."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from typing import Any

from .config import KNOBS, KnobError
from .server import SandboxServer

# The sandbox models Iterable's latency with its knobs only; its own garbage collector must not add to it. Its
# heap is mostly long-lived members (a million ``User`` objects after a 1 M-record sync), and a full collection
# walks every one of them: 0.2-0.44 s near 1 M members, every 1.5-8 s, with every thread stopped. That froze the
# rate limiter and the handlers, bunched arrivals at the limiter (429s on a window) and delayed answers.
# ``gc.freeze()`` moves what is alive out of the collector's sight, so a collection walks only what came since.
# Members hold no reference cycles, so removed ones are still freed at once by reference counting.
FREEZE_EVERY_S = 0.5


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


def serve_until(stop: threading.Event, every: float = FREEZE_EVERY_S) -> None:
    """Wait for ``stop``, moving what is alive out of the garbage collector's sight every ``every`` seconds."""
    while not stop.wait(every):
        gc.freeze()


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
    serve_until(stop)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
