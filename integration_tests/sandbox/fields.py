"""dataFields: project-wide type locking (first value wins) and merging onto a profile."""

from __future__ import annotations

import re
from typing import Any

# ISO-8601 date or date-time, plus Iterable's own "2021-06-30 20:04:57 +00:00" form.
DATE_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?: ?(?:Z|[+-]\d{2}(?::?\d{2})?))?)?"
)
_SCALAR_TYPES = {bool: "boolean", int: "long", float: "double", dict: "object", list: "array"}


def value_type(value: Any) -> str | None:
    """The Iterable type a JSON value would lock a field to; None for null."""
    if value is None:
        return None
    if type(value) is str:
        return "date" if DATE_RE.fullmatch(value) else "string"
    return _SCALAR_TYPES.get(type(value), "string")


def compatible(locked: str, incoming: str) -> bool:
    """Whether a value of type ``incoming`` may be stored in a field locked to ``locked``."""
    return locked == incoming or (locked == "double" and incoming == "long") or (
        locked == "string" and incoming == "date")


def check_types(fields: dict[str, Any], locked: dict[str, str], new: dict[str, str],
                prefix: str = "") -> str | None:
    """Return the first field path whose value clashes with its locked type.

    Types of fields not locked yet are added to ``new`` (the caller commits them if the row applies).
    Nested objects lock their own paths (``a.b``); arrays lock as a whole.
    """
    for name, value in fields.items():
        kind = value_type(value)
        if kind is None:
            continue
        path = prefix + name
        current = locked.get(path) or new.get(path)
        if current is None:
            new[path] = kind
        elif not compatible(current, kind):
            return path
        if kind == "object":
            bad = check_types(value, locked, new, path + ".")
            if bad is not None:
                return bad
    return None


def merge(profile: dict[str, Any], fields: dict[str, Any], nested: bool) -> None:
    """Merge ``fields`` onto ``profile``: top-level keys overwrite, objects merge when ``nested``."""
    for name, value in fields.items():
        current = profile.get(name)
        if nested and type(value) is dict and type(current) is dict:
            merged = dict(current)
            merge(merged, value, True)
            profile[name] = merged
        else:
            profile[name] = value
