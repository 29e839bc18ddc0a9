"""StreamSink.add's inlined fast path must give exactly what the general path (SubscriberBuilder) gives."""

import datetime as dt
import random
import threading
from decimal import Decimal

import pytest

from destination_iterable.lists import ListHandle
from destination_iterable.report import ListReport
from destination_iterable.sink import StreamSink, StreamSpec
from destination_iterable.subscriber import SubscriberBuilder

EMAILS = [
    "a@example.com", " Mixed.Case@Example.ORG ", "x+tag@mail.company.io", "dots..bad@example.com", ".lead@example.com",
    "trail.@example.com", "no-at-sign", "two@@example.com", "a@b", "a@example.unknowntld", "a@-bad.com",
    "a@bad-.com", "a@exa_mple.com", "ü@example.com", "a@exämple.de", "a@[127.0.0.1]", "", "   ", None, 42, True,
    "a" * 64 + "@example.com", "a" * 65 + "@example.com", "b@" + "x" * 63 + ".com", "b@" + "x" * 64 + ".com",
    "tab\t@example.com", "quote\"@example.com", "x@example.com.", "x@sub.example.co.uk", "X@EXAMPLE.COM",
    "hy-phen@my-domain.com", "Upper.Local@example.com", " padded@example.com\n", "a@a.a.a.a.a.com",
    "weird!#$%&'*+/=?^_`{|}~@example.com", "x@localhost",
]
VALUES = ["text", "", None, True, False, 0, 7, 2**70, 1.5, float("nan"), Decimal("1.20"), dt.date(2024, 1, 2),
          [1, 2], {"nested": {"deep": 1}}, b"\x00\x01", ("t",)]


def make_sink(data_fields: tuple[str, ...], mode: str = "append", *, general: bool = False) -> StreamSink:
    builder = SubscriberBuilder("email", None, data_fields)
    spec = StreamSpec("s", None, mode)
    sink = StreamSink(spec, ListHandle(name="s", list_id=1, created=False), ListReport(stream="s", list_name="s"),
                      builder, client=None, dry_run=True, update_existing_users_only=False, stop=threading.Event())
    if general:  # force the general path: identity() and add_row()
        sink._email_key = None
        sink._flat = None
    return sink


def records(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data: dict = {"email": rng.choice(EMAILS)}
        for name in ("first_name", "plan", "score", "extra"):
            if rng.random() < 0.8:
                data[name] = rng.choice(VALUES)
        if rng.random() < 0.05:
            data["_ab_cdc_deleted_at"] = rng.choice([None, "2024-01-01T00:00:00Z"])
        if rng.random() < 0.02:
            data = rng.choice([[], "not a dict", None])  # type: ignore[assignment]
        out.append(data)
    return out


def run(sink: StreamSink, inputs: list) -> list:
    taken = []
    for seq, data in enumerate(inputs):
        if sink.add(data, seq, 100, 0.0):
            taken.extend(sink.take_jobs())
    taken.extend(sink.take_jobs())
    return [(job.kind, job.rows, job.keys, job.min_seq) for job in taken]


@pytest.mark.parametrize("mode", ["append", "soft_delete"])
@pytest.mark.parametrize("fields", [(), ("first_name",), ("first_name", "plan", "score"), ("plan", "missing")])
def test_fast_path_equals_general_path(fields: tuple[str, ...], mode: str) -> None:
    inputs = records(seed=len(fields) * 7 + len(mode), count=5000)
    fast, general = make_sink(fields, mode), make_sink(fields, mode, general=True)
    assert fast._email_key == "email" and fast._flat == fields  # the fast path is really taken
    assert run(fast, inputs) == run(general, inputs)
    assert fast.report.skipped == general.report.skipped
    assert fast.report.records_read == general.report.records_read == len(inputs)
    assert sum(fast.report.skipped.values()) > 0  # the inputs exercise the reject paths too


def test_nested_or_all_fields_use_the_general_selector() -> None:
    assert make_sink(("a.b",))._flat is None
    assert make_sink(("*",))._flat is None
    assert make_sink(("a", "a.b"))._flat == ("a",)  # a nested name under a selected one is sent with it
