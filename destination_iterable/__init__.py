"""Airbyte destination that keeps Iterable static lists in sync with audience segments."""

__version__ = "0.2.5"

from destination_iterable.airbyte.destination import DestinationIterable  # noqa: E402 - needs __version__ first

__all__ = ["DestinationIterable", "__version__"]
