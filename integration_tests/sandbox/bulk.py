"""Per-row processing of lists/subscribe and lists/unsubscribe into a UserBulkUpdateListResponse.

Each failed row appears exactly once across the ``failedUpdates`` buckets, so ``failCount`` always
equals the number of bucket entries. A row is reported by its email when it has one (userId in
userID-based projects), except invalid identifiers, which are reported as the invalid value itself.
"""

from __future__ import annotations

from typing import Any

from .fields import check_types, merge
from .state import ListRec, Project, User
from .validation import EmailValidator, valid_user_id

BUCKETS = ("conflictEmails", "conflictUserIds", "forgottenEmails", "forgottenUserIds", "invalidDataEmails",
           "invalidDataUserIds", "invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds")
CREATE = "create"


class RowFailure(Exception):
    """A row that is not applied; ``kind`` is the bucket prefix (conflict, notFound, ...)."""

    def __init__(self, kind: str, by_email: bool | None = None, value: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.by_email = by_email
        self.value = value


class BulkContext:
    """What a request needs to know about the project and its settings."""

    def __init__(self, project: Project, validator: EmailValidator, project_type: str,
                 forgotten_emails: frozenset[str], forgotten_user_ids: frozenset[str]) -> None:
        self.project = project
        self.valid_email = validator
        self.project_type = project_type
        self.forgotten_emails = forgotten_emails
        self.forgotten_user_ids = forgotten_user_ids


def empty_response() -> dict[str, Any]:
    """A UserBulkUpdateListResponse with every bucket present."""
    return {"successCount": 0, "failCount": 0, "createdFields": [], "filteredOutFields": [],
            "invalidEmails": [], "invalidUserIds": [], "failedUpdates": {name: [] for name in BUCKETS}}


def identifiers(ctx: BulkContext, row: dict[str, Any]) -> tuple[str | None, str | None]:
    """Validated (lowercased email, userId) of a row; RowFailure when one is malformed or missing."""
    email = row.get("email")
    user_id = row.get("userId")
    if email is not None:
        email = email.lower()
        if not ctx.valid_email(email):
            raise RowFailure("invalid", True, email)
    if user_id is not None and not valid_user_id(user_id):
        raise RowFailure("invalid", False, user_id)
    if email is None and user_id is None:
        raise RowFailure("invalid", True, "")
    if ctx.project_type == "userid" and user_id is None:
        raise RowFailure("invalid", False, "")
    return email, user_id


def resolve(ctx: BulkContext, email: str | None, user_id: str | None, prefer_user_id: bool) -> User | str:
    """The existing user a subscribe row addresses, or CREATE; RowFailure on conflict/unknown."""
    project = ctx.project
    if ctx.project_type == "userid":
        return project.by_user_id.get(user_id) or CREATE
    if ctx.project_type == "email":
        if email is not None:
            return project.by_email.get(email) or CREATE
        user = project.by_user_id.get(user_id)
        if user is None and not prefer_user_id:
            raise RowFailure("notFound")
        return user or CREATE
    by_email = project.by_email.get(email) if email else None
    by_id = project.by_user_id.get(user_id) if user_id else None
    if by_email is not None and by_id is not None and by_email is not by_id:
        raise RowFailure("conflict")
    user = by_email or by_id
    if user is not None and email and user_id and (
            (user.email and user.email != email) or (user.user_id and user.user_id != user_id)):
        raise RowFailure("conflict")
    return user or CREATE


def apply_identity(ctx: BulkContext, target: User | str, email: str | None, user_id: str | None) -> User:
    """Create the user or attach the row's identifiers to it."""
    project = ctx.project
    if isinstance(target, str):
        if email is None and ctx.project_type == "email":
            email = f"{user_id}@placeholder.email"
        return project.add_user(email, user_id)
    user = target
    if email and user.email != email and (ctx.project_type == "userid" or not user.email):
        project.set_email(user, email)
    if user_id and user.user_id != user_id and (ctx.project_type == "email" or not user.user_id):
        project.set_user_id(user, user_id)
    return user


def subscribe_row(ctx: BulkContext, rec: ListRec, row: dict[str, Any], existing_only: bool,
                  created: set[str]) -> None:
    """Apply one subscribe row or raise RowFailure (nothing is changed on failure)."""
    email, user_id = identifiers(ctx, row)
    if email is not None and email in ctx.forgotten_emails:
        raise RowFailure("forgotten", True, email)
    if user_id is not None and user_id in ctx.forgotten_user_ids:
        raise RowFailure("forgotten", False, user_id)
    target = resolve(ctx, email, user_id, row.get("preferUserId") is True)
    if target == CREATE and existing_only and ctx.project_type != "email":
        raise RowFailure("notFound")
    fields = row.get("dataFields")
    new_types: dict[str, str] = {}
    if fields and check_types(fields, ctx.project.field_types, new_types) is not None:
        raise RowFailure("invalidData")
    user = apply_identity(ctx, target, email, user_id)
    if fields:
        ctx.project.field_types.update(new_types)
        created.update(new_types)
        if user.fields is None:
            user.fields = {}
        merge(user.fields, fields, row.get("mergeNestedObjects") is True)
    rec.members[user] = None


def unsubscribe_row(ctx: BulkContext, rec: ListRec, row: dict[str, Any]) -> None:
    """Remove one member or raise RowFailure."""
    email, user_id = identifiers(ctx, row)
    project = ctx.project
    if ctx.project_type == "userid":
        candidates = {project.by_user_id.get(user_id)}
    else:
        candidates = {project.by_email.get(email) if email else None,
                      project.by_user_id.get(user_id) if user_id else None}
    candidates.discard(None)
    if len(candidates) > 1:
        raise RowFailure("conflict")
    user = candidates.pop() if candidates else None
    if user is None or user not in rec.members:
        raise RowFailure("notFound")
    del rec.members[user]


def _report(ctx: BulkContext, out: dict[str, Any], failure: RowFailure, row: dict[str, Any]) -> None:
    by_email, value = failure.by_email, failure.value
    if by_email is None:
        email, user_id = row.get("email"), row.get("userId")
        by_email = email is not None and (ctx.project_type != "userid" or user_id is None)
        value = email.lower() if by_email else user_id
    out["failedUpdates"][failure.kind + ("Emails" if by_email else "UserIds")].append(value)
    out["failCount"] += 1


def run_bulk(ctx: BulkContext, rec: ListRec, body: dict[str, Any], unsubscribe: bool) -> dict[str, Any]:
    """Process every row of a validated body against ``rec``; caller holds the project lock."""
    out = empty_response()
    created: set[str] = set()
    existing_only = body.get("updateExistingUsersOnly") is True
    for row in body["subscribers"]:
        try:
            if unsubscribe:
                unsubscribe_row(ctx, rec, row)
            else:
                subscribe_row(ctx, rec, row, existing_only, created)
            out["successCount"] += 1
        except RowFailure as failure:
            _report(ctx, out, failure, row)
    out["createdFields"] = sorted(created)
    out["invalidEmails"] = list(out["failedUpdates"]["invalidEmails"])
    out["invalidUserIds"] = list(out["failedUpdates"]["invalidUserIds"])
    return out
