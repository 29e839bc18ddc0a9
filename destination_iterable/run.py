"""Console script entry point: `destination-iterable spec|check|write`."""

import sys

from destination_iterable.destination import DestinationIterable


def run() -> None:
    """Run the connector with the process arguments."""
    DestinationIterable().run(sys.argv[1:])
