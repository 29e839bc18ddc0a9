"""Profile fields (Iterable ``dataFields``): which record fields to send, and making their values JSON-safe.

Selection rules (``FieldSelector``):

* ``[]`` -- membership only, nothing is sent;
* ``["*"]`` -- every top-level field except the identifier fields (the top-level key of each identifier path of
  length 1; a nested identifier path such as ``contact.email`` excludes nothing) and Airbyte's own fields
  (``_airbyte_*``, ``_ab_cdc_*``). ``"*"`` cannot be combined with other names;
* explicit names -- only those fields. A dotted name reaches into nested objects and is written back nested:
  ``"address.city"`` sends ``{"address": {"city": ...}}``; several names under one parent are merged. A name
  already covered by a selected parent (``"address"`` and ``"address.city"``) is redundant and ignored.
  Explicit names are sent as asked, even when they are identifier fields.

A field missing from the record (or a nested name whose parent is missing or not an object) is not sent. A
field present with ``null`` is sent as ``null`` (which clears it in Iterable), and so are NaN/Infinity.
"""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from enum import Enum
from itertools import islice
from typing import Any, Literal

__all__ = ["ALL_FIELDS", "RESERVED_PREFIXES", "FieldSelector", "json_safe"]

RESERVED_PREFIXES = ("_airbyte_", "_ab_cdc_")
# Iterable's system profile fields (and its identifier keys): "*" never copies a record key with these names.
ITERABLE_SYSTEM_FIELDS = frozenset({
    "email", "userId", "emailListIds", "userListIds", "itblInternal", "itblDS", "itblUserId", "profileUpdatedAt",
    "signupDate", "signupSource", "subscribedMessageTypeIds", "unsubscribedChannelIds",
    "unsubscribedMessageTypeIds", "receivedSMSDisclaimer",
})
ALL_FIELDS = "*"

MISSING: Any = object()
# Values of these exact types are already JSON-safe.
PLAIN_TYPES = frozenset({str, bool, type(None)})
# orjson serialises integers in [-2**63, 2**64 - 1]; anything wider becomes a float (as orjson.loads does).
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# "*" mode remembers the keep/skip decision for this many distinct record keys (then decides each time).
_MAX_DECIDED_KEYS = 10_000


# ---------------------------------------------------------------------------------------------------------
# json_safe


def json_safe(value: Any) -> Any:
    """Return ``value`` in a form every JSON encoder accepts, with the same meaning.

    * ``str``/``int``/``bool``/``None``/finite ``float`` and dicts/lists made only of them: returned as is
      (the same object: treat the result as read-only);
    * ``float`` NaN/Infinity -> ``None``; an int outside the 64-bit range -> ``float``;
    * ``datetime``/``date``/``time`` -> ISO-8601 string (``isoformat()``: naive values without offset, aware
      ones with it); pandas ``NaT``/``NA`` -> ``None``;
    * ``Decimal`` -> ``int`` when it has no fractional digits (exponent >= 0, e.g. ``Decimal("12")``), else
      ``float`` -- judged by the exponent, not the value, so a NUMERIC(10,2) column always gives floats
      (``Decimal("5.00")`` -> ``5.0``) and keeps one Iterable field type; NaN/Infinity -> ``None``;
    * ``bytes``/``bytearray``/``memoryview`` -> standard base64 string (with padding);
    * ``tuple`` -> list; ``set``/``frozenset`` -> list (sorted when the items are sortable); other mappings ->
      dict; dict keys -> ``str``; containers are converted recursively;
    * ``Enum`` members -> their value; ``str``/``int``/``float`` subclasses (e.g. numpy floats) -> the base
      type; numpy scalars and arrays -> ``.tolist()``;
    * anything else -> ``str(value)`` (e.g. ``UUID``, ``timedelta``).
    """
    tp = type(value)
    if tp in PLAIN_TYPES:
        return value
    if tp is int:
        return value if _INT_MIN <= value <= _INT_MAX else _wide_int(value)
    if tp is float:
        return value if value - value == 0.0 else None
    if tp is dict:
        return _safe_dict(value)
    if tp is list:
        return _safe_list(value)
    return _convert_other(value)


def _safe_value(value: Any) -> Any:
    """A JSON-safe form of one non-plain value inside a dict or list (ints in range and finite floats kept)."""
    tp = type(value)
    if tp is int:
        return value if _INT_MIN <= value <= _INT_MAX else _wide_int(value)
    if tp is float:
        return value if value - value == 0.0 else None
    return json_safe(value)


def _safe_dict(data: dict[Any, Any]) -> dict[str, Any]:
    """Return ``data`` itself when it is already JSON-safe, else a converted copy."""
    out: dict[str, Any] | None = None
    done = 0
    for key, value in data.items():
        new = value if type(value) in PLAIN_TYPES else _safe_value(value)
        if out is None:
            if new is value and type(key) is str:
                done += 1
                continue
            out = dict(islice(data.items(), done))
        out[key if type(key) is str else _safe_key(key)] = new
    return data if out is None else out


def _safe_list(items: list[Any]) -> list[Any]:
    """Return ``items`` itself when it is already JSON-safe, else a converted copy."""
    out: list[Any] | None = None
    for index, value in enumerate(items):
        new = value if type(value) in PLAIN_TYPES else _safe_value(value)
        if out is None:
            if new is value:
                continue
            out = items[:index]
        out.append(new)
    return items if out is None else out


def _safe_key(key: Any) -> str:
    """A JSON object key: strings (and str subclasses) keep their text, Enums give their value, others str()."""
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, Enum):
        return _safe_key(key.value)
    return str(key)


def _wide_int(value: int) -> float | str:
    """An int outside the 64-bit range: a float, or its decimal string when it exceeds the float range."""
    try:
        return float(value)
    except OverflowError:
        return str(value)


def _convert_other(value: Any) -> Any:
    """json_safe for everything that is not an exact plain JSON type (the slow path)."""
    if isinstance(value, (_dt.date, _dt.time)):  # datetime is a date subclass
        if value != value:  # pandas NaT
            return None
        return value.isoformat()
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:  # no fractional digits: "12", "1E+3"
            return json_safe(int(value))
        return json_safe(float(value))
    if isinstance(value, str):
        return str.__str__(value)  # str subclasses, including str-valued Enums: their text
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, int):  # bool is never subclassed; int subclasses such as IntEnum handled above
        return json_safe(int(value))
    if isinstance(value, float):  # e.g. numpy.float64
        return json_safe(float(value))
    if isinstance(value, Mapping):
        return _safe_dict(dict(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (tuple, list)):
        return _safe_list(list(value))
    if isinstance(value, AbstractSet):
        items = list(value)
        try:
            items.sort()
        except TypeError:
            pass
        return _safe_list(items)
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        return _convert_numpy(value)
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing values
        return None
    return str(value)


def _convert_numpy(value: Any) -> Any:
    """numpy scalars/arrays without importing numpy: datetimes as ISO strings, the rest via ``tolist()``."""
    name = type(value).__name__
    if name in ("datetime64", "timedelta64"):
        text = str(value)
        return None if text == "NaT" else text
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        return str(value)
    return json_safe(tolist())


# ---------------------------------------------------------------------------------------------------------
# FieldSelector


def _parse_name(name: str) -> tuple[str, ...]:
    """Validate one configured field name and split it on dots."""
    if name.startswith(RESERVED_PREFIXES):
        raise ValueError(
            f"profile field {name!r} cannot be sent: fields starting with "
            f"{' or '.join(RESERVED_PREFIXES)} are Airbyte's own"
        )
    path = tuple(name.split("."))
    if "" in path:
        raise ValueError(f"invalid profile field name {name!r}: empty segment in dotted name")
    return path


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Value at a nested path, or ``MISSING`` when a step is missing or not a mapping."""
    value: Any = data
    for key in path:
        if type(value) is not dict and not isinstance(value, Mapping):
            return MISSING
        value = value.get(key, MISSING)
        if value is MISSING:
            return MISSING
    return value


class FieldSelector:
    """Picks the Iterable ``dataFields`` out of a record; built once per stream from the configuration."""

    __slots__ = ("_decided", "_excluded", "_flat", "_mode", "_nested")

    _NONE, _ALL, _EXPLICIT = 0, 1, 2

    def __init__(self, data_fields: Sequence[str], identifier_paths: Sequence[tuple[str, ...]]) -> None:
        """Validate the configured names; raises ``ValueError`` on a configuration error."""
        if isinstance(data_fields, str):
            raise ValueError("profile fields must be a list of field names, not a single string")
        for name in data_fields:
            if not isinstance(name, str) or not name:
                raise ValueError(f"invalid profile field name {name!r}: must be a non-empty string")
        names = list(dict.fromkeys(data_fields))  # drop duplicates, keep order
        self._excluded: frozenset[str] = frozenset()
        self._decided: dict[Any, str | Literal[False]] = {}  # "*" mode: record key -> output key or False
        self._flat: tuple[str, ...] = ()
        self._nested: tuple[tuple[tuple[str, ...], str], ...] = ()
        if not names:
            self._mode = self._NONE
            return
        if ALL_FIELDS in names:
            if len(names) > 1:
                raise ValueError('"*" (all fields) cannot be combined with other profile field names')
            self._mode = self._ALL
            self._excluded = frozenset(path[0] for path in identifier_paths if len(path) == 1) | ITERABLE_SYSTEM_FIELDS
            return
        self._mode = self._EXPLICIT
        paths = [_parse_name(name) for name in names]
        chosen = set(paths)
        # A name under another selected name is already sent whole with its parent.
        paths = [p for p in paths if not any(p[:i] in chosen for i in range(1, len(p)))]
        self._flat = tuple(p[0] for p in paths if len(p) == 1)
        self._nested = tuple((p, p[-1]) for p in paths if len(p) > 1)

    def _decide(self, raw_key: Any) -> str | Literal[False]:
        """``"*"`` mode: the output key for a record key, or ``False`` to skip it; remembered per key."""
        key = raw_key if type(raw_key) is str else _safe_key(raw_key)
        decision: str | Literal[False] = (
            False if key in self._excluded or key.startswith(RESERVED_PREFIXES) else key
        )
        if type(raw_key) is str and len(self._decided) < _MAX_DECIDED_KEYS:  # 1 == True == 1.0: cache str only
            self._decided[raw_key] = decision
        return decision

    @property
    def sends_fields(self) -> bool:
        """False in membership-only mode (``select`` always returns ``None``)."""
        return self._mode != self._NONE

    def select(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The JSON-safe ``dataFields`` for one record, or ``None`` when there is nothing to send.

        The returned dict is always a new one; nested values may be shared with the record (read-only).
        """
        mode = self._mode
        if mode == self._ALL:
            out: dict[str, Any] = {}
            decided = self._decided
            for raw_key, value in data.items():
                key = decided.get(raw_key)
                if key is None:
                    key = self._decide(raw_key)
                if key is False:
                    continue
                tp = type(value)
                if tp in PLAIN_TYPES:
                    out[key] = value
                elif tp is float:
                    out[key] = value if value - value == 0.0 else None
                else:
                    out[key] = json_safe(value)
            return out or None
        if mode == self._NONE:
            return None
        out = {}
        get = data.get
        for key in self._flat:
            value = get(key, MISSING)
            if type(value) in PLAIN_TYPES:  # str/bool/None: already JSON-safe (the usual case, no call)
                out[key] = value
            elif value is not MISSING:
                out[key] = json_safe(value)
        if not self._nested:
            return out or None
        for path, leaf in self._nested:
            value = _lookup(data, path)
            if value is MISSING:
                continue
            node = out
            for step in path[:-1]:
                child = node.get(step)
                if child is None:
                    child = node[step] = {}
                node = child
            node[leaf] = json_safe(value)
        return out or None
