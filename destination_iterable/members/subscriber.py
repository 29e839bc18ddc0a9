"""Turns a record's data into a subscriber row (normalised identity + selected profile fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from destination_iterable.iterable.limits import ROW_BYTES_LIMIT
from destination_iterable.members.fields import FieldSelector
from destination_iterable.members.identity import (
    MISSING_IDENTIFIER,
    compile_path,
    get_path,
    normalize_email,
    normalize_user_id,
)

RECORD_TOO_LARGE = "record_too_large"
NOT_AN_OBJECT = "record_not_an_object"


class SubscriberBuilder:
    """Applies the identity rules and field selection of one configuration."""

    def __init__(self, email_field: str | None, user_id_field: str | None, data_fields: tuple[str, ...]) -> None:
        self.email_path = compile_path(email_field) if email_field else ()
        self.user_id_path = compile_path(user_id_field) if user_id_field else ()
        paths = [p for p in (self.email_path, self.user_id_path) if p]
        self.selector = FieldSelector(list(data_fields), paths) if data_fields else None

    def identity(self, data: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
        """-> (email, user_id, reject_reason). A present-but-invalid identifier rejects the record."""
        email = user_id = None
        email_reason = user_reason = MISSING_IDENTIFIER
        if self.email_path:
            email, email_reason = normalize_email(get_path(data, self.email_path))
        if self.user_id_path:
            user_id, user_reason = normalize_user_id(get_path(data, self.user_id_path))
        if email_reason not in (None, MISSING_IDENTIFIER):
            return None, None, email_reason
        if user_reason not in (None, MISSING_IDENTIFIER):
            return None, None, user_reason
        if email is None and user_id is None:
            return None, None, MISSING_IDENTIFIER
        return email, user_id, None

    def add_row(self, email: str | None, user_id: str | None, data: Mapping[str, Any],
                approx_bytes: int) -> tuple[dict[str, Any] | None, str | None]:
        """Subscriber row for `lists/subscribe`, or (None, reason) when it cannot be sent."""
        row: dict[str, Any] = {}
        if email is not None:
            row["email"] = email
        if user_id is not None:
            row["userId"] = user_id
        fields = self.selector.select(data) if self.selector is not None else None
        if fields:
            row["dataFields"] = fields
            if approx_bytes > ROW_BYTES_LIMIT and len(orjson.dumps(row)) > ROW_BYTES_LIMIT:
                return None, RECORD_TOO_LARGE
        return row, None

    @staticmethod
    def remove_row(email: str | None, user_id: str | None) -> dict[str, Any]:
        """Row for `lists/unsubscribe`: one identifier, email first."""
        return {"email": email} if email is not None else {"userId": user_id}
