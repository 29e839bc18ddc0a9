"""The console entry point: arguments pass through, and the import-time heap is frozen before the run."""

from __future__ import annotations

import gc
import sys

import pytest

from destination_iterable import run as entry
from destination_iterable.airbyte.destination import DestinationIterable


def test_run_freezes_the_import_heap_and_passes_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    def fake_run(self: DestinationIterable, args: list[str]) -> None:
        seen["args"] = args
        seen["frozen"] = gc.get_freeze_count()

    gc.unfreeze()
    monkeypatch.setattr(DestinationIterable, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["destination-iterable", "spec"])
    try:
        entry.run()
    finally:
        gc.unfreeze()  # back to normal collection for the rest of the test session
    assert seen["args"] == ["spec"]
    assert seen["frozen"] > 10_000  # the modules' objects (airbyte-cdk alone brings ~1,200 modules)
