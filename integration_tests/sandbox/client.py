"""``SandboxClient``: a small requests-based helper for the ``/_sandbox`` inspection endpoints."""

from __future__ import annotations

from typing import Any

import requests


class SandboxClient:
    """Reads and steers a running sandbox over plain HTTP (no API key needed)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _get(self, path: str, **params: Any) -> requests.Response:
        resp = self.session.get(f"{self.url}/_sandbox{path}", params=params or None, timeout=self.timeout)
        return resp

    def _json(self, resp: requests.Response) -> Any:
        resp.raise_for_status()
        return resp.json()

    def _post(self, path: str, body: Any) -> Any:
        return self._json(self.session.post(f"{self.url}/_sandbox{path}", json=body, timeout=self.timeout))

    def lists(self) -> list[dict[str, Any]]:
        """Every list: id, name, listType, createdAt, description, size."""
        return self._json(self._get("/lists"))["lists"]

    def list_by_name(self, name: str) -> list[dict[str, Any]]:
        """All lists (any listType) with exactly this name."""
        return [item for item in self.lists() if item["name"] == name]

    def members(self, list_id: int) -> list[dict[str, Any]]:
        """Members of a list as ``{"email", "userId"}`` dicts, sorted."""
        return self._json(self._get(f"/lists/{int(list_id)}/members"))["members"]

    def member_emails(self, list_id: int) -> set[str]:
        """Emails of a list's members (members without an email are left out)."""
        return {m["email"] for m in self.members(list_id) if m["email"]}

    def user(self, email: str | None = None, user_id: str | None = None) -> dict[str, Any] | None:
        """A profile (email, userId, dataFields, listIds), or None when unknown."""
        if (email is None) == (user_id is None):
            raise ValueError("give exactly one of email or user_id")
        resp = self._get("/users", **({"email": email} if email is not None else {"userId": user_id}))
        if resp.status_code == 404:
            return None
        return self._json(resp)

    def stats(self) -> dict[str, Any]:
        """Request counters, rate_limited, peak_concurrency, faults, subscribers_received."""
        return self._json(self._get("/stats"))

    def timeline(self) -> dict[str, Any]:
        """Per-second subscribe/unsubscribe accepted vs 429 counts, and the hidden limit in force."""
        return self._json(self._get("/timeline"))

    def config(self) -> dict[str, Any]:
        """Current knob values."""
        return self._json(self._get("/config"))

    def set_config(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time; returns the new config."""
        return self._post("/config", knobs)

    def set_subscribe_limit(self, limiter: str | None = None, rps: float | None = None,
                            per_minute: float | None = None, burst: float | None = None) -> dict[str, Any]:
        """Change the subscribe+unsubscribe limit live (only the given parts); returns the new config.

        ``limiter`` is token_bucket, fixed_window, sliding_window or per_minute; ``rps`` sets
        ``subscribe_rps``, ``per_minute`` ``subscribe_per_minute`` and ``burst`` ``subscribe_burst``.
        """
        knobs = {"subscribe_limiter": limiter, "subscribe_rps": rps, "subscribe_per_minute": per_minute,
                 "subscribe_burst": burst}
        return self.set_config(**{name: value for name, value in knobs.items() if value is not None})

    def reset(self) -> None:
        """Forget lists, users, stats and rate buckets."""
        self._post("/reset", {})

    def seed(self, lists: list[dict[str, Any]]) -> list[int]:
        """Create lists with members (see docs/sandbox.md); returns their ids."""
        return self._post("/seed", {"lists": lists})["listIds"]

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()
