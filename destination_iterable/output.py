"""Protocol output: every line the connector writes to stdout goes through here."""

from __future__ import annotations

from typing import Any

import orjson
from airbyte_cdk.logger import PRINT_BUFFER


def emit_json(message: dict[str, Any]) -> None:
    """Write one protocol message to stdout, in order with the CDK's log lines."""
    PRINT_BUFFER.write(orjson.dumps(message).decode() + "\n")
    PRINT_BUFFER.flush()
