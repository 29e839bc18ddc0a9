"""Sandbox /api behaviour: auth, lists CRUD, getUsers, size and whole-request errors."""

from __future__ import annotations

import orjson
import pytest
import requests

from integration_tests.sandbox.testing import api, create_list, subscribe

BULK_KEYS = {"successCount", "failCount", "createdFields", "filteredOutFields", "invalidEmails", "invalidUserIds",
             "failedUpdates"}


# ----------------------------------------------------------------------------- auth
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_unknown_key_is_401_bad_api_key(sandbox, key):
    resp = api(sandbox, "GET", "/api/lists", key=key)
    assert resp.status_code == 401
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"msg": "Invalid API key", "code": "BadApiKey",
                           "params": {"ip": "127.0.0.1", "endpoint": "/api/lists"}}


def test_api_key_with_underscore_header_is_accepted(sandbox):
    resp = api(sandbox, "GET", "/api/lists", key=None, headers={"Api_Key": sandbox.api_key})
    assert resp.status_code == 200


def test_read_only_key_may_get_but_not_write(sandbox):
    assert api(sandbox, "GET", "/api/lists", key=sandbox.read_only_key).status_code == 200
    resp = api(sandbox, "POST", "/api/lists", key=sandbox.read_only_key, json={"name": "x"})
    assert resp.status_code == 401
    assert resp.json() == {"msg": "Disabled API key or insufficient privileges", "code": "BadApiKey",
                           "params": {"ip": "127.0.0.1", "endpoint": "/api/lists", "apiKeyType": "ReadOnly"}}
    assert sandbox.client.lists() == []


def test_privileges_are_checked_before_the_body(sandbox):
    probe = {"listId": 0, "subscribers": [], "channelUnsubscribe": False}
    ro = api(sandbox, "POST", "/api/lists/unsubscribe", key=sandbox.read_only_key, data=b"{not json")
    assert ro.status_code == 401 and ro.json()["params"]["apiKeyType"] == "ReadOnly"
    assert api(sandbox, "POST", "/api/lists", key=None, data=b"garbage").status_code == 401
    full = api(sandbox, "POST", "/api/lists/unsubscribe", json=probe)
    assert full.status_code == 400 and full.json()["msg"] == "error.lists.invalidListId(0)"
    assert api(sandbox, "DELETE", "/api/lists/1", key=sandbox.read_only_key).status_code == 401


# ----------------------------------------------------------------------------- lists
def test_create_list_get_lists_and_duplicates_allowed(sandbox):
    first = create_list(sandbox, "Weekly VIPs")
    second = create_list(sandbox, "Weekly VIPs", description="again")
    assert 100000 <= first < second
    lists = api(sandbox, "GET", "/api/lists").json()["lists"]
    assert [item["id"] for item in lists] == [first, second]
    assert set(lists[0]) == {"id", "name", "createdAt", "listType"}  # empty description omitted
    assert lists[1]["description"] == "again" and lists[1]["listType"] == "Standard"
    assert lists[0]["createdAt"] > 1_600_000_000_000
    assert len(sandbox.client.list_by_name("Weekly VIPs")) == 2


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "   "}, {}, {"name": 5}, {"name": "x", "extra": 1}])
def test_create_list_bad_params(sandbox, body):
    resp = api(sandbox, "POST", "/api/lists", json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "BadParams"
    assert sandbox.client.lists() == []


def test_delete_list(sandbox):
    list_id = create_list(sandbox)
    resp = api(sandbox, "DELETE", f"/api/lists/{list_id}")
    assert resp.status_code == 200
    assert resp.json() == {"msg": f"List {list_id} in Project 4242 was successfully deleted.", "code": "Success",
                           "params": None}
    again = api(sandbox, "DELETE", f"/api/lists/{list_id}")
    assert again.status_code == 400
    assert again.json() == {"msg": f"error.lists.invalidListId({list_id})", "code": "Success",
                            "params": {"projectId": 4242, "listId": list_id}}
    assert sandbox.client.lists() == []


def test_unknown_and_deleted_list_is_invalid_list_id_everywhere(sandbox):
    list_id = create_list(sandbox)
    api(sandbox, "DELETE", f"/api/lists/{list_id}")
    for method, path, kwargs in [
        ("POST", "/api/lists/subscribe", {"json": {"listId": list_id, "subscribers": [{"email": "a@b.com"}]}}),
        ("POST", "/api/lists/unsubscribe", {"json": {"listId": list_id, "subscribers": [{"email": "a@b.com"}]}}),
        ("GET", "/api/lists/getUsers", {"params": {"listId": list_id}}),
        ("GET", f"/api/lists/{list_id}/size", {}),
    ]:
        resp = api(sandbox, method, path, **kwargs)
        assert resp.status_code == 400, path
        assert resp.json()["msg"] == f"error.lists.invalidListId({list_id})"
        assert resp.json()["code"] == "Success"


def test_subscribing_to_a_non_static_list_is_bad_params(sandbox):
    [dynamic] = sandbox.client.seed([{"name": "dyn", "listType": "Dynamic"}])
    resp = api(sandbox, "POST", "/api/lists/subscribe", json={"listId": dynamic, "subscribers": [{"email": "a@b.com"}]})
    assert resp.status_code == 400 and resp.json()["code"] == "BadParams"
    assert "not a static list" in resp.json()["msg"]
    assert sandbox.client.members(dynamic) == []


# ----------------------------------------------------------------------------- getUsers / size
def test_get_users_is_text_plain_one_identifier_per_line(sandbox):
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": "Both@Example.com", "userId": "u-both"}, {"email": "only@example.com"},
                                 {"userId": "u-only"}])
    resp = api(sandbox, "GET", "/api/lists/getUsers", params={"listId": list_id})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert set(resp.text.split()) == {"both@example.com", "only@example.com", "u-only"}
    preferred = api(sandbox, "GET", "/api/lists/getUsers", params={"listId": list_id, "preferUserId": "true"})
    assert set(preferred.text.split()) == {"u-both", "only@example.com", "u-only"}


def test_get_users_streams_a_large_list(sandbox):
    [list_id] = sandbox.client.seed([{"name": "big", "generate": {"count": 30000}}])
    resp = api(sandbox, "GET", "/api/lists/getUsers", params={"listId": list_id})
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    lines = resp.text.splitlines()
    assert len(lines) == 30000 and len(set(lines)) == 30000 and "member29999@example.com" in lines


def test_get_users_empty_list_and_bad_list_id(sandbox):
    list_id = create_list(sandbox)
    assert api(sandbox, "GET", "/api/lists/getUsers", params={"listId": list_id}).text == ""
    for params in ({}, {"listId": "abc"}):
        resp = api(sandbox, "GET", "/api/lists/getUsers", params=params)
        assert resp.status_code == 400 and resp.json()["code"] == "BadParams" and "listId" in resp.json()["msg"]


def test_size_is_a_bare_number(sandbox):
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": f"p{n}@example.com"} for n in range(42)])
    resp = api(sandbox, "GET", f"/api/lists/{list_id}/size")
    assert resp.status_code == 200 and resp.text == "42" and resp.json() == 42


# ----------------------------------------------------------------------------- whole-request errors
def test_bad_json_body(sandbox):
    list_id = create_list(sandbox)
    for path in ("/api/lists/subscribe", "/api/lists/unsubscribe", "/api/lists"):
        resp = api(sandbox, "POST", path, data=b'{"listId": %d, "subscribers": [' % list_id)
        assert resp.status_code == 400 and resp.json()["code"] == "BadJsonBody", path


@pytest.mark.parametrize("body, field", [
    ({"subscribers": []}, "listId"),
    ({"listId": "7", "subscribers": []}, "listId"),
    ({"listId": 7.5, "subscribers": []}, "listId"),
    ({"listId": True, "subscribers": []}, "listId"),
    ({"listId": 7}, "subscribers"),
    ({"listId": 7, "subscribers": {"email": "a@b.com"}}, "subscribers"),
    ({"listId": 7, "subscribers": ["a@b.com"]}, "subscribers[0]"),
    ({"listId": 7, "subscribers": [{"email": "a@b.com"}, {"email": 5}]}, "subscribers[1].email"),
    ({"listId": 7, "subscribers": [{"userId": 12}]}, "subscribers[0].userId"),
    ({"listId": 7, "subscribers": [{"email": "a@b.com", "dataFields": []}]}, "subscribers[0].dataFields"),
    ({"listId": 7, "subscribers": [{"email": "a@b.com", "preferUserId": "yes"}]}, "subscribers[0].preferUserId"),
    ({"listId": 7, "subscribers": [{"email": "a@b.com", "emial": "x"}]}, "subscribers[0].emial"),
    ({"listId": 7, "subscribers": [], "updateExistingUsersOnly": 1}, "updateExistingUsersOnly"),
    ([1, 2], "body"),
])
def test_subscribe_schema_violations_are_bad_params_naming_the_field(sandbox, body, field):
    resp = api(sandbox, "POST", "/api/lists/subscribe", json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "BadParams"
    assert field in resp.json()["msg"]


@pytest.mark.parametrize("body, field", [
    ({"listId": 7, "subscribers": [{"email": "a@b.com", "dataFields": {}}]}, "subscribers[0].dataFields"),
    ({"listId": 7, "subscribers": [], "campaignId": "5"}, "campaignId"),
    ({"listId": 7, "subscribers": [], "channelUnsubscribe": "false"}, "channelUnsubscribe"),
])
def test_unsubscribe_schema_violations_are_bad_params(sandbox, body, field):
    resp = api(sandbox, "POST", "/api/lists/unsubscribe", json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "BadParams" and field in resp.json()["msg"]


def test_more_than_1000_subscribers_is_batch_too_large(sandbox):
    list_id = create_list(sandbox)
    rows = [{"email": f"p{n}@example.com"} for n in range(1001)]
    resp = api(sandbox, "POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": rows})
    assert resp.status_code == 400 and resp.json()["code"] == "BatchTooLarge"
    assert sandbox.client.members(list_id) == []
    assert subscribe(sandbox, list_id, rows[:1000])["successCount"] == 1000


def test_body_over_4_mb_is_413_and_the_connection_survives(sandbox):
    list_id = create_list(sandbox)
    filler = "x" * 4300
    rows = [{"email": f"p{n}@example.com", "dataFields": {"note": filler}} for n in range(1000)]
    body = orjson.dumps({"listId": list_id, "subscribers": rows})
    assert len(body) > 4 * 1024 * 1024
    with requests.Session() as session:
        resp = api(sandbox, "POST", "/api/lists/subscribe", session=session, data=body)
        assert resp.status_code == 413 and resp.json()["code"] == "BatchTooLarge"
        assert api(sandbox, "GET", "/api/lists", session=session).status_code == 200
    assert sandbox.client.members(list_id) == []


def test_body_at_the_size_limit_is_accepted(sandbox_factory):
    server = sandbox_factory(max_body_bytes=200)
    list_id = create_list(server)
    body = orjson.dumps({"listId": list_id, "subscribers": [{"email": "a@example.com"}]})
    body += b" " * (200 - len(body))
    assert api(server, "POST", "/api/lists/subscribe", data=body).status_code == 200
    assert api(server, "POST", "/api/lists/subscribe", data=body + b" ").status_code == 413


def test_unknown_paths_are_json_404(sandbox):
    for method, path in [("GET", "/api/nope"), ("PUT", "/api/lists"), ("GET", "/elsewhere"), ("GET", "/_sandbox/x")]:
        resp = api(sandbox, method, path)
        assert resp.status_code == 404, path
        assert resp.json() == {"msg": "Not found", "code": "NotFound", "params": None}


def test_odd_inputs_never_crash(sandbox):
    list_id = create_list(sandbox)
    odd = [
        ("POST", "/api/lists/subscribe", {"data": b'{"listId": 123456789012345678901234567890, "subscribers": []}'}),
        ("POST", "/api/lists/subscribe", {"data": b"\xff\xfe"}),
        ("POST", "/api/lists/subscribe", {"data": b""}),
        ("POST", "/api/lists/subscribe", {"json": {"listId": -1, "subscribers": [{"email": "\u0000@\u2028.com"}]}}),
        ("POST", "/api/lists/subscribe", {"json": {"listId": list_id, "subscribers": [
            {"email": '"' + "\\" * 60 + '@x.com'}, {"email": "a@" + "b." * 200 + "com"}, {"email": "@"},
            {"userId": "\u00e9"}, {"email": "a@[::1]", "dataFields": {"a": {"b": {"c": [1, {"d": None}]}}}}]}}),
        ("GET", "/api/lists/getUsers", {"params": {"listId": "1e3"}}),
        ("GET", "/api/lists/99999999999999999999999/size", {}),
    ]
    for method, path, kwargs in odd:
        resp = api(sandbox, method, path, **kwargs)
        assert resp.status_code < 500, (path, kwargs, resp.text)
    assert api(sandbox, "GET", "/api/lists").status_code == 200


def test_bulk_answers_have_every_bucket(sandbox):
    list_id = create_list(sandbox)
    body = subscribe(sandbox, list_id, [])
    assert set(body) == BULK_KEYS and body["successCount"] == 0 and body["failCount"] == 0
    assert sorted(body["failedUpdates"]) == sorted([
        "conflictEmails", "conflictUserIds", "forgottenEmails", "forgottenUserIds", "invalidDataEmails",
        "invalidDataUserIds", "invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds"])
    assert all(value == [] for value in body["failedUpdates"].values())
