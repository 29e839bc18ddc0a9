"""Turns a record's data into a subscriber row (normalised identity + selected profile fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from destination_iterable.fields import FieldSelector
from destination_iterable.identity import (
    MISSING_IDENTIFIER,
    compile_path,
    get_path,
    normalize_email,
    normalize_user_id,
)

RECORD_TOO_LARGE = "record_too_large"
NOT_AN_OBJECT = "record_not_an_object"
ROW_BYTES_LIMIT = 3_500_000  # a single row must leave room in a 4 MB request


class SubscriberBuilder:
    """Applies the identity rules and field selection of one configuration."""

    def __init__(self, email_field: str | None, user_id_field: str | None, data_fields: tuple[str, ...]) -> None:
        self.email_path = compile_path(email_field) if email_field else ()
        self.user_id_path = compile_path(user_id_field) if user_id_field else ()
        paths = [p for p in (self.email_path, self.user_id_path) if p]
        self.selector = FieldSelector(list(data_fields), paths) if data_fields else None
        self._email_key = self.email_path[0] if len(self.email_path) == 1 else None
        self._user_key = self.user_id_path[0] if len(self.user_id_path) == 1 else None
        # Hot-path shortcut for callers: the email's top-level key when the email is the only identifier
        # (then identity(data) == normalize_email(data.get(email_only_key)) + (user_id None)), else None.
        self.email_only_key = self._email_key if not self.user_id_path else None
        self._select = self.selector.select if self.selector is not None else None
        # Hot-path shortcut: the top-level profile fields to copy when no other selection rule applies, else None.
        self.flat_fields = self.selector.flat_names if self.selector is not None else ()

    def identity(self, data: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
        """-> (email, user_id, reject_reason). A present-but-invalid identifier rejects the record."""
        email = user_id = None
        email_reason = user_reason = MISSING_IDENTIFIER
        if self.email_path:
            raw = data.get(self._email_key) if self._email_key is not None else get_path(data, self.email_path)
            email, email_reason = normalize_email(raw)
        if self.user_id_path:
            raw = data.get(self._user_key) if self._user_key is not None else get_path(data, self.user_id_path)
            user_id, user_reason = normalize_user_id(raw)
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
        if user_id is None:
            row: dict[str, Any] = {"email": email} if email is not None else {}
        else:
            row = {"email": email, "userId": user_id} if email is not None else {"userId": user_id}
        select = self._select
        if select is not None:
            fields = select(data)
            if fields:
                row["dataFields"] = fields
                if approx_bytes > ROW_BYTES_LIMIT and len(orjson.dumps(row)) > ROW_BYTES_LIMIT:
                    return None, RECORD_TOO_LARGE
        return row, None

    @staticmethod
    def remove_row(email: str | None, user_id: str | None) -> dict[str, Any]:
        """Row for `lists/unsubscribe`: one identifier, email first."""
        return {"email": email} if email is not None else {"userId": user_id}
