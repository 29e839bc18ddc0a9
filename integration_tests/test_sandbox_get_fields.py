"""The sandbox's GET /api/users/getFields: standard fields, type-locked dataFields, seeding, and discover on top."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from destination_iterable.airbyte.discover import NEW_LIST_OBJECT_NAME, build_destination_catalog
from integration_tests.sandbox.state import STANDARD_FIELDS
from integration_tests.sandbox.testing import api, create_list, subscribe


def get_fields(server: Any, **kwargs: Any) -> dict[str, str]:
    resp = api(server, "GET", "/api/users/getFields", **kwargs)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"fields"}
    return body["fields"]


def seed(server: Any, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/_sandbox/seed", json=body, timeout=15)


def test_a_new_project_reports_the_standard_fields(sandbox):
    fields = get_fields(sandbox)
    assert fields == {**STANDARD_FIELDS, "userListIds": "long"}  # hybrid by default
    assert fields["email"] == "string" and fields["userId"] == "string" and fields["signupDate"] == "date"
    assert all(isinstance(kind, str) for kind in fields.values())


@pytest.mark.parametrize(("project_type", "list_field"), [("email", "emailListIds"), ("userid", "userListIds")])
def test_the_list_membership_field_follows_the_project_type(sandbox_factory, project_type, list_field):
    server = sandbox_factory(port=0, project_type=project_type)
    fields = get_fields(server)
    other = "userListIds" if list_field == "emailListIds" else "emailListIds"
    assert fields[list_field] == "long" and other not in fields


def test_data_fields_sent_with_subscribe_are_reported_with_their_locked_type(sandbox):
    list_id = create_list(sandbox, "fields")
    subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {
        "plan": "gold", "ltv": 12.5, "visits": 3, "vip": True, "address": {"city": "Lyon", "zip": 69001},
        "tags": ["a", "b"], "birthday": "1990-04-05"}}])
    fields = get_fields(sandbox)
    assert {name: fields[name] for name in ("plan", "ltv", "visits", "vip", "address", "address.city", "address.zip",
                                            "tags", "birthday")} == {
        "plan": "string", "ltv": "double", "visits": "long", "vip": "boolean", "address": "object",
        "address.city": "string", "address.zip": "long", "tags": "array", "birthday": "date"}


def test_the_first_type_wins_and_a_mismatch_does_not_change_it(sandbox):
    list_id = create_list(sandbox, "fields")
    subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {"score": 3}}])
    result = subscribe(sandbox, list_id, [{"email": "b@example.com", "dataFields": {"score": "high"}}])
    assert result["failCount"] == 1
    assert get_fields(sandbox)["score"] == "long"


def test_tests_can_seed_fields_and_seeded_members_lock_theirs(sandbox):
    resp = seed(sandbox, {"fields": {"Lifetime Value": "double", "defaultAddress.street": "string",
                                     "location": "geo_location"}})
    assert resp.status_code == 200 and resp.json() == {
        "listIds": [], "fields": ["Lifetime Value", "defaultAddress.street", "location"]}
    resp = seed(sandbox, {"fields": {"tier": "string"},
                          "lists": [{"name": "seeded", "members": [{"email": "c@example.com",
                                                                    "dataFields": {"age": 41}}]}]})
    assert resp.status_code == 200 and len(resp.json()["listIds"]) == 1 and resp.json()["fields"] == ["tier"]
    fields = get_fields(sandbox)
    assert fields["Lifetime Value"] == "double" and fields["location"] == "geo_location"
    assert fields["defaultAddress"] == "object" and fields["defaultAddress.street"] == "string"
    assert fields["tier"] == "string" and fields["age"] == "long"

    list_id = create_list(sandbox, "typed")
    result = subscribe(sandbox, list_id, [{"email": "d@example.com", "dataFields": {"Lifetime Value": "lots"}}])
    assert result["failCount"] == 1  # the seeded type is enforced like a locked one


@pytest.mark.parametrize("body", [{"fields": ["plan"]}, {"fields": {"plan": "text"}}, {"fields": {"a..b": "string"}}])
def test_bad_field_seeds_are_refused(sandbox, body):
    resp = seed(sandbox, body)
    assert resp.status_code == 400 and resp.json()["code"] == "BadParams"


def test_reset_forgets_the_fields(sandbox):
    seed(sandbox, {"fields": {"plan": "string"}})
    sandbox.client.reset()
    assert "plan" not in get_fields(sandbox)


def test_keys_faults_and_stats_apply_as_on_every_api_route(sandbox):
    assert api(sandbox, "GET", "/api/users/getFields", key=None).status_code == 401
    assert api(sandbox, "GET", "/api/users/getFields", key="wrong").status_code == 401
    assert get_fields(sandbox, key=sandbox.read_only_key)["email"] == "string"  # a GET: read-only keys may call it
    assert api(sandbox, "POST", "/api/users/getFields").status_code == 404
    sandbox.set_config(error_rate=1.0)
    assert api(sandbox, "GET", "/api/users/getFields").status_code >= 500
    sandbox.set_config(error_rate=0.0)
    assert "GET /api/users/getFields" in str(sandbox.client.stats())


def test_discover_builds_operations_from_the_sandbox_answers(sandbox):
    seed(sandbox, {"fields": {"plan": "string", "ltv": "double"},
                   "lists": [{"name": "VIP", "listType": "Standard", "createdAt": 2},
                             {"name": "VIP", "listType": "Standard", "createdAt": 1},
                             {"name": "Engaged", "listType": "Dynamic"},
                             {"name": "Suppressed", "listType": "Suppression"}]})
    lists = api(sandbox, "GET", "/api/lists").json()["lists"]
    catalog = build_destination_catalog(lists, get_fields(sandbox), "hybrid")
    assert sorted({op.object_name for op in catalog.operations}) == sorted([NEW_LIST_OBJECT_NAME, "VIP"])
    oldest = min((entry for entry in lists if entry["name"] == "VIP"), key=lambda e: (e["createdAt"], e["id"]))
    append = next(op for op in catalog.operations if op.object_name == "VIP" and op.sync_mode.value == "append")
    assert f"(id {oldest['id']})" in append.json_schema["description"]
    assert set(append.json_schema["properties"]) == {"email", "userId", "plan", "ltv"}
    assert append.matching_keys == [["email"], ["userId"]]
