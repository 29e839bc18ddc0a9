"""Tests for destination_iterable.members.fields: dataFields selection and JSON-safe values."""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import enum
import json
import math
import types
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest

from destination_iterable.members import fields
from destination_iterable.members.fields import RESERVED_PREFIXES, FieldSelector, json_safe

RECORD: dict[str, Any] = {
    "email": "Jane@Example.com",
    "user_id": "u-1",
    "first_name": "Jane",
    "age": 41,
    "score": 3.5,
    "active": True,
    "nickname": None,
    "address": {"city": "Paris", "zip": "75001", "geo": {"lat": 48.8, "lon": 2.3}},
    "contact": {"email": "jane@work.example.com", "phone": "+33 1"},
    "tags": ["a", "b"],
    "_airbyte_raw_id": "abc",
    "_airbyte_extracted_at": 1700000000000,
    "_airbyte_meta": {"changes": []},
    "_ab_cdc_deleted_at": None,
}


def assert_json_safe(value: Any) -> None:
    """Both encoders accept it, and the stdlib one without NaN/Infinity."""
    orjson.dumps(value)
    json.dumps(value, allow_nan=False)


# ---------------------------------------------------------------------------------------------------------
# FieldSelector


def test_reserved_prefixes() -> None:
    assert RESERVED_PREFIXES == ("_airbyte_", "_ab_cdc_")


def test_membership_only() -> None:
    selector = FieldSelector([], [("email",)])
    assert selector.select(RECORD) is None
    assert not selector.sends_fields


def test_all_fields_excludes_identifiers_and_airbyte_fields() -> None:
    selector = FieldSelector(["*"], [("email",), ("user_id",)])
    assert selector.sends_fields
    result = selector.select(RECORD)
    assert result == {
        "first_name": "Jane",
        "age": 41,
        "score": 3.5,
        "active": True,
        "nickname": None,
        "address": RECORD["address"],
        "contact": RECORD["contact"],
        "tags": ["a", "b"],
    }
    assert_json_safe(result)


def test_all_fields_nested_identifier_excludes_nothing_at_top_level() -> None:
    selector = FieldSelector(["*"], [("contact", "email"), ()])
    result = selector.select(RECORD)
    assert result is not None
    assert "contact" in result and "user_id" in result
    assert "email" not in result, "Iterable's identifier keys are never copied into dataFields by '*'"
    assert not any(key.startswith(RESERVED_PREFIXES) for key in result)


def test_all_fields_skips_iterable_system_fields() -> None:
    selector = FieldSelector(["*"], [("email",)])
    record = {"email": "a@b.com", "emailListIds": [1], "signupDate": "x", "userId": "u", "plan": "gold"}
    assert selector.select(record) == {"plan": "gold"}


def test_all_fields_nothing_left_gives_none() -> None:
    selector = FieldSelector(["*"], [("email",)])
    assert selector.select({"email": "a@b.com", "_airbyte_raw_id": "x", "_ab_cdc_lsn": 5}) is None
    assert selector.select({}) is None


def test_all_fields_converts_values_and_keys() -> None:
    selector = FieldSelector(["*"], [("email",)])
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    result = selector.select({"n": float("nan"), "when": when, 7: "seven", "inf": -math.inf})
    assert result == {"n": None, "when": "2024-05-06T07:08:09+00:00", "7": "seven", "inf": None}
    assert_json_safe(result)


def test_all_fields_key_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields, "_MAX_DECIDED_KEYS", 2)
    selector = FieldSelector(["*"], [("email",)])
    record = {f"k{i}": i for i in range(10)} | {"email": "x", "_airbyte_raw_id": "y"}
    for _ in range(3):  # later calls use the remembered and the undecided keys alike
        assert selector.select(record) == {f"k{i}": i for i in range(10)}


def test_all_fields_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match=r"\*"):
        FieldSelector(["*", "first_name"], [("email",)])


def test_explicit_fields() -> None:
    selector = FieldSelector(["first_name", "age", "missing", "nickname"], [("email",)])
    # missing fields are not sent; a present null is sent as null
    assert selector.select(RECORD) == {"first_name": "Jane", "age": 41, "nickname": None}
    assert selector.select({"other": 1}) is None


def test_explicit_identifier_field_is_sent_as_asked() -> None:
    selector = FieldSelector(["email"], [("email",)])
    assert selector.select(RECORD) == {"email": "Jane@Example.com"}


def test_dotted_names_are_written_back_nested() -> None:
    selector = FieldSelector(["address.city", "address.geo.lat", "contact.phone", "first_name"], [("email",)])
    assert selector.select(RECORD) == {
        "address": {"city": "Paris", "geo": {"lat": 48.8}},
        "contact": {"phone": "+33 1"},
        "first_name": "Jane",
    }


def test_dotted_names_with_missing_or_non_object_parent() -> None:
    selector = FieldSelector(["address.city", "tags.first", "first_name"], [("email",)])
    assert selector.select({"address": None, "tags": ["x"], "first_name": "J"}) == {"first_name": "J"}
    assert selector.select({"address": "Paris"}) is None
    assert selector.select({"address": {"city": None}}) == {"address": {"city": None}}


def test_name_under_a_selected_parent_is_redundant() -> None:
    selector = FieldSelector(["address.city", "address", "address.geo.lat"], [("email",)])
    result = selector.select(RECORD)
    assert result == {"address": RECORD["address"]}


def test_duplicate_names_are_merged() -> None:
    selector = FieldSelector(["age", "age", "address.zip", "address.zip"], [])
    assert selector.select(RECORD) == {"age": 41, "address": {"zip": "75001"}}


@pytest.mark.parametrize(
    "names",
    [["_airbyte_raw_id"], ["first_name", "_airbyte_extracted_at"], ["_ab_cdc_deleted_at"], ["_airbyte_meta.changes"]],
)
def test_reserved_names_are_rejected(names: list[str]) -> None:
    with pytest.raises(ValueError, match="_airbyte_"):
        FieldSelector(names, [("email",)])


@pytest.mark.parametrize("names", [[""], ["a..b"], [".a"], ["a."], [None], [5]])
def test_malformed_names_are_rejected(names: list[Any]) -> None:
    with pytest.raises(ValueError, match="invalid profile field name"):
        FieldSelector(names, [("email",)])


def test_single_string_instead_of_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="list"):
        FieldSelector("first_name", [("email",)])  # type: ignore[arg-type]


def test_select_does_not_mutate_the_record() -> None:
    record = copy.deepcopy(RECORD) | {"when": dt.date(2024, 1, 2), "ratio": float("nan")}
    before = copy.deepcopy(record)
    for names in (["*"], ["address.city", "address.geo.lon", "when", "ratio"]):
        result = FieldSelector(names, [("email",)]).select(record)
        assert_json_safe(result)
        assert result is not None and result is not record
        result["added"] = 1  # the top-level dict is always a new one
    assert "added" not in record
    assert record["address"] == before["address"] and math.isnan(record["ratio"])
    assert record["when"] == before["when"]


def test_select_accepts_any_mapping() -> None:
    record = types.MappingProxyType({"a": 1, "b": types.MappingProxyType({"c": 2})})
    assert FieldSelector(["*"], []).select(record) == {"a": 1, "b": {"c": 2}}
    assert FieldSelector(["b.c"], []).select(record) == {"b": {"c": 2}}


# ---------------------------------------------------------------------------------------------------------
# json_safe


@pytest.mark.parametrize("value", ["text", "", 0, -5, 2**63 - 1, 2**64 - 1, True, False, None, 1.5, -0.0])
def test_plain_values_are_unchanged(value: Any) -> None:
    result = json_safe(value)
    assert result is value


def test_plain_containers_are_returned_as_is() -> None:
    flat = {"a": 1, "b": "x", "c": None, "d": 2.5, "e": True}
    nested = {"a": [1, 2, {"b": "c"}], "d": {"e": [None]}}
    items = [1, "a", None, [2, 3]]
    assert json_safe(flat) is flat
    assert json_safe(nested) is nested
    assert json_safe(items) is items


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_become_null(value: float) -> None:
    assert json_safe(value) is None


def test_nan_inside_containers_gives_a_converted_copy() -> None:
    data = {"a": 1, "b": [1.0, float("nan")], "c": {"d": float("inf")}, "e": "x"}
    result = json_safe(data)
    assert result == {"a": 1, "b": [1.0, None], "c": {"d": None}, "e": "x"}
    assert list(result) == ["a", "b", "c", "e"]  # key order kept
    assert math.isnan(data["b"][1]) and math.isinf(data["c"]["d"])  # input untouched
    assert_json_safe(result)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),  # naive: as is
        (dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02T03:04:05.123456"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "2024-01-02T03:04:05+00:00"),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
            "2024-01-02T03:04:05+05:30",
        ),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.time(13, 14, 15), "13:14:15"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),  # strings from JSON stay unchanged
    ],
)
def test_dates_become_iso_strings(value: Any, expected: str) -> None:
    assert json_safe(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12"), 12),
        (Decimal("-3"), -3),
        (Decimal("1E+3"), 1000),
        (Decimal("1.5"), 1.5),
        (Decimal("5.00"), 5.0),  # fractional digits: float, so a NUMERIC(x,2) column keeps one type
        (Decimal("0.1"), 0.1),
        (Decimal("NaN"), None),
        (Decimal("Infinity"), None),
        (Decimal("-Infinity"), None),
    ],
)
def test_decimals(value: Decimal, expected: Any) -> None:
    result = json_safe(value)
    assert result == expected
    assert type(result) is type(expected)


def test_bytes_become_base64() -> None:
    assert json_safe(b"\x00\xffhi") == base64.b64encode(b"\x00\xffhi").decode("ascii") == "AP9oaQ=="
    assert json_safe(bytearray(b"ab")) == "YWI="
    assert json_safe(memoryview(b"ab")) == "YWI="


def test_collections() -> None:
    assert json_safe((1, (2, 3))) == [1, [2, 3]]
    assert json_safe({3, 1, 2}) == [1, 2, 3]  # sorted when sortable
    assert sorted(json_safe(frozenset({1, "a"})), key=str) == [1, "a"]  # unsortable: any order
    ordered = json_safe(collections.OrderedDict(b=1, a=(2,)))
    assert ordered == {"b": 1, "a": [2]} and type(ordered) is dict
    assert json_safe(types.MappingProxyType({"a": 1})) == {"a": 1}
    assert json_safe({1: "a", None: "b", 2.5: "c"}) == {"1": "a", "None": "b", "2.5": "c"}


def test_enums_and_subclasses() -> None:
    class Color(enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        GOLD = 3

    class Plan(str, enum.Enum):
        PRO = "pro"

    class Ratio(float):
        pass

    assert json_safe(Color.RED) == "red"
    result = json_safe(Level.GOLD)
    assert result == 3 and type(result) is int
    result = json_safe(Plan.PRO)
    assert result == "pro" and type(result) is str
    result = json_safe(Ratio(0.5))
    assert result == 0.5 and type(result) is float
    assert json_safe(Ratio("nan")) is None
    assert json_safe({Plan.PRO: 1}) == {"pro": 1}


def test_other_objects_become_strings() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert json_safe(ident) == "12345678-1234-5678-1234-567812345678"
    assert json_safe(dt.timedelta(hours=1)) == "1:00:00"

    class Thing:
        def __str__(self) -> str:
            return "thing"

    assert json_safe([Thing()]) == ["thing"]


def test_wide_ints() -> None:
    assert json_safe(2**64) == float(2**64)
    assert json_safe(-(2**63) - 1) == float(-(2**63) - 1)
    assert json_safe(10**400) == str(10**400)  # beyond float range: keep the digits
    assert_json_safe(json_safe({"a": 2**70, "b": [10**400]}))


def test_numpy_values() -> None:
    np = pytest.importorskip("numpy")
    checks = [
        (np.int64(5), 5, int),
        (np.float64(1.5), 1.5, float),
        (np.float32(0.5), 0.5, float),
        (np.bool_(True), True, bool),
        (np.str_("x"), "x", str),
    ]
    for value, expected, tp in checks:
        result = json_safe(value)
        assert result == expected and type(result) is tp
    assert json_safe(np.float64("nan")) is None
    assert json_safe(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert json_safe(np.array([1.0, np.nan])) == [1.0, None]
    assert json_safe(np.datetime64("2024-01-02T03:04:05")) == "2024-01-02T03:04:05"
    assert json_safe(np.datetime64("NaT")) is None
    assert_json_safe(json_safe({"a": np.arange(3), "b": np.int32(7)}))


def test_pandas_missing_values() -> None:
    pd = pytest.importorskip("pandas")
    assert json_safe(pd.NaT) is None
    assert json_safe(pd.NA) is None
    assert json_safe(pd.Timestamp("2024-01-02T03:04:05Z")) == "2024-01-02T03:04:05+00:00"
