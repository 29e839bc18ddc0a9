"""Protocol output: every line the connector writes to stdout goes through here (no airbyte-cdk import).

One lock keeps whole lines from different threads apart, and every line is flushed at once, so log lines
and protocol messages reach the platform in the order they were made.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import orjson

_LOCK = threading.Lock()


def write_line(text: str) -> None:
    """Write one line (without its newline) to stdout and flush it."""
    with _LOCK:
        stream = sys.stdout
        stream.write(text + "\n")
        stream.flush()


def emit_json(message: dict[str, Any]) -> None:
    """Write one protocol message to stdout, in order with the log lines."""
    write_line(orjson.dumps(message).decode())
