"""Airbyte destination that keeps Iterable static lists in sync with audience segments."""

__version__ = "0.1.0"

__all__ = ["DestinationIterable", "__version__"]


def __getattr__(name: str):  # lazy, so that light modules (identity, rate) import without airbyte-cdk
    if name == "DestinationIterable":
        from destination_iterable.destination import DestinationIterable

        return DestinationIterable
    raise AttributeError(name)
