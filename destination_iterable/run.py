"""Console script entry point: `destination-iterable spec|check|write`.

`write` runs without importing airbyte-cdk (see cli_write); `spec` and `check` run through the CDK.
"""

from __future__ import annotations

import sys


def command_of(args: list[str]) -> str | None:
    """The command: the first argument that is not an option."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def run() -> None:
    """Run the connector with the process arguments."""
    args = sys.argv[1:]
    if command_of(args) == "write":
        from destination_iterable.cli_write import main

        main(args)
        return
    from destination_iterable.destination import DestinationIterable

    DestinationIterable().run(args)
