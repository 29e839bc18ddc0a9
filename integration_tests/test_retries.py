"""How each whole-request outcome is handled, through the real CLI (the table is in docs/reliability.md).

The sandbox provides the real Iterable behaviour; a small proxy (reliability_helpers.FaultProxy) sits in
between when a test needs one specific answer for one specific request (a 403 on the first subscribe, a
list deleted right before a write, an answer lost after Iterable applied the request, ...).
"""

from __future__ import annotations

import pytest

from integration_tests.harness import make_catalog, make_config, record, stream_entry, stream_state
from integration_tests.reliability_helpers import (
    CliProcess,
    FaultProxy,
    Rule,
    assert_exact_membership,
    assert_no_traceback,
    build_sync,
    email,
    error_of,
    iterable_error_body,
    proxied_config,
    run_bounded,
    run_cli,
    state_ids,
)
from integration_tests.sandbox.testing import api

SUBSCRIBE = "/api/lists/subscribe"
UNSUBSCRIBE = "/api/lists/unsubscribe"
SLACK = 4.0  # seconds allowed beyond a budget for process start-up/exit on a loaded machine


def _two_batches(stream: str) -> list[dict]:
    """1,000 records (one full batch) + STATE 1, then 300 more + STATE 2."""
    first = [record(stream, {"email": email(stream, n)}) for n in range(1000)]
    second = [record(stream, {"email": email(stream, n)}) for n in range(1000, 1300)]
    return first + [stream_state(stream, 1, state_id=1)] + second + [stream_state(stream, 2, state_id=2)]


# ------------------------------------------------------------------------------------------ retry budget
def test_retry_budget_exhausted_is_transient_error_naming_the_stream(sandbox):
    """5xx on every write after the first: retried within retry_max_seconds, then a transient_error that
    names the stream; only the STATE whose records were acknowledged is echoed."""
    stream = "r_budget"
    rule = Rule("POST", SUBSCRIBE, "respond", status=503, skip=1, times=None,
                body=iterable_error_body("Internal server error. Please try again later.", "GenericError"))
    with FaultProxy(sandbox.url, [rule]) as proxy:
        cli = CliProcess(proxied_config(sandbox, proxy, retry_max_seconds=2), make_catalog(stream))
        cli.send(_two_batches(stream))
        cli.close_stdin()
        result, timed_out = cli.wait(60)
    assert not timed_out
    error = error_of(result)
    assert result.returncode != 0 and error["failure_type"] == "transient_error", error
    assert error["stream_descriptor"]["name"] == stream and stream in error["message"], error
    assert "retry_max_seconds" in error["message"], error["message"]
    assert rule.hits >= 2, "the 503 was retried"
    assert cli.ended_at - proxy.first_time("respond") <= 2 + SLACK, "bounded by retry_max_seconds"
    assert state_ids(result) == [1]
    list_id = sandbox.client.list_by_name(stream)[0]["id"]
    assert sandbox.client.member_emails(list_id) == {email(stream, n) for n in range(1000)}
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ invalidListId
def test_new_list_not_yet_known_is_waited_out(sandbox):
    """Iterable may answer invalidListId for a list it has just created: wait, then write normally."""
    sandbox.client.set_config(new_list_invalid_seconds=0.5)
    sync = build_sync({"r_fresh": 300}, state_every=100)
    result = run_cli("write", make_config(sandbox, retry_max_seconds=10), make_catalog("r_fresh"), sync.messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert state_ids(result) == sync.state_ids
    assert_exact_membership(sandbox.client, sync.expected)
    stats = sandbox.client.stats()["requests"][f"POST {SUBSCRIBE}"]
    assert stats.get("400", 0) >= 1, "the new list answered invalidListId at least once"


def test_new_list_unknown_longer_than_budget_is_transient_error_within_budget(sandbox):
    """A just-created list that stays unknown is a transient problem: the wait is bounded by
    retry_max_seconds and ends in a transient_error naming the stream (not a config_error)."""
    sandbox.client.set_config(new_list_invalid_seconds=3600)
    config = make_config(sandbox, retry_max_seconds=1)
    result, seconds, timed_out = run_bounded(config, make_catalog("r_never"),
                                             [record("r_never", {"email": "a@example.com"})], deadline=1 + 6)
    assert not timed_out, (f"still waiting for the new list after {seconds:.0f} s although retry_max_seconds is 1 "
                           "(the new-list wait ignores the retry budget)")
    error = error_of(result)
    assert error["failure_type"] == "transient_error", error
    assert error["stream_descriptor"]["name"] == "r_never", error


def test_list_deleted_during_sync_is_config_error_naming_the_stream(sandbox):
    """invalidListId for a list that existed before the sync (deleted in Iterable meanwhile): a clear
    config_error at once, no retry loop, nothing echoed for the unwritten records."""
    stream = "r_gone"
    list_id = sandbox.client.seed([{"name": stream, "members": [{"email": "old@example.com"}]}])[0]
    delete = Rule("POST", SUBSCRIBE, "hook", hook=lambda: api(sandbox, "DELETE", f"/api/lists/{list_id}"))
    with FaultProxy(sandbox.url, [delete]) as proxy:
        messages = [record(stream, {"email": email(stream, n)}) for n in range(20)]
        result = run_cli("write", proxied_config(sandbox, proxy), make_catalog(stream),
                         messages + [stream_state(stream, 1, state_id=1)])
        subscribes = proxy.count("POST", SUBSCRIBE)
    error = error_of(result)
    assert result.returncode != 0 and error["failure_type"] == "config_error", error
    assert error["stream_descriptor"]["name"] == stream and stream in error["message"]
    assert "no longer exists" in error["message"] and "deleted" in error["message"], error["message"]
    assert subscribes == 1, "a deleted list is not retried"
    assert result.states == []
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ batch size
def test_batch_too_large_and_413_are_split_until_accepted(sandbox):
    """400 BatchTooLarge (too many rows) and 413 (body too large) split the batch in halves until each part
    is accepted; a single row that is still too large is rejected and counted, nothing else is lost."""
    sandbox.client.set_config(max_subscribers=300, max_body_bytes=100_000)
    rows = [record("r_many", {"email": email("r_many", n)}) for n in range(1000)]
    wide = [record("r_wide", {"email": email("r_wide", n), "note": "x" * 400}) for n in range(1000)]
    huge = record("r_wide", {"email": "huge@example.com", "note": "y" * 150_000})
    messages = rows + wide + [huge, stream_state("r_wide", 1, state_id=1)]
    config = make_config(sandbox, data_fields=["note"])
    result = run_cli("write", config, make_catalog("r_many", "r_wide"), messages)

    assert result.returncode == 0, result.stdout[-3000:]
    assert state_ids(result) == [1]
    statuses = sandbox.client.stats()["requests"][f"POST {SUBSCRIBE}"]
    assert statuses.get("400", 0) >= 1 and statuses.get("413", 0) >= 1, statuses
    assert_exact_membership(sandbox.client, {"r_many": {email("r_many", n) for n in range(1000)},
                                             "r_wide": {email("r_wide", n) for n in range(1000)}})
    assert result.list_summary("r_many")["added"] == 1000
    wide_summary = result.list_summary("r_wide")
    assert wide_summary["added"] == 1000 and wide_summary["rejected"] == {"record_too_large": 1}, wide_summary
    assert "huge@example.com" not in result.stdout + result.stderr
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ 4xx: no retry
FATAL_ANSWERS = {
    "bad_params": (400, "BadParams", "Invalid params: 'subscribers[0].dataFields.plan' must be a string",
                   "subscribers[0].dataFields.plan"),
    "forbidden_403": (403, "Forbidden", "Forbidden", None),
}


@pytest.mark.parametrize("answer", list(FATAL_ANSWERS))
def test_fatal_4xx_on_write_is_config_error_at_once(sandbox, answer):
    """400 BadParams names the stream and the field; 403 is a config_error at once; neither is retried.
    (401 at the start of a sync: test_security.py; 401 on a write: unit_tests/test_client_retry.py.)"""
    status, code, msg, field_path = FATAL_ANSWERS[answer]
    stream = "r_fatal"
    rule = Rule("POST", SUBSCRIBE, "respond", status=status, times=None, body=iterable_error_body(msg, code))
    with FaultProxy(sandbox.url, [rule]) as proxy:
        result = run_cli("write", proxied_config(sandbox, proxy), make_catalog(stream),
                         [record(stream, {"email": email(stream, n), "plan": 1}) for n in range(10)])
        subscribes = proxy.count("POST", SUBSCRIBE)
    error = error_of(result)
    assert result.returncode != 0 and error["failure_type"] == "config_error", error
    assert error["stream_descriptor"]["name"] == stream and stream in error["message"], error
    if field_path:
        assert field_path in error["message"], error["message"]
    assert subscribes == 1, f"{status} must not be retried ({subscribes} requests)"
    assert result.states == []
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ idempotency
def test_timed_out_and_lost_answers_are_retried_idempotently(sandbox):
    """A subscribe whose answer comes after the read timeout, and an unsubscribe whose answer is lost after
    Iterable applied it, are both sent again: the membership is still exact."""
    stream = "r_idem"
    seeded = {email(stream, n, "old") for n in range(20)}
    sandbox.client.seed([{"name": stream, "members": [{"email": e} for e in sorted(seeded)]}])
    removes = sorted(seeded)[:10]
    sync = build_sync({stream: 300}, state_every=100, removes={stream: removes}, initial={stream: seeded})
    rules = [Rule("POST", SUBSCRIBE, "forward_then_delay", delay=1.6),
             Rule("POST", UNSUBSCRIBE, "forward_then_drop")]
    with FaultProxy(sandbox.url, rules) as proxy:
        config = proxied_config(sandbox, proxy, request_timeout_seconds=1, retry_max_seconds=10)
        result = run_cli("write", config, make_catalog(stream_entry(stream)), sync.messages)
        counts = proxy.count("POST", SUBSCRIBE), proxy.count("POST", UNSUBSCRIBE)
    assert result.returncode == 0, result.stdout[-3000:]
    assert counts == (2, 2), counts
    assert state_ids(result) == sync.state_ids
    assert_exact_membership(sandbox.client, sync.expected)


def test_list_creation_whose_answer_is_lost_creates_no_duplicate(sandbox):
    """POST /api/lists is not idempotent: when Iterable created the list but the answer was lost, the retry
    must not leave a second list with the same name (the next sync would reuse the oldest, empty one)."""
    stream = "r_dup"
    sync = build_sync({stream: 50}, state_every=50)
    with FaultProxy(sandbox.url, [Rule("POST", "/api/lists", "forward_then_drop")]) as proxy:
        result = run_cli("write", proxied_config(sandbox, proxy), make_catalog(stream), sync.messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_exact_membership(sandbox.client, sync.expected)
