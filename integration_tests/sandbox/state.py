"""The project model: lists, users and static-list membership, guarded by one lock."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from .fields import check_types

LIST_TYPES = ("Standard", "Dynamic", "Suppression", "Internal")
FIRST_LIST_ID = 100001
# Types GET /api/users/getFields reports (API_NOTES §3.4, §3.6); "array" is the sandbox's own lock for lists.
FIELD_TYPES = ("string", "long", "double", "boolean", "date", "object", "array", "geo_location", "nested")
# Profile fields every project reports, named and typed as in a recorded getFields answer (API_NOTES §3.4).
STANDARD_FIELDS = {
    "email": "string", "userId": "string", "signupDate": "date", "signupSource": "string",
    "profileUpdatedAt": "date", "unsubscribedChannelIds": "long", "unsubscribedMessageTypeIds": "long",
    "itblInternal.emailDomain": "string",
}
# The static-list membership field differs by project type (API_NOTES §3.5).
LIST_IDS_FIELD = {"email": "emailListIds", "hybrid": "userListIds", "userid": "userListIds"}


class SeedError(ValueError):
    """A /_sandbox/seed body the sandbox cannot use."""


class User:
    """One profile. ``fields`` stays None until the user gets dataFields (saves memory)."""

    __slots__ = ("email", "user_id", "fields")

    def __init__(self, email: str | None, user_id: str | None) -> None:
        self.email = email
        self.user_id = user_id
        self.fields: dict[str, Any] | None = None


class ListRec:
    """One list. ``members`` is an insertion-ordered dict used as a set."""

    __slots__ = ("id", "name", "description", "list_type", "created_at", "fresh_until", "members")

    def __init__(self, list_id: int, name: str, description: str, list_type: str, created_at: int,
                 fresh_until: float) -> None:
        self.id = list_id
        self.name = name
        self.description = description
        self.list_type = list_type
        self.created_at = created_at
        self.fresh_until = fresh_until
        self.members: dict[User, None] = {}

    def public(self) -> dict[str, Any]:
        """The ``ListDetails`` shape of GET /api/lists (description omitted when empty)."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "createdAt": self.created_at,
                               "listType": self.list_type}
        if self.description:
            out["description"] = self.description
        return out


class Project:
    """Everything one Iterable project holds. Take ``lock`` around any multi-step change."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(FIRST_LIST_ID)
        self.reset()

    def reset(self) -> None:
        """Forget lists, users and field types (list ids keep increasing)."""
        with self.lock:
            self.lists: dict[int, ListRec] = {}
            self.by_email: dict[str, User] = {}
            self.by_user_id: dict[str, User] = {}
            self.field_types: dict[str, str] = {}

    # ---------------------------------------------------------------- lists
    def create_list(self, name: str, description: str = "", list_type: str = "Standard",
                    created_at: int | None = None, invalid_seconds: float = 0.0) -> ListRec:
        """Add a list; it answers invalidListId until ``invalid_seconds`` have passed."""
        with self.lock:
            rec = ListRec(next(self._ids), name, description, list_type,
                          created_at if created_at is not None else int(time.time() * 1000),
                          time.monotonic() + invalid_seconds if invalid_seconds > 0 else 0.0)
            self.lists[rec.id] = rec
            return rec

    def delete_list(self, list_id: int) -> bool:
        """Remove a list; False when there is none."""
        with self.lock:
            return self.lists.pop(list_id, None) is not None

    def usable_list(self, list_id: int) -> ListRec | None:
        """The list if it exists and is past its new-list window."""
        rec = self.lists.get(list_id)
        if rec is None or (rec.fresh_until and time.monotonic() < rec.fresh_until):
            return None
        return rec

    def user_fields(self, project_type: str) -> dict[str, str]:
        """What GET /api/users/getFields answers: the standard fields, then every type-locked dataField."""
        with self.lock:
            return {**STANDARD_FIELDS, LIST_IDS_FIELD.get(project_type, "userListIds"): "long", **self.field_types}

    def seed_fields(self, spec: Any) -> list[str]:
        """Lock field types directly (``{"path": "type"}``); a dotted path also locks its parents as objects."""
        if not isinstance(spec, dict):
            raise SeedError("'fields' must be an object of field path -> type")
        for path, kind in spec.items():
            if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
                raise SeedError(f"fields: {path!r} is not a field path")
            if kind not in FIELD_TYPES:
                raise SeedError(f"fields.{path} must be one of {', '.join(FIELD_TYPES)}")
        with self.lock:
            for path, kind in spec.items():
                parts = path.split(".")
                for depth in range(1, len(parts)):
                    self.field_types.setdefault(".".join(parts[:depth]), "object")
                self.field_types[path] = kind
        return sorted(spec)

    def list_ids_of(self, user: User) -> list[int]:
        """Ids of the lists ``user`` belongs to."""
        with self.lock:
            return sorted(rec.id for rec in self.lists.values() if user in rec.members)

    # ---------------------------------------------------------------- users
    def find(self, email: str | None, user_id: str | None) -> User | None:
        """Look a user up by email first, then userId."""
        user = self.by_email.get(email) if email else None
        if user is None and user_id:
            user = self.by_user_id.get(user_id)
        return user

    def add_user(self, email: str | None, user_id: str | None) -> User:
        """Create and index a user."""
        user = User(email, user_id)
        if email:
            self.by_email[email] = user
        if user_id:
            self.by_user_id[user_id] = user
        return user

    def set_email(self, user: User, email: str) -> None:
        """Give ``user`` this email and index it."""
        if user.email and self.by_email.get(user.email) is user:
            del self.by_email[user.email]
        user.email = email
        self.by_email[email] = user

    def set_user_id(self, user: User, user_id: str) -> None:
        """Give ``user`` this userId and index it."""
        if user.user_id and self.by_user_id.get(user.user_id) is user:
            del self.by_user_id[user.user_id]
        user.user_id = user_id
        self.by_user_id[user_id] = user

    # ---------------------------------------------------------------- seeding
    def seed(self, specs: Any) -> list[int]:
        """Create lists with members straight into the model (no validation of identifiers)."""
        if not isinstance(specs, list):
            raise SeedError("'lists' must be an array")
        with self.lock:
            return [self._seed_list(spec, index) for index, spec in enumerate(specs)]

    def _seed_list(self, spec: Any, index: int) -> int:
        where = f"lists[{index}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise SeedError(f"{where} must be an object with a string 'name'")
        list_type = spec.get("listType", "Standard")
        if list_type not in LIST_TYPES:
            raise SeedError(f"{where}.listType must be one of {', '.join(LIST_TYPES)}")
        created_at = spec.get("createdAt")
        if created_at is not None and (type(created_at) is not int or created_at < 0):
            raise SeedError(f"{where}.createdAt must be epoch milliseconds")
        rec = self.create_list(spec["name"], str(spec.get("description") or ""), list_type, created_at)
        for member in _as_list(spec.get("members", []), f"{where}.members"):
            self._seed_member(rec, member, where)
        if spec.get("generate") is not None:
            self._generate(rec, spec["generate"], where)
        return rec.id

    def _seed_member(self, rec: ListRec, member: Any, where: str) -> None:
        if not isinstance(member, dict):
            raise SeedError(f"{where}.members items must be objects")
        email = member.get("email")
        user_id = member.get("userId")
        if not isinstance(email, (str, type(None))) or not isinstance(user_id, (str, type(None))):
            raise SeedError(f"{where}.members: email and userId must be strings")
        email = email.lower() if email else None
        if not email and not user_id:
            raise SeedError(f"{where}.members items need an email or a userId")
        user = self.find(email, user_id) or self.add_user(email, user_id)
        if email and not user.email:
            self.set_email(user, email)
        if user_id and not user.user_id:
            self.set_user_id(user, user_id)
        fields = member.get("dataFields")
        if isinstance(fields, dict):
            user.fields = {**(user.fields or {}), **fields}
            new_types: dict[str, str] = {}
            if check_types(fields, self.field_types, new_types) is None:  # seeded values lock types too
                self.field_types.update(new_types)
        rec.members[user] = None

    def _generate(self, rec: ListRec, gen: Any, where: str) -> None:
        if not isinstance(gen, dict) or type(gen.get("count")) is not int or gen["count"] < 0:
            raise SeedError(f"{where}.generate needs a non-negative integer 'count'")
        pattern = gen.get("email_pattern", "member{i}@example.com")
        id_pattern = gen.get("user_id_pattern")
        start = gen.get("start", 0)
        for name, value in (("email_pattern", pattern), ("user_id_pattern", id_pattern)):
            if value is not None and (not isinstance(value, str) or value.count("{i}") != 1):
                raise SeedError(f"{where}.generate.{name} must be a string containing '{{i}}' once")
        if pattern is None and id_pattern is None:
            raise SeedError(f"{where}.generate needs email_pattern or user_id_pattern")
        if type(start) is not int:
            raise SeedError(f"{where}.generate.start must be an integer")
        if pattern is not None and id_pattern is None:
            self._generate_emails(rec, pattern.lower(), range(start, start + gen["count"]))
            return
        for i in range(start, start + gen["count"]):
            email = pattern.replace("{i}", str(i)).lower() if pattern else None
            self._seed_member(rec, {"email": email, "userId": id_pattern.replace("{i}", str(i))}, where)

    def _generate_emails(self, rec: ListRec, pattern: str, numbers: range) -> None:
        """Fast path for email-only members (a million in about a second)."""
        prefix, _, suffix = pattern.partition("{i}")
        by_email = self.by_email
        members = rec.members
        for i in numbers:
            email = f"{prefix}{i}{suffix}"
            user = by_email.get(email)
            if user is None:
                user = by_email[email] = User(email, None)
            members[user] = None


def _as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SeedError(f"{where} must be an array")
    return value
