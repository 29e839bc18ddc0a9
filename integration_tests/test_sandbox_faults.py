"""Fault knobs: errors, drops, latency, new-list window, getUsers 503s, applied-then-dropped, key echo."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from integration_tests.sandbox.testing import api, create_list, subscribe

ROW = [{"email": "a@example.com"}]


def test_error_rate_answers_5xx_before_applying(sandbox_factory):
    server = sandbox_factory(error_rate=1.0)
    for _ in range(8):
        resp = api(server, "POST", "/api/lists", json={"name": "never"})
        assert resp.status_code in (500, 502, 503, 504)
        assert resp.json()["code"] == "GenericError" and resp.json()["params"] is None
    assert server.client.lists() == []  # /_sandbox is never faulted
    assert server.client.stats()["faults"]["errors"] == 8


def test_error_rate_is_reproducible_with_a_seed(sandbox_factory):
    runs = []
    for _ in range(2):
        server = sandbox_factory(error_rate=0.5, seed=7)
        runs.append([api(server, "GET", "/api/lists").status_code for _ in range(20)])
    assert runs[0] == runs[1] and 200 in runs[0] and any(code >= 500 for code in runs[0])


def test_drop_rate_closes_the_connection_without_an_answer(sandbox_factory):
    server = sandbox_factory(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api(server, "POST", "/api/lists", json={"name": "never"})
    assert server.client.lists() == []
    stats = server.client.stats()
    assert stats["faults"]["drops"] == 1 and stats["requests"]["POST /api/lists"] == {"dropped": 1}


def test_apply_then_drop_applies_and_loses_the_answer(sandbox):
    list_id = create_list(sandbox)
    sandbox.client.set_config(apply_then_drop_rate=1.0)
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        api(sandbox, "POST", "/api/lists/subscribe", session=session, json={"listId": list_id, "subscribers": ROW})
    assert sandbox.client.member_emails(list_id) == {"a@example.com"}
    assert sandbox.client.stats()["faults"]["applied_then_dropped"] == 1
    sandbox.client.set_config(apply_then_drop_rate=0)
    assert subscribe(sandbox, list_id, ROW)["successCount"] == 1


def test_latency_is_added_to_api_answers_only(sandbox):
    sandbox.client.set_config(latency_ms=150, latency_jitter_ms=20)
    began = time.monotonic()
    api(sandbox, "GET", "/api/lists")
    assert time.monotonic() - began >= 0.15
    began = time.monotonic()
    sandbox.client.stats()
    assert time.monotonic() - began < 0.1


def test_a_pause_holds_requests_and_answers_until_it_ends(sandbox_factory):
    """``pause_every_s`` / ``pause_ms``: the API stops for 300 ms at the end of every 0.6 s, as a server's garbage
    collector stops every thread. A request that comes during a pause is answered when it ends; one that comes
    between pauses is answered at once."""
    server = sandbox_factory(pause_every_s=0.6, pause_ms=300, lists_read_rps=0)
    held, quick = [], []
    with requests.Session() as session:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            began = time.monotonic()  # before `left`: then the pause ends `left` s or more after `began`,
            left = server.faults.pause_left()  # however long this thread is held up in between
            assert api(server, "GET", "/api/lists", session=session).status_code == 200
            took = time.monotonic() - began
            if left > 0.05:
                held.append((left, took))
            elif took < 0.05:
                quick.append(took)
            time.sleep(0.03)  # so that some requests start inside a pause
    assert held and all(took >= left - 0.02 for left, took in held), held
    assert len(quick) >= 5, quick
    server.client.set_config(pause_ms=0)
    began = time.monotonic()
    for _ in range(10):
        api(server, "GET", "/api/lists")
    assert time.monotonic() - began < 0.3  # no pause: nothing held


def test_peak_concurrency_is_reported(sandbox):
    sandbox.client.set_config(latency_ms=400)
    threads = [threading.Thread(target=api, args=(sandbox, "GET", "/api/lists")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sandbox.client.stats()["peak_concurrency"] == 3


def test_new_list_is_invalid_for_a_while(sandbox):
    sandbox.client.set_config(new_list_invalid_seconds=1.0)
    list_id = create_list(sandbox)
    created = time.monotonic()
    [seeded] = sandbox.client.seed([{"name": "old"}])  # pre-existing lists are not affected
    assert subscribe(sandbox, seeded, ROW)["successCount"] == 1
    checks = [("POST", "/api/lists/subscribe", {"json": {"listId": list_id, "subscribers": ROW}}),
              ("POST", "/api/lists/unsubscribe", {"json": {"listId": list_id, "subscribers": ROW}}),
              ("GET", "/api/lists/getUsers", {"params": {"listId": list_id}}),
              ("GET", f"/api/lists/{list_id}/size", {})]
    for method, path, kwargs in checks:
        resp = api(sandbox, method, path, **kwargs)
        assert resp.status_code == 400 and resp.json()["msg"] == f"error.lists.invalidListId({list_id})", path
    assert list_id in [item["id"] for item in api(sandbox, "GET", "/api/lists").json()["lists"]]
    assert time.monotonic() - created < 1.0, "machine too slow for this check"
    time.sleep(max(0.0, created + 1.1 - time.monotonic()))
    assert subscribe(sandbox, list_id, ROW)["successCount"] == 1


def test_get_users_503_next(sandbox):
    list_id = create_list(sandbox)
    sandbox.client.set_config(get_users_503_next=2)
    for _ in range(2):
        resp = api(sandbox, "GET", "/api/lists/getUsers", params={"listId": list_id})
        assert resp.status_code == 503
        assert resp.json() == {"msg": "Request timeout. Try again later.", "code": "GenericError", "params": None}
    assert api(sandbox, "GET", "/api/lists/getUsers", params={"listId": list_id}).status_code == 200
    assert sandbox.client.config()["get_users_503_next"] == 0
    assert sandbox.client.stats()["faults"]["get_users_503"] == 2


def test_get_users_503_rate(sandbox_factory):
    server = sandbox_factory(get_users_503_rate=1.0, get_users_per_minute=0)
    list_id = create_list(server)
    assert api(server, "GET", "/api/lists/getUsers", params={"listId": list_id}).status_code == 503
    assert api(server, "GET", f"/api/lists/{list_id}/size").status_code == 200


def test_echo_api_key_puts_the_callers_key_in_every_error(sandbox_factory):
    server = sandbox_factory(echo_api_key_in_errors=True, subscribe_rps=1)
    list_id = create_list(server)
    errors = [
        api(server, "GET", "/api/lists", key="wrong-key-123"),
        api(server, "POST", "/api/lists", key=server.read_only_key, json={"name": "x"}),
        api(server, "POST", "/api/lists/subscribe", json={"listId": 1, "subscribers": []}),
        api(server, "POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": []}),
        api(server, "POST", "/api/lists", data=b"nope"),
        api(server, "GET", "/api/nowhere"),
    ]
    keys = ["wrong-key-123", server.read_only_key, server.api_key, server.api_key, server.api_key, server.api_key]
    assert [resp.status_code for resp in errors] == [401, 401, 400, 429, 400, 404]
    for resp, key in zip(errors, keys, strict=True):
        assert key in resp.json()["msg"] and resp.json()["params"]["apiKey"] == key
    server.client.set_config(error_rate=1.0)
    assert server.api_key in api(server, "GET", "/api/lists").text


def test_runtime_config_round_trip_and_unknown_knob(sandbox):
    new = sandbox.client.set_config(error_rate=0.25, forgotten_emails="X@Y.com,z@y.com", project_type="email")
    assert new["error_rate"] == 0.25 and new["forgotten_emails"] == ["x@y.com", "z@y.com"]
    assert sandbox.client.config() == new
    for bad in ({"no_such_knob": 1}, {"error_rate": 2}, {"project_type": "other"}, {"latency_ms": "slow"}):
        resp = requests.post(f"{sandbox.url}/_sandbox/config", json=bad, timeout=5)
        assert resp.status_code == 400, bad
    assert sandbox.client.config() == new


def test_constructor_rejects_unknown_knobs():
    from integration_tests.sandbox import SandboxServer

    with pytest.raises(ValueError, match="no_such_knob"):
        SandboxServer(api_key="k", no_such_knob=1)
