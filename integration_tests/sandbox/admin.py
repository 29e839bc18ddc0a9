"""The unauthenticated ``/_sandbox`` inspection and control routes (never faulted or limited)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from .config import KnobError
from .ratelimit import subscribe_limit_rps
from .state import SeedError, User
from .wire import Reply, Request, iterable_error, json_reply

if TYPE_CHECKING:
    from .server import SandboxServer

_MEMBERS = re.compile(r"/_sandbox/lists/(\d+)/members")


class Admin:
    """Answers ``/_sandbox`` requests for one sandbox."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sb = sandbox

    def handle(self, req: Request) -> Reply:
        """Dispatch one request."""
        path = req.path.rstrip("/")
        simple = {
            ("GET", "/_sandbox/lists"): self.lists,
            ("GET", "/_sandbox/users"): self.user,
            ("GET", "/_sandbox/stats"): self.stats,
            ("GET", "/_sandbox/timeline"): self.timeline,
            ("GET", "/_sandbox/config"): self.config,
            ("POST", "/_sandbox/config"): self.set_config,
            ("POST", "/_sandbox/reset"): self.reset,
            ("POST", "/_sandbox/seed"): self.seed,
        }
        handler = simple.get((req.method, path))
        if handler is not None:
            return handler(req)
        found = _MEMBERS.fullmatch(path)
        if found and req.method == "GET":
            return self.members(int(found.group(1)))
        return iterable_error(404, "Not found", "NotFound")

    def lists(self, req: Request) -> Reply:
        """Every list with its member count."""
        with self.sb.project.lock:
            lists = [{"id": rec.id, "name": rec.name, "listType": rec.list_type, "createdAt": rec.created_at,
                      "description": rec.description, "size": len(rec.members)}
                     for rec in self.sb.project.lists.values()]
        return json_reply(200, {"lists": lists})

    def members(self, list_id: int) -> Reply:
        """Members of one list, sorted by (email, userId)."""
        with self.sb.project.lock:
            rec = self.sb.project.lists.get(list_id)
            users = list(rec.members) if rec else None
        if users is None:
            return iterable_error(404, f"No list {list_id}", "NotFound")
        pairs = sorted((user.email or "", user.user_id or "") for user in users)
        return json_reply(200, {"members": [{"email": e or None, "userId": u or None} for e, u in pairs]})

    def user(self, req: Request) -> Reply:
        """One profile by ``?email=`` or ``?userId=``."""
        project = self.sb.project
        email, user_id = req.query.get("email"), req.query.get("userId")
        with project.lock:
            found: User | None = None
            if email:
                found = project.by_email.get(email.lower())
            elif user_id:
                found = project.by_user_id.get(user_id)
            if found is None:
                return iterable_error(404, "No such user", "NotFound")
            return json_reply(200, {"email": found.email, "userId": found.user_id,
                                    "dataFields": found.fields or {}, "listIds": project.list_ids_of(found)})

    def stats(self, req: Request) -> Reply:
        """Request counters and fault counts."""
        return json_reply(200, self.sb.stats.snapshot())

    def timeline(self, req: Request) -> Reply:
        """Per-second accepted vs rate-limited subscribe/unsubscribe requests, and the limit in force."""
        cfg = self.sb.config
        body = self.sb.stats.timeline_snapshot(cfg.subscribe_rps)
        body["subscribe_limiter"] = cfg.subscribe_limiter
        body["subscribe_limit_rps"] = subscribe_limit_rps(cfg)
        return json_reply(200, body)

    def config(self, req: Request) -> Reply:
        """Current knob values."""
        return json_reply(200, self.sb.config.as_dict())

    def set_config(self, req: Request) -> Reply:
        """Change knobs at run time; 400 on an unknown knob or a bad value."""
        body = _json_object(req)
        if isinstance(body, Reply):
            return body
        try:
            return json_reply(200, self.sb.config.update(body))
        except KnobError as exc:
            return iterable_error(400, str(exc), "BadParams")

    def reset(self, req: Request) -> Reply:
        """Forget lists, users, stats, timeline and rate buckets; keep keys and knobs."""
        self.sb.reset()
        return json_reply(200, {"reset": True})

    def seed(self, req: Request) -> Reply:
        """Create lists with members directly; ``fields`` ({"path": "type"}) locks profile field types."""
        body = _json_object(req)
        if isinstance(body, Reply):
            return body
        try:
            fields = self.sb.project.seed_fields(body["fields"]) if "fields" in body else None
            if fields is not None and "lists" not in body:
                return json_reply(200, {"listIds": [], "fields": fields})
            reply = {"listIds": self.sb.project.seed(body.get("lists"))}
            return json_reply(200, reply if fields is None else {**reply, "fields": fields})
        except SeedError as exc:
            return iterable_error(400, str(exc), "BadParams")


def _json_object(req: Request) -> dict[str, Any] | Reply:
    try:
        body = orjson.loads(req.body or b"{}")
    except orjson.JSONDecodeError:
        return iterable_error(400, "Body is not JSON", "BadJsonBody")
    if not isinstance(body, dict):
        return iterable_error(400, "Body must be a JSON object", "BadParams")
    return body
