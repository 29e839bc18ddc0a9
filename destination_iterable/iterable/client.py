"""HTTP client for Iterable's list API: auth, timeouts, bounded retries, rate control, typed errors.

Nothing above this module knows about HTTP: callers get Python values, `BulkResult`s or typed errors.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter

from destination_iterable import __version__
from destination_iterable.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    BatchTooLargeError,
    ConfigError,
    InvalidListIdError,
    RetryBudgetExceeded,
    TransientError,
)
from destination_iterable.iterable.limits import MAX_BATCH_ROWS, MAX_BODY_BYTES
from destination_iterable.iterable.rate import ERROR, OK, RATE_LIMITED, AdaptiveRateController, Stopped
from destination_iterable.iterable.rows import EncodedRows
from destination_iterable.members.identity import mask_email

logger = logging.getLogger("airbyte")

FAILED_BUCKETS = (
    "invalidEmails", "invalidUserIds", "forgottenEmails", "forgottenUserIds", "conflictEmails",
    "conflictUserIds", "invalidDataEmails", "invalidDataUserIds", "notFoundEmails", "notFoundUserIds",
)
SLOW_ENDPOINT_WAIT = 12.5  # getUsers and list size allow 5 requests a minute per project
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
EMAIL_IN_TEXT = re.compile(r"[^\s'\"<>(),;:]+@[^\s'\"<>(),;:]+")


@dataclass
class BulkResult:
    """Per-row outcome of a subscribe/unsubscribe request."""

    success_count: int = 0
    fail_count: int = 0
    failed: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> BulkResult:
        """Parse Iterable's UserBulkUpdateListResponse (tolerating missing buckets)."""
        updates = body.get("failedUpdates") or {}
        failed = {b: list(updates.get(b) or ()) for b in FAILED_BUCKETS if updates.get(b)}
        if not updates:  # older answers only carry the deprecated top-level copies
            for bucket in ("invalidEmails", "invalidUserIds"):
                if body.get(bucket):
                    failed[bucket] = list(body[bucket])
        return cls(int(body.get("successCount") or 0), int(body.get("failCount") or 0), failed)

    def merge(self, other: BulkResult) -> None:
        """Add another result (from a split batch) into this one."""
        self.success_count += other.success_count
        self.fail_count += other.fail_count
        for bucket, ids in other.failed.items():
            self.failed.setdefault(bucket, []).extend(ids)


class AnyEvent:
    """Set when any of its events is set (the run's stop, or SIGTERM)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        """True once any event is set."""
        return any(event.is_set() for event in self.events)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early (and returning True) when any event is set."""
        deadline = time.monotonic() + seconds
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.events[0].wait(min(left, 0.2))
        return True


class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a total time budget."""

    def __init__(self, budget_seconds: float, base: float = 0.5, cap: float = 30.0) -> None:
        self.budget_seconds = budget_seconds
        self.base = base
        self.cap = cap

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return random.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 16))))  # noqa: S311


class IterableClient:
    """Thread-safe client; one per run. Bulk calls share one AdaptiveRateController."""

    def __init__(self, base_url: str, api_key: str, *, controller: AdaptiveRateController | None = None,
                 retry_max_seconds: float = 600.0, timeout_seconds: float = 60.0,
                 stop: threading.Event | None = None, term: threading.Event | None = None, pool_size: int = 32,
                 slow_endpoint_wait: float = SLOW_ENDPOINT_WAIT) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.controller = controller or AdaptiveRateController()
        self.retry = RetryPolicy(retry_max_seconds)
        self.timeout = (min(10.0, timeout_seconds), timeout_seconds)
        self.slow_endpoint_wait = slow_endpoint_wait
        self.stop = AnyEvent(stop or threading.Event(), term or threading.Event())  # abort: stop or SIGTERM
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({
            "Api-Key": api_key,
            "Content-Type": "application/json",
            "User-Agent": f"airbyte-destination-iterable/{__version__}",
        })
        self.stats_lock = threading.Lock()
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0, "errors": 0}

    # ----------------------------------------------------------------- public API
    def list_lists(self) -> list[dict[str, Any]]:
        """All lists of the project (id, name, listType, createdAt, ...)."""
        body = self._json(self._call("GET", "/api/lists", what="reading lists"))
        return list(body.get("lists") or [])

    def user_fields(self) -> dict[str, str]:
        """The project's user profile fields and their Iterable types (``GET /api/users/getFields``)."""
        body = self._json(self._call("GET", "/api/users/getFields", what="reading user fields"))
        fields = body.get("fields")
        return {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}

    def create_list(self, name: str, description: str, *, retry: bool = True) -> int:
        """Create a static list and return its id (not idempotent: callers may prefer retry=False)."""
        payload = orjson.dumps({"name": name, "description": description})
        body = self._json(self._call("POST", "/api/lists", data=payload, what=f"creating list '{name}'",
                                     retry=retry))
        return int(body["listId"])

    def delete_list(self, list_id: int) -> None:
        """Delete a list (used by tests and the demo; the connector never deletes lists)."""
        self._call("DELETE", f"/api/lists/{int(list_id)}", what=f"deleting list {list_id}")

    def subscribe(self, list_id: int, subscribers: Sequence[dict[str, Any]], *,
                  update_existing_users_only: bool = False, stream: str | None = None) -> BulkResult:
        """Add members (with optional dataFields) to a static list.

        `subscribers` (here and in `unsubscribe`) is a sequence of row dicts, or the rows already encoded:
        an object with `len()` (the row count) and `json` (the bytes of the JSON array of the rows), which
        is put into the request body as it is.
        """
        body: dict[str, Any] = {"listId": list_id, "subscribers": subscribers}
        if update_existing_users_only:
            body["updateExistingUsersOnly"] = True
        return self._bulk("/api/lists/subscribe", body, len(subscribers), stream)

    def unsubscribe(self, list_id: int, subscribers: Sequence[dict[str, Any]], *,
                    stream: str | None = None) -> BulkResult:
        """Remove members from a static list; never a channel-wide unsubscribe."""
        body = {"listId": list_id, "subscribers": subscribers, "channelUnsubscribe": False}
        return self._bulk("/api/lists/unsubscribe", body, len(subscribers), stream)

    def iter_list_users(self, list_id: int, *, prefer_user_id: bool = False,
                        stream: str | None = None) -> Iterator[str]:
        """Stream the identifiers of a list's members (one request; 5/min per project, may answer 503)."""
        params = {"listId": str(int(list_id))}
        if prefer_user_id:
            params["preferUserId"] = "true"
        resp = self._call("GET", "/api/lists/getUsers", params=params, stream=True, slow=True,
                          what=f"reading the members of list {list_id}", stream_name=stream)
        try:
            for raw in resp.iter_lines(chunk_size=1 << 16):
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    yield line
        except requests.RequestException as exc:
            raise TransientError(f"The member list of list {list_id} was cut off while downloading "
                                 f"({type(exc).__name__}); nobody was removed.", stream=stream) from None
        finally:
            resp.close()

    def list_size(self, list_id: int) -> int:
        """Member count of a list (5 requests/min per project): one attempt, no retries, since it only informs."""
        resp = self._call("GET", f"/api/lists/{int(list_id)}/size", retry=False, what=f"sizing list {list_id}")
        return int(resp.text.strip().strip('"') or 0)

    def probe_write_access(self) -> None:
        """Prove the key may write lists without changing anything.

        Posts an unsubscribe with no subscribers to list id 0: Iterable checks the key's privileges
        before it looks at the body, so a read-only key gets BadApiKey ("insufficient privileges")
        while a full key gets a harmless "invalid list" answer.
        """
        try:
            self._call("POST", "/api/lists/unsubscribe",
                       data=orjson.dumps({"listId": 0, "subscribers": [], "channelUnsubscribe": False}),
                       what="checking write access", retry=False)
        except (InvalidListIdError, BadRequestError):
            return

    # ----------------------------------------------------------------- internals
    def _bulk(self, path: str, body: dict[str, Any], rows: int, stream: str | None) -> BulkResult:
        if rows > MAX_BATCH_ROWS:
            raise BatchTooLargeError(f"{rows} members in one request (limit {MAX_BATCH_ROWS})", stream=stream)
        if isinstance(body["subscribers"], EncodedRows):  # serialised when the batch was cut: embedded as is
            body = {**body, "subscribers": orjson.Fragment(body["subscribers"].json)}
        payload = orjson.dumps(body)
        if len(payload) >= MAX_BODY_BYTES:
            raise BatchTooLargeError(f"request body of {len(payload)} bytes (limit 4 MB)", stream=stream)
        resp = self._call("POST", path, data=payload, rated=True, what=f"writing list {body['listId']}",
                          stream_name=stream)
        return BulkResult.from_body(self._json(resp))

    def _call(self, method: str, path: str, *, what: str, data: bytes | None = None,
              params: dict[str, str] | None = None, stream: bool = False, rated: bool = False,
              slow: bool = False, retry: bool = True, stream_name: str | None = None) -> requests.Response:
        """Send one request, retrying retryable outcomes within the time budget."""
        started = time.monotonic()
        attempt = 0
        last_problem = "no answer"
        while True:
            attempt += 1
            outcome, resp, problem = self._attempt(method, path, data, params, stream, rated)
            if outcome == OK:
                return resp
            if outcome == "fatal":
                self._raise_for(resp, what, stream_name)
            last_problem = problem
            with self.stats_lock:
                self.stats["retries"] += 1
            if slow:
                wait = self.slow_endpoint_wait * random.uniform(1.0, 1.2)  # noqa: S311
            elif outcome == RATE_LIMITED and rated:
                wait = 0.0  # the rate controller paces the retry
            else:
                wait = self.retry.delay(attempt)
            elapsed = time.monotonic() - started
            if not retry or elapsed + wait > self.retry.budget_seconds:
                raise RetryBudgetExceeded(
                    f"Iterable kept failing while {what} ({last_problem}) for {elapsed:.0f} s, beyond the "
                    f"retry budget of {self.retry.budget_seconds:.0f} s. The sync can be retried; raise "
                    "'retry_max_seconds' if Iterable is slow.", problem=last_problem, stream=stream_name)
            if self.stop.wait(wait):
                raise TransientError(f"Stopped while {what}.", stream=stream_name)

    def _attempt(self, method: str, path: str, data: bytes | None, params: dict[str, str] | None,
                 stream: bool, rated: bool) -> tuple[str, requests.Response | None, str]:
        """One HTTP exchange → (outcome, response, problem). Outcome: ok / rate_limited / error / fatal."""
        permit = None
        if rated:
            try:
                permit = self.controller.acquire(self.stop)
            except Stopped:
                raise TransientError("Stopped before the request was sent.") from None
        outcome, resp, problem = ERROR, None, ""
        try:
            resp = self.session.request(method, self.base_url + path, data=data, params=params,
                                        timeout=self.timeout, stream=stream)
            status = resp.status_code
            if status < 300:
                outcome = OK
            elif status == 429:
                outcome, problem = RATE_LIMITED, "rate limited (429)"
            elif status in RETRYABLE_STATUSES:
                problem = f"HTTP {status}"
            else:
                outcome = "fatal"
        except requests.exceptions.SSLError:
            self._count(ERROR)
            raise ConfigError(f"The TLS certificate of {self.base_url} could not be verified, so no data was sent. "
                              "Check 'api_base_url' (a proxy needs a certificate your system trusts); "
                              "certificate checks cannot be switched off.") from None
        except requests.Timeout:
            problem = "timed out"
        except requests.ConnectionError:
            problem = "connection dropped or refused"
        except requests.RequestException as exc:
            problem = type(exc).__name__
        finally:
            if permit is not None:
                self.controller.release(permit, OK if outcome in (OK, "fatal") else outcome)
        self._count(outcome)
        if outcome not in (OK, "fatal") and resp is not None:
            resp.close()
        return outcome, resp, problem

    def _count(self, outcome: str) -> None:
        with self.stats_lock:
            self.stats["requests"] += 1
            if outcome == RATE_LIMITED:
                self.stats["rate_limited"] += 1
            elif outcome == ERROR:
                self.stats["errors"] += 1

    def scrub(self, text: str) -> str:
        """Remove the API key and full email addresses from server-provided text, and keep it short."""
        if self._api_key:
            text = text.replace(self._api_key, "****")
        return EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)[:300]

    def _raise_for(self, resp: requests.Response, what: str, stream: str | None) -> None:
        status = resp.status_code
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = {"msg": resp.text}
        if not isinstance(body, dict):
            body = {"msg": str(body)}
        msg = self.scrub(str(body.get("msg") or ""))
        code = str(body.get("code") or "")
        if "invalidListId" in msg:
            raise InvalidListIdError(f"Iterable says the list does not exist while {what}.", status=status,
                                     code=code, stream=stream)
        if status in (401, 403):
            raise AuthError(f"Iterable refused the API key while {what}: {msg or code}", status=status,
                            code=code, stream=stream)
        if status == 413 or code == "BatchTooLarge":
            raise BatchTooLargeError(f"Iterable said the request was too large while {what}.", status=status,
                                     code=code, stream=stream)
        detail = self.scrub(str(body.get("params") or ""))
        error = BadRequestError if 400 <= status < 500 else ApiError
        raise error(f"Iterable rejected the request while {what}: HTTP {status} {code} {msg} {detail}".strip(),
                    status=status, code=code, stream=stream)

    @staticmethod
    def _json(resp: requests.Response) -> dict[str, Any]:
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ApiError(f"Iterable answered HTTP {resp.status_code} with a body that is not JSON.",
                           status=resp.status_code) from None
        return body if isinstance(body, dict) else {}

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()
