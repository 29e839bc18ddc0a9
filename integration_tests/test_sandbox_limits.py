"""Rate limits: token buckets per endpoint group, 429 without Retry-After, and the timeline."""

from __future__ import annotations

import time

import requests

from integration_tests.sandbox.testing import api, create_list

RATE_LIMITED = {"msg": "Exceeded rate limit.", "code": "RateLimitExceeded", "params": None}


def assert_429(resp: requests.Response) -> None:
    assert resp.status_code == 429
    assert resp.json() == RATE_LIMITED
    assert "Retry-After" not in resp.headers
    assert not any("ratelimit" in name.lower() for name in resp.headers)


def sub(server, list_id, path="/api/lists/subscribe"):
    return api(server, "POST", path, json={"listId": list_id, "subscribers": [{"email": "a@example.com"}]})


def test_subscribe_and_unsubscribe_share_one_bucket(sandbox_factory):
    server = sandbox_factory(subscribe_rps=1, subscribe_burst=2)
    list_id = create_list(server)
    assert sub(server, list_id).status_code == 200
    assert sub(server, list_id, "/api/lists/unsubscribe").status_code == 200
    assert_429(sub(server, list_id))
    assert_429(sub(server, list_id, "/api/lists/unsubscribe"))
    assert server.client.member_emails(list_id) == set()  # the refused subscribe changed nothing
    time.sleep(1.05)  # 1 token/s: one is back
    assert sub(server, list_id).status_code == 200
    stats = server.client.stats()
    assert stats["rate_limited"] == 2
    assert stats["requests"]["POST /api/lists/subscribe"] == {"200": 2, "429": 1}


def test_subscribe_burst_knob(sandbox_factory):
    server = sandbox_factory(subscribe_rps=1, subscribe_burst=4)
    list_id = create_list(server)
    statuses = [sub(server, list_id).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]


def test_timeline_counts_accepted_and_limited_per_second(sandbox_factory):
    server = sandbox_factory(subscribe_rps=1, subscribe_burst=3)
    list_id = create_list(server)
    statuses = [sub(server, list_id).status_code for _ in range(7)]
    assert statuses[:3] == [200, 200, 200] and statuses.count(429) >= 2
    timeline = server.client.timeline()
    assert timeline["subscribe_rps"] == 1 and timeline["start"] > 1_600_000_000
    assert sum(b["ok"] for b in timeline["buckets"]) == statuses.count(200)
    assert sum(b["rate_limited"] for b in timeline["buckets"]) == statuses.count(429)
    assert [b["t"] for b in timeline["buckets"]] == list(range(len(timeline["buckets"])))


def test_unlimited_by_default(sandbox_factory):
    server = sandbox_factory()
    list_id = create_list(server)
    assert all(sub(server, list_id).status_code == 200 for _ in range(30))
    assert server.client.config()["subscribe_rps"] == 0


def test_get_users_and_size_allow_5_per_minute_each(sandbox_factory):
    server = sandbox_factory()  # Iterable's documented limits are on by default
    list_id = create_list(server)
    for _ in range(5):
        assert api(server, "GET", "/api/lists/getUsers", params={"listId": list_id}).status_code == 200
    assert_429(api(server, "GET", "/api/lists/getUsers", params={"listId": list_id}))
    for _ in range(5):  # separate bucket
        assert api(server, "GET", f"/api/lists/{list_id}/size").status_code == 200
    assert_429(api(server, "GET", f"/api/lists/{list_id}/size"))
    assert api(server, "GET", "/api/lists").status_code == 200


def test_lists_read_and_list_write_buckets(sandbox_factory):
    server = sandbox_factory(lists_read_rps=3, list_write_rps=2)
    reads = [api(server, "GET", "/api/lists") for _ in range(6)]
    assert [resp.status_code for resp in reads[:3]] == [200, 200, 200]
    assert_429(next(resp for resp in reads if resp.status_code != 200))
    first = create_list(server)
    api(server, "DELETE", f"/api/lists/{first}")
    creates = [api(server, "POST", "/api/lists", json={"name": "x"}) for _ in range(3)]
    assert_429(next(resp for resp in creates if resp.status_code != 200))
    assert len(server.client.lists()) == sum(resp.status_code == 200 for resp in creates)


def test_limits_can_change_at_run_time(sandbox):
    list_id = create_list(sandbox)
    sandbox.client.set_config(subscribe_rps=1)
    assert sub(sandbox, list_id).status_code == 200
    assert_429(sub(sandbox, list_id))
    sandbox.client.set_config(subscribe_rps=0)
    assert sub(sandbox, list_id).status_code == 200


def test_rate_limit_checked_after_auth(sandbox_factory):
    server = sandbox_factory(subscribe_rps=1)
    list_id = create_list(server)
    for _ in range(3):
        resp = api(server, "POST", "/api/lists/subscribe", key="nope", json={"listId": list_id, "subscribers": []})
        assert resp.status_code == 401
    assert sub(server, list_id).status_code == 200
