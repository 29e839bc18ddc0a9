"""The Iterable-compatible ``/api`` routes: faults, auth, rate limits, then the handler."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from .bulk import BulkContext, run_bulk
from .state import User
from .validation import RequestError, bad_params, check_bulk, check_create_list
from .wire import TEXT, Reply, Request, iterable_error, json_reply

if TYPE_CHECKING:
    from .server import SandboxServer

GETUSERS_CHUNK = 8192


class Route:
    """A method + path pattern, its stats template and its rate-limit group."""

    def __init__(self, method: str, pattern: str, template: str, group: str, handler: str) -> None:
        self.method = method
        self.pattern = re.compile(pattern)
        self.template = f"{method} {template}"
        self.group = group
        self.handler = handler


ROUTES = (
    Route("GET", r"/api/lists", "/api/lists", "lists_read", "get_lists"),
    Route("POST", r"/api/lists", "/api/lists", "list_write", "create_list"),
    Route("DELETE", r"/api/lists/(\d+)", "/api/lists/{id}", "list_write", "delete_list"),
    Route("GET", r"/api/lists/(\d+)/size", "/api/lists/{id}/size", "size", "list_size"),
    Route("GET", r"/api/lists/getUsers", "/api/lists/getUsers", "get_users", "get_users"),
    Route("POST", r"/api/lists/subscribe", "/api/lists/subscribe", "subscribe", "subscribe"),
    Route("POST", r"/api/lists/unsubscribe", "/api/lists/unsubscribe", "subscribe", "unsubscribe"),
    Route("GET", r"/api/users/getFields", "/api/users/getFields", "user_fields", "get_fields"),
)


def match_route(method: str, path: str) -> tuple[Route | None, tuple[str, ...]]:
    """The route for a request and its path captures; (None, ()) when unknown."""
    path = path.rstrip("/") or "/"
    for route in ROUTES:
        if route.method == method:
            found = route.pattern.fullmatch(path)
            if found:
                return route, found.groups()
    return None, ()


class Api:
    """Answers ``/api`` requests for one sandbox."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sb = sandbox

    # ------------------------------------------------------------ pipeline
    def handle(self, req: Request) -> tuple[str, Reply]:
        """Route template (for stats) and the reply."""
        route, args = match_route(req.method, req.path)
        template = route.template if route else f"{req.method} (unknown)"
        sb = self.sb  # the latency is slept around this call, in server.py (_Handler._api)
        if sb.faults.drop():
            sb.stats.fault("drops")
            return template, Reply(0, drop=True)
        status = sb.faults.error_status()
        if status is not None:
            sb.stats.fault("errors")
            return template, self.error(req, status, "Internal server error. Please try again later.",
                                        "GenericError")
        if route is None:
            return template, self.error(req, 404, "Not found", "NotFound")
        return template, self._guarded(req, route, args)

    def _guarded(self, req: Request, route: Route, args: tuple[str, ...]) -> Reply:
        denied = self.authorize(req)
        if denied is not None:
            return denied
        if req.too_large:
            return self.error(req, 413, f"Request body is larger than {self.sb.config.max_body_bytes} bytes",
                              "BatchTooLarge")
        arrival = self.sb.limiter.now()  # the limiter counts the request when it arrives, before any handling
        allowed = self.sb.limiter.allow(route.group, arrival)
        if route.group == "subscribe":
            self.sb.stats.tick(allowed, arrival)
        if not allowed:
            return self.error(req, 429, "Exceeded rate limit.", "RateLimitExceeded")
        handler: Callable[..., Reply] = getattr(self, route.handler)
        try:
            return handler(req, *args)
        except RequestError as exc:
            return self.error(req, exc.status, exc.msg, exc.code)

    def authorize(self, req: Request) -> Reply | None:
        """401 for a missing/unknown key, or a read-only key on anything but GET."""
        key = req.api_key
        params: dict[str, Any] = {"ip": req.client_ip, "endpoint": req.path}
        if not key or key not in (self.sb.api_key, self.sb.read_only_key):
            return self.error(req, 401, "Invalid API key", "BadApiKey", params)
        if key != self.sb.api_key and req.method != "GET":
            params["apiKeyType"] = "ReadOnly"
            return self.error(req, 401, "Disabled API key or insufficient privileges", "BadApiKey", params)
        return None

    def error(self, req: Request, status: int, msg: str, code: str,
              params: dict[str, Any] | None = None) -> Reply:
        """An error body, with the caller's key in it when ``echo_api_key_in_errors`` is on."""
        if self.sb.config.echo_api_key_in_errors:
            key = req.api_key or ""
            msg = f"{msg} (api key: {key})"
            params = {**(params or {}), "apiKey": key}
        return iterable_error(status, msg, code, params)

    def invalid_list(self, req: Request, list_id: int) -> Reply:
        """Iterable's odd-looking unknown-list answer (400 with code Success)."""
        return self.error(req, 400, f"error.lists.invalidListId({list_id})", "Success",
                          {"projectId": self.sb.config.project_id, "listId": list_id})

    @staticmethod
    def parse_json(req: Request) -> Any:
        """The JSON body, or a 400 BadJsonBody."""
        try:
            return orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, "BadJsonBody", f"Could not parse the JSON body: {exc}") from None

    # ------------------------------------------------------------ lists
    def get_lists(self, req: Request) -> Reply:
        """GET /api/lists."""
        with self.sb.project.lock:
            lists = [rec.public() for rec in self.sb.project.lists.values()]
        return json_reply(200, {"lists": lists})

    def create_list(self, req: Request) -> Reply:
        """POST /api/lists (duplicate names are allowed, as in Iterable)."""
        name, description = check_create_list(self.parse_json(req))
        rec = self.sb.project.create_list(name, description,
                                          invalid_seconds=self.sb.config.new_list_invalid_seconds)
        return json_reply(200, {"listId": rec.id})

    def delete_list(self, req: Request, raw_id: str) -> Reply:
        """DELETE /api/lists/{id}."""
        list_id = _list_id(raw_id)
        if not self.sb.project.delete_list(list_id):
            return self.invalid_list(req, list_id)
        msg = f"List {list_id} in Project {self.sb.config.project_id} was successfully deleted."
        return iterable_error(200, msg, "Success", None)

    def list_size(self, req: Request, raw_id: str) -> Reply:
        """GET /api/lists/{id}/size: a bare number."""
        list_id = _list_id(raw_id)
        with self.sb.project.lock:
            rec = self.sb.project.usable_list(list_id)
            size = len(rec.members) if rec else 0
        if rec is None:
            return self.invalid_list(req, list_id)
        return Reply(200, str(size).encode(), TEXT)

    def get_users(self, req: Request) -> Reply:
        """GET /api/lists/getUsers: text/plain, one identifier per line, streamed in chunks."""
        list_id = _list_id(req.query.get("listId", ""))
        prefer = req.query.get("preferUserId", "false").lower() == "true"
        with self.sb.project.lock:
            rec = self.sb.project.usable_list(list_id)
            users = list(rec.members) if rec else []
        if rec is None:
            return self.invalid_list(req, list_id)
        if self.sb.faults.get_users_503():
            self.sb.stats.fault("get_users_503")
            return self.error(req, 503, "Request timeout. Try again later.", "GenericError")
        pick = _identifier_picker(self.sb.config.project_type, prefer)
        return Reply(200, content_type=TEXT, chunks=_lines(users, pick))

    # ------------------------------------------------------------ users
    def get_fields(self, req: Request) -> Reply:
        """GET /api/users/getFields: ``{"fields": {"path": "type"}}`` (standard fields plus locked dataFields)."""
        return json_reply(200, {"fields": self.sb.project.user_fields(self.sb.config.project_type)})

    # ------------------------------------------------------------ membership
    def subscribe(self, req: Request) -> Reply:
        """POST /api/lists/subscribe."""
        return self._bulk(req, unsubscribe=False)

    def unsubscribe(self, req: Request) -> Reply:
        """POST /api/lists/unsubscribe."""
        return self._bulk(req, unsubscribe=True)

    def _bulk(self, req: Request, unsubscribe: bool) -> Reply:
        sb = self.sb
        body = self.parse_json(req)
        subscribers = check_bulk(body, unsubscribe, sb.config.max_subscribers)
        sb.stats.received(len(subscribers), unsubscribe and body.get("channelUnsubscribe") is True)
        cfg = sb.config
        ctx = BulkContext(sb.project, sb.validator, cfg.project_type, frozenset(cfg.forgotten_emails),
                          frozenset(cfg.forgotten_user_ids))
        with sb.project.lock:
            rec = sb.project.usable_list(body["listId"])
            if rec is None:
                return self.invalid_list(req, body["listId"])
            if rec.list_type != "Standard":
                raise bad_params(f"list {rec.id} is not a static list (listType {rec.list_type})")
            result = run_bulk(ctx, rec, body, unsubscribe)
        if sb.faults.apply_then_drop():
            sb.stats.fault("applied_then_dropped")
            return Reply(0, drop=True)
        return json_reply(200, result)


def _list_id(raw: str) -> int:
    try:
        list_id = int(raw)
    except ValueError:
        raise bad_params("'listId' must be an integer") from None
    if not -(2**63) <= list_id < 2**63:
        raise bad_params("'listId' is out of range")
    return list_id


def _identifier_picker(project_type: str, prefer_user_id: bool) -> Callable[[User], str]:
    if project_type == "userid":
        return lambda user: user.user_id or user.email or ""
    if prefer_user_id:
        return lambda user: user.user_id or user.email or ""
    return lambda user: user.email or user.user_id or ""


def _lines(users: list[User], pick: Callable[[User], str]) -> Iterator[bytes]:
    for start in range(0, len(users), GETUSERS_CHUNK):
        part = users[start:start + GETUSERS_CHUNK]
        yield ("\n".join(map(pick, part)) + "\n").encode()
