"""Our hand-written JSON Schemas vs Iterable's official definitions, and vs the hot-path checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from integration_tests.sandbox.validation import RequestError, check_bulk, check_create_list

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "integration_tests" / "sandbox" / "schemas"
OPENAPI = Path(ROOT).parent / "shared" / "iterable" / "openapi.json"
# our schema file -> (official request definition, official item definition or None)
PAIRS = {"subscribe": ("SubscribeRequest", "OptionalApiUser"), "unsubscribe": ("UnsubscribeRequest", "Unsubscriber"),
         "create_list": ("CreateListRequest", None)}

VALID = {
    "subscribe": [
        {"listId": 1, "subscribers": []},
        {"listId": 1, "subscribers": [{"email": "a@b.com"}, {"userId": "u"}, {"email": "a@b.com", "userId": "u",
                                       "dataFields": {"x": [1]}, "preferUserId": True, "mergeNestedObjects": False}],
         "updateExistingUsersOnly": True},
    ],
    "unsubscribe": [
        {"listId": 1, "subscribers": [{"email": "a@b.com"}, {"userId": "u"}], "campaignId": 5,
         "channelUnsubscribe": False},
    ],
    "create_list": [{"name": "n"}, {"name": "n", "description": "d"}],
}
INVALID_IN_BOTH = {
    "subscribe": [
        {"subscribers": []}, {"listId": 1}, {"listId": "1", "subscribers": []}, {"listId": 1.5, "subscribers": []},
        {"listId": 1, "subscribers": {}}, {"listId": 1, "subscribers": ["a@b.com"]},
        {"listId": 1, "subscribers": [{"email": 1}]}, {"listId": 1, "subscribers": [{"userId": None}]},
        {"listId": 1, "subscribers": [{"dataFields": []}]}, {"listId": 1, "subscribers": [{"preferUserId": 1}]},
        {"listId": 1, "subscribers": [{"mergeNestedObjects": "no"}]},
        {"listId": 1, "subscribers": [], "updateExistingUsersOnly": "true"}, [],
    ],
    "unsubscribe": [
        {"listId": 1}, {"listId": 1, "subscribers": [], "campaignId": "5"},
        {"listId": 1, "subscribers": [], "channelUnsubscribe": 0}, {"listId": 1, "subscribers": [{"email": 5}]},
    ],
    "create_list": [{}, {"name": 1}, {"name": "n", "description": 2}, "name"],
}
STRICTER_THAN_ITERABLE = {  # rejected by us on purpose, accepted by Iterable's schema (see docs/sandbox.md)
    "subscribe": [{"listId": 1, "subscribers": [{"email": "a@b.com", "typo": 1}]}],
    "unsubscribe": [{"listId": 1, "subscribers": [{"email": "a@b.com", "dataFields": {}}]}],
    "create_list": [{"name": "  "}, {"name": "n", "extra": True}],
}


def ours(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    if not OPENAPI.exists():
        reason = f"Iterable's OpenAPI file is not at {OPENAPI}; cannot cross-check the sandbox schemas"
        print(reason)
        pytest.skip(reason)
    return json.loads(OPENAPI.read_text())


def official_schema(spec: dict[str, Any], definition: str) -> dict[str, Any]:
    """A draft-07 schema for one Swagger 2.0 definition, its ``#/definitions/...`` refs resolvable."""
    return {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": spec["definitions"],
            "$ref": f"#/definitions/{definition}"}


def resolve_item(prop: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """The definition an array property's ``items.$ref`` points at."""
    ref = prop["items"]["$ref"].rsplit("/", 1)[-1]
    return definitions[ref]


def valid(schema: dict[str, Any], body: Any) -> bool:
    return jsonschema.Draft7Validator(schema).is_valid(body)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_our_schemas_are_valid_draft_07(name):
    jsonschema.Draft7Validator.check_schema(ours(name))


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_same_required_fields_property_names_and_types(official, name):
    request_def, item_def = PAIRS[name]
    mine, theirs = ours(name), official["definitions"][request_def]
    assert set(mine["required"]) == set(theirs["required"])
    assert set(mine["properties"]) == set(theirs["properties"])
    for field, spec in mine["properties"].items():
        assert spec["type"] == theirs["properties"][field]["type"], field
    if item_def:
        my_item = resolve_item(mine["properties"]["subscribers"], mine["definitions"])
        their_item = resolve_item(theirs["properties"]["subscribers"], official["definitions"])
        assert their_item is official["definitions"][item_def]
        assert set(my_item["properties"]) == set(their_item["properties"])
        assert set(my_item.get("required", [])) == set(their_item.get("required", []))
        for field, spec in my_item["properties"].items():
            assert spec["type"] == their_item["properties"][field]["type"], field


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_sample_bodies_agree_with_the_official_definitions(official, name):
    theirs = official_schema(official, PAIRS[name][0])
    for body in VALID[name]:
        assert valid(ours(name), body) and valid(theirs, body), body
    for body in INVALID_IN_BOTH[name]:
        assert not valid(ours(name), body) and not valid(theirs, body), body
    for body in STRICTER_THAN_ITERABLE[name]:
        assert not valid(ours(name), body) and valid(theirs, body), body


def hand_coded_accepts(name: str, body: Any) -> bool:
    try:
        if name == "create_list":
            check_create_list(body)
        else:
            check_bulk(body, name == "unsubscribe", 1000)
    except RequestError as exc:
        assert exc.code == "BadParams"
        return False
    return True


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_hot_path_checks_match_our_schemas(name):
    for body in VALID[name] + INVALID_IN_BOTH[name] + STRICTER_THAN_ITERABLE[name] + [
            {"listId": True, "subscribers": []}, {"listId": 1, "subscribers": [{}]},
            {"name": "x", "description": None}]:
        assert hand_coded_accepts(name, body) == valid(ours(name), body), (name, body)
