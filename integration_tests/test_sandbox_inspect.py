"""Inspection and control endpoints: lists, members, users, stats, reset, seed (incl. a million members)."""

from __future__ import annotations

import time

import requests

from integration_tests.sandbox.testing import api, create_list, subscribe, unsubscribe


def test_fixture_shape(sandbox):
    assert sandbox.url.startswith("http://127.0.0.1:")
    assert sandbox.api_key == "test-full-key-0123456789abcdef"
    assert sandbox.read_only_key == "test-readonly-key-0123456789ab"
    assert sandbox.client.url == sandbox.url


def test_lists_members_and_users(sandbox):
    list_id = create_list(sandbox, "VIP", description="top")
    subscribe(sandbox, list_id, [{"email": "b@example.com", "dataFields": {"tier": "gold"}},
                                 {"email": "a@example.com", "userId": "ua"}, {"userId": "uz"}])
    [listed] = sandbox.client.lists()
    assert listed == {"id": list_id, "name": "VIP", "listType": "Standard", "createdAt": listed["createdAt"],
                      "description": "top", "size": 3}
    assert sandbox.client.members(list_id) == [{"email": None, "userId": "uz"},
                                               {"email": "a@example.com", "userId": "ua"},
                                               {"email": "b@example.com", "userId": None}]
    assert sandbox.client.member_emails(list_id) == {"a@example.com", "b@example.com"}
    assert sandbox.client.user(email="B@example.com") == {"email": "b@example.com", "userId": None,
                                                          "dataFields": {"tier": "gold"}, "listIds": [list_id]}
    assert sandbox.client.user(user_id="ua")["email"] == "a@example.com"
    assert sandbox.client.user(email="nobody@example.com") is None
    assert requests.get(f"{sandbox.url}/_sandbox/users", params={"userId": "x"}, timeout=5).status_code == 404
    assert requests.get(f"{sandbox.url}/_sandbox/lists/1/members", timeout=5).status_code == 404


def test_deleted_lists_leave_the_inspection_view(sandbox):
    keep, gone = create_list(sandbox, "keep"), create_list(sandbox, "gone")
    api(sandbox, "DELETE", f"/api/lists/{gone}")
    assert [item["id"] for item in sandbox.client.lists()] == [keep]
    assert sandbox.client.list_by_name("gone") == []


def test_stats_use_route_templates(sandbox):
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": "a@example.com"}, {"email": "b@example.com"}])
    unsubscribe(sandbox, list_id, [{"email": "a@example.com"}], channelUnsubscribe=True)
    api(sandbox, "GET", f"/api/lists/{list_id}/size")
    api(sandbox, "GET", "/api/lists", key="bad")
    stats = sandbox.client.stats()
    assert stats["requests"] == {"POST /api/lists": {"200": 1}, "POST /api/lists/subscribe": {"200": 1},
                                 "POST /api/lists/unsubscribe": {"200": 1}, "GET /api/lists/{id}/size": {"200": 1},
                                 "GET /api/lists": {"401": 1}}
    assert stats["subscribers_received"] == 3 and stats["rate_limited"] == 0
    assert stats["channel_unsubscribes"] == 1 and stats["peak_concurrency"] == 1
    assert stats["faults"] == {"errors": 0, "drops": 0, "applied_then_dropped": 0, "get_users_503": 0}


def test_reset_forgets_everything_but_keys_and_knobs(sandbox):
    sandbox.client.set_config(subscribe_rps=1, forgotten_emails=["f@example.com"])
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {"n": 1}}])
    assert api(sandbox, "POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": []}).status_code == 429
    sandbox.client.reset()
    assert sandbox.client.lists() == [] and sandbox.client.user(email="a@example.com") is None
    assert sandbox.client.stats()["requests"] == {} and sandbox.client.timeline()["buckets"] == []
    assert sandbox.client.config()["subscribe_rps"] == 1
    new_id = create_list(sandbox)
    assert new_id > list_id  # ids are never reused
    body = subscribe(sandbox, new_id, [{"email": "a@example.com", "dataFields": {"n": "text now"}}])  # bucket refilled
    assert body["successCount"] == 1  # field types were forgotten too
    assert api(sandbox, "GET", "/api/lists", key="nope").status_code == 401


def test_seed_members_types_and_created_at(sandbox):
    ids = sandbox.client.seed([
        {"name": "seeded", "createdAt": 1624575876355, "description": "d",
         "members": [{"email": "A@Example.com", "dataFields": {"x": 1}}, {"userId": "u1"},
                     {"email": "b@example.com", "userId": "u2"}]},
        {"name": "supp", "listType": "Suppression", "members": [{"email": "a@example.com"}]},
    ])
    lists = api(sandbox, "GET", "/api/lists").json()["lists"]
    assert [item["id"] for item in lists] == ids
    assert lists[0]["createdAt"] == 1624575876355 and lists[1]["listType"] == "Suppression"
    assert sandbox.client.user(email="a@example.com")["listIds"] == ids
    assert sandbox.client.user(email="a@example.com")["dataFields"] == {"x": 1}
    assert len(sandbox.client.members(ids[0])) == 3


def test_seed_rejects_bad_bodies(sandbox):
    for bad in ({"lists": "x"}, {"lists": [{"name": 1}]}, {"lists": [{"name": "a", "listType": "Weird"}]},
                {"lists": [{"name": "a", "generate": {"count": 5, "email_pattern": "fixed@example.com"}}]},
                {"lists": [{"name": "a", "members": [{}]}]}):
        resp = requests.post(f"{sandbox.url}/_sandbox/seed", json=bad, timeout=5)
        assert resp.status_code == 400, bad


def test_seed_generate_with_user_ids(sandbox):
    [list_id] = sandbox.client.seed([{"name": "g", "generate": {
        "count": 3, "email_pattern": "p{i}@example.com", "user_id_pattern": "id-{i}", "start": 10}}])
    assert sandbox.client.members(list_id) == [{"email": f"p{i}@example.com", "userId": f"id-{i}"}
                                               for i in (10, 11, 12)]


def test_seed_generates_a_million_members_quickly(sandbox):
    began = time.monotonic()
    [list_id] = sandbox.client.seed([{"name": "huge", "generate": {"count": 1_000_000,
                                                                   "email_pattern": "member{i}@example.com"}}])
    assert time.monotonic() - began < 10
    assert api(sandbox, "GET", f"/api/lists/{list_id}/size").text == "1000000"
    body = subscribe(sandbox, list_id, [{"email": "member999999@example.com"}, {"email": "new@example.com"}])
    assert body["successCount"] == 2
    assert unsubscribe(sandbox, list_id, [{"email": "member0@example.com"}])["successCount"] == 1
    assert [item["size"] for item in sandbox.client.lists()] == [1_000_000]
