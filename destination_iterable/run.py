"""Console script entry point: `destination-iterable spec|check|write`."""

from __future__ import annotations

import sys

from destination_iterable.airbyte.destination import DestinationIterable


def run() -> None:
    """Run the connector with the process arguments."""
    DestinationIterable().run(sys.argv[1:])
