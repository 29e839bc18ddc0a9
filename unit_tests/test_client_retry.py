"""IterableClient retry and classification, in-process: the real client against the sandbox, with the
fault proxy (integration_tests.reliability_helpers) answering one specific status where needed.

One row per whole-request outcome of the table in docs/reliability.md: retried (and then succeeds) or
raised at once as its typed error; retries bounded by retry_max_seconds with the stream named.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from destination_iterable.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    BatchTooLargeError,
    InvalidListIdError,
    RetryBudgetExceeded,
    TransientError,
)
from destination_iterable.iterable.client import IterableClient, RetryPolicy
from integration_tests.reliability_helpers import FaultProxy, Rule, iterable_error_body
from integration_tests.sandbox import SandboxServer

KEY = "unit-test-key-0123456789abcdef"
SUBSCRIBE = "/api/lists/subscribe"
MIN_RPS_INTERVAL = 5.0  # AdaptiveRateController's slowest pace: 0.2 requests/s
HTML = b"<html><head><title>Error</title></head><body>nope</body></html>"


@pytest.fixture(scope="module")
def server():
    sandbox = SandboxServer(api_key=KEY, port=0, lists_read_rps=0, list_write_rps=0, get_users_per_minute=0,
                            size_per_minute=0).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def list_id(server):
    return server.client.seed([{"name": f"unit-{time.monotonic_ns()}"}])[0]


def _client(url: str, budget: float = 5.0, timeout: float = 5.0, fast: bool = False, **kwargs) -> IterableClient:
    """A client; `fast` shortens the backoff base (0.5 s -> 0.02 s) where only the classification matters."""
    client = IterableClient(url, KEY, retry_max_seconds=budget, timeout_seconds=timeout, **kwargs)
    if fast:
        client.retry.base = 0.02
    return client


# ------------------------------------------------------------------------------------------ backoff
def test_backoff_is_exponential_with_full_jitter_and_capped():
    policy = RetryPolicy(budget_seconds=60, base=0.5, cap=30)
    for attempt in range(1, 25):
        ceiling = min(30, 0.5 * 2 ** min(attempt, 16))
        samples = [policy.delay(attempt) for _ in range(50)]
        assert all(0 <= s <= ceiling for s in samples)
    assert len({round(policy.delay(5), 6) for _ in range(20)}) > 1, "jittered"


# ------------------------------------------------------------------------------------------ retried outcomes
RETRIED = {
    "429_json": (429, iterable_error_body("Exceeded rate limit.", "RateLimitExceeded"), "application/json"),
    "429_text": (429, b"Rate limit exceeded. Please try again later.", "text/plain"),
    "500": (500, iterable_error_body("Internal server error.", "GenericError"), "application/json"),
    "502_html": (502, HTML, "text/html"),
    "503": (503, iterable_error_body("Request timeout. Try again later.", "GenericError"), "application/json"),
    "504_empty": (504, b"", "text/plain"),
}


@pytest.mark.parametrize("answer", list(RETRIED))
def test_retryable_answers_are_retried_then_succeed(server, list_id, answer):
    status, body, content_type = RETRIED[answer]
    with FaultProxy(server.url, [Rule("POST", SUBSCRIBE, "respond", status=status, body=body,
                                      content_type=content_type)]) as proxy:
        client = _client(proxy.url, fast=True)
        result = client.subscribe(list_id, [{"email": "a@example.com"}], stream="s")
        assert proxy.count("POST", SUBSCRIBE) == 2
    assert result.success_count == 1 and client.stats["retries"] == 1
    assert server.client.member_emails(list_id) == {"a@example.com"}


@pytest.mark.parametrize("action", ["drop", "forward_then_drop", "forward_then_delay"])
def test_dropped_connection_and_read_timeout_are_retried_idempotently(server, list_id, action):
    """Hung up before or after Iterable applied it, or answered after the read timeout: sent again, and
    the member is in the list once."""
    with FaultProxy(server.url, [Rule("POST", SUBSCRIBE, action, delay=0.8)]) as proxy:
        client = _client(proxy.url, timeout=0.3, fast=True)
        result = client.subscribe(list_id, [{"email": "b@example.com"}], stream="s")
        assert proxy.count("POST", SUBSCRIBE) == 2
    assert result.success_count == 1
    assert server.client.members(list_id) == [{"email": "b@example.com", "userId": None}]


def test_connect_timeout_is_retried(server, list_id, monkeypatch):
    client = _client(server.url, fast=True)
    real = client.session.request
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise requests.ConnectTimeout("connect timed out")
        return real(*args, **kwargs)

    monkeypatch.setattr(client.session, "request", flaky)
    assert client.subscribe(list_id, [{"email": "c@example.com"}]).success_count == 1
    assert len(calls) == 2


# ------------------------------------------------------------------------------------------ raised at once
FATAL = {
    "401": (401, iterable_error_body("Invalid API key", "BadApiKey"), AuthError),
    "403": (403, iterable_error_body("Forbidden", "Forbidden"), AuthError),
    "400_bad_params": (400, iterable_error_body("Invalid params: 'subscribers[0].email' must be a string",
                                                "BadParams"), BadRequestError),
    "400_bad_json": (400, iterable_error_body("Could not parse the JSON body", "BadJsonBody"), BadRequestError),
    "400_batch_too_large": (400, iterable_error_body("Too many subscribers", "BatchTooLarge"), BatchTooLargeError),
    "413_html": (413, HTML, BatchTooLargeError),
    "400_invalid_list": (400, iterable_error_body("error.lists.invalidListId(5)", "Success", {"listId": 5}),
                         InvalidListIdError),
    "404_html": (404, HTML, BadRequestError),
    "409": (409, iterable_error_body("Conflict", "GenericError"), BadRequestError),
}


@pytest.mark.parametrize("answer", list(FATAL))
def test_non_retryable_answers_raise_their_typed_error_after_one_request(server, list_id, answer):
    status, body, error = FATAL[answer]
    content_type = "text/html" if body is HTML else "application/json"
    with FaultProxy(server.url, [Rule("POST", SUBSCRIBE, "respond", status=status, body=body,
                                      content_type=content_type)]) as proxy:
        with pytest.raises(error) as caught:
            _client(proxy.url).subscribe(list_id, [{"email": "d@example.com"}], stream="seg-x")
        assert proxy.count("POST", SUBSCRIBE) == 1
    assert caught.value.stream == "seg-x" and caught.value.status == status
    if answer == "400_bad_params":
        assert "subscribers[0].email" in caught.value.message


def test_success_status_with_a_body_that_is_not_json_is_an_api_error(server, list_id):
    with FaultProxy(server.url, [Rule("POST", SUBSCRIBE, "respond", status=200, body=HTML,
                                      content_type="text/html")]) as proxy:
        with pytest.raises(ApiError, match="not JSON"):
            _client(proxy.url).subscribe(list_id, [{"email": "e@example.com"}])
        assert proxy.count("POST", SUBSCRIBE) == 1


# ------------------------------------------------------------------------------------------ the budget
@pytest.mark.parametrize("answer", ["503", "429", "drop", "refused"])
def test_retries_stop_at_the_budget_with_the_stream_named(server, list_id, answer):
    budget = 0.6
    rule = {"503": Rule("POST", SUBSCRIBE, "respond", status=503, times=None),
            "429": Rule("POST", SUBSCRIBE, "respond", status=429, times=None),
            "drop": Rule("POST", SUBSCRIBE, "drop", times=None)}.get(answer)
    with FaultProxy(server.url, [rule] if rule else []) as proxy:
        url = "http://127.0.0.1:9" if answer == "refused" else proxy.url  # port 9 (discard) is closed
        client = _client(url, budget=budget, fast=answer != "429")
        started = time.monotonic()
        with pytest.raises(RetryBudgetExceeded) as caught:
            client.subscribe(list_id, [{"email": "f@example.com"}], stream="seg-b")
        elapsed = time.monotonic() - started
    assert caught.value.stream == "seg-b"
    assert isinstance(caught.value, TransientError)
    assert "retry_max_seconds" in caught.value.message
    # a rated request may wait one pacing interval for its permit after the last check (<= 1/min_rps = 5 s)
    assert elapsed <= budget + (MIN_RPS_INTERVAL if answer == "429" else 0) + 0.5, elapsed
    assert client.stats["retries"] >= 2


def test_a_stop_request_interrupts_the_backoff(server, list_id):
    stop = threading.Event()
    with FaultProxy(server.url, [Rule("POST", SUBSCRIBE, "respond", status=503, times=None)]) as proxy:
        client = _client(proxy.url, budget=60, stop=stop)
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        with pytest.raises(TransientError):
            client.subscribe(list_id, [{"email": "g@example.com"}])
    assert time.monotonic() - started < 3


def test_slow_endpoint_503_beyond_the_budget_fails_without_waiting(server, list_id):
    """getUsers allows 5 calls a minute, so its retries wait 12.5 s; with a smaller budget the 503 is final."""
    server.client.set_config(get_users_503_next=1)
    started = time.monotonic()
    with pytest.raises(RetryBudgetExceeded):
        list(_client(server.url, budget=5).iter_list_users(list_id, stream="seg-m"))
    assert time.monotonic() - started < 2


def test_write_probe_is_not_retried(server):
    with FaultProxy(server.url, [Rule("POST", "/api/lists/unsubscribe", "respond", status=503, times=None)]) as proxy:
        with pytest.raises(TransientError):
            _client(proxy.url).probe_write_access()
        assert proxy.count("POST", "/api/lists/unsubscribe") == 1


def test_scrub_removes_the_key_from_server_text():
    client = IterableClient("http://127.0.0.1:9", KEY)
    assert KEY not in client.scrub(f"bad key {KEY} in body " * 50)
    assert len(client.scrub("x" * 1000)) <= 300


def test_tls_certificate_failure_is_not_retried_and_says_so():
    """A certificate that does not verify will not verify on the next attempt either: fail at once (not after
    the whole retry budget, default 600 s) with a message about the certificate, not "connection dropped"."""
    from integration_tests.reliability_helpers import SelfSignedHttps

    with SelfSignedHttps() as server:
        client = _client(server.url, budget=2)
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            client.list_lists()
        elapsed = time.monotonic() - started
    assert not isinstance(caught.value, RetryBudgetExceeded), caught.value
    assert client.stats["requests"] == 1 and elapsed < 1, (client.stats, elapsed)
    assert "certificate" in str(caught.value).lower(), str(caught.value)
