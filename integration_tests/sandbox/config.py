"""Sandbox knobs: one table drives the constructor, the CLI flags and ``/_sandbox/config``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROJECT_TYPES = ("hybrid", "userid", "email")
SUBSCRIBE_LIMITERS = ("token_bucket", "fixed_window", "sliding_window", "per_minute")


class KnobError(ValueError):
    """A knob name or value that the sandbox does not accept."""


def _number(value: Any, minimum: float = 0.0, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise KnobError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise KnobError(f"expected a number, got {value!r}") from None
    if number != number or number < minimum or (maximum is not None and number > maximum):
        raise KnobError(f"{number} is outside [{minimum}, {maximum if maximum is not None else 'inf'}]")
    return number


def _rate(value: Any) -> float:
    return _number(value, 0.0, 1.0)


def _count(value: Any) -> int:
    number = _number(value)
    if number != int(number):
        raise KnobError(f"expected a whole number, got {value!r}")
    return int(number)


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise KnobError(f"expected true or false, got {value!r}")


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
        raise KnobError(f"expected a list of strings or a comma-separated string, got {value!r}")
    return tuple(v.strip() for v in value if v.strip())


def _emails(value: Any) -> tuple[str, ...]:
    return tuple(v.lower() for v in _names(value))


def _project_type(value: Any) -> str:
    if value not in PROJECT_TYPES:
        raise KnobError(f"expected one of {', '.join(PROJECT_TYPES)}, got {value!r}")
    return value


def _subscribe_limiter(value: Any) -> str:
    name = value.strip().lower().replace("-", "_") if isinstance(value, str) else value
    if name not in SUBSCRIBE_LIMITERS:
        raise KnobError(f"expected one of {', '.join(SUBSCRIBE_LIMITERS)}, got {value!r}")
    return name


@dataclass(frozen=True)
class Knob:
    """One run-time setting: its default, how to coerce it, and its help text."""

    name: str
    default: Any
    coerce: Callable[[Any], Any]
    help: str


KNOBS: tuple[Knob, ...] = (
    Knob("subscribe_rps", 0.0, _number, "shared subscribe+unsubscribe limit in requests/s (0 = unlimited)"),
    Knob("subscribe_burst", None, _optional_number, "subscribe bucket capacity (default max(1, rps))"),
    Knob("subscribe_limiter", "token_bucket", _subscribe_limiter,
         "model of the subscribe limit: token_bucket, fixed_window, sliding_window or per_minute"),
    Knob("subscribe_per_minute", None, _optional_number,
         "per_minute model: subscribe+unsubscribe per wall-clock minute (default 60 x rps; 0 = unlimited)"),
    Knob("lists_read_rps", 100.0, _number, "GET /api/lists limit per second (0 = unlimited)"),
    Knob("list_write_rps", 10.0, _number, "create+delete list limit per second (0 = unlimited)"),
    Knob("get_users_per_minute", 5.0, _number, "getUsers limit per minute (0 = unlimited)"),
    Knob("size_per_minute", 5.0, _number, "list size limit per minute (0 = unlimited)"),
    Knob("error_rate", 0.0, _rate, "fraction of /api requests answered 500/502/503/504"),
    Knob("drop_rate", 0.0, _rate, "fraction of /api requests whose connection is closed unanswered"),
    Knob("latency_ms", 0.0, _number, "delay added to every /api answer, in ms"),
    Knob("latency_jitter_ms", 0.0, _number, "uniform random extra delay 0..N ms"),
    Knob("latency_before_share", 0.0, _rate,
         "fraction of each /api delay slept before the rate limiter (the rest after admission)"),
    Knob("pause_every_s", 0.0, _number,
         "the API stops for pause_ms at the end of every such period, from the sandbox's start (0 = never)"),
    Knob("pause_ms", 0.0, _number, "length of each pause: requests reach the limiter, and answers leave, after it"),
    Knob("new_list_invalid_seconds", 0.0, _number, "a list created via the API answers invalidListId for N s"),
    Knob("get_users_503_next", 0, _count, "the next N getUsers calls answer 503"),
    Knob("get_users_503_rate", 0.0, _rate, "fraction of getUsers calls answered 503"),
    Knob("apply_then_drop_rate", 0.0, _rate, "fraction of subscribe/unsubscribe applied, then dropped"),
    Knob("echo_api_key_in_errors", False, _flag, "put the caller's API key in every 4xx/5xx body"),
    Knob("forgotten_emails", (), _emails, "GDPR-forgotten emails (comma-separated on the CLI)"),
    Knob("forgotten_user_ids", (), _names, "GDPR-forgotten userIds (comma-separated on the CLI)"),
    Knob("project_type", "hybrid", _project_type, "hybrid, userid or email"),
    Knob("seed", 1234, _count, "seed of the fault RNG (set it to re-seed)"),
    Knob("max_subscribers", 1000, _count, "most subscribers per subscribe/unsubscribe request"),
    Knob("max_body_bytes", 4 * 1024 * 1024, _count, "largest accepted request body in bytes"),
    Knob("project_id", 4242, _count, "project id shown in messages"),
)
KNOB_BY_NAME = {knob.name: knob for knob in KNOBS}


class Config:
    """Thread-safe knob values; reads are plain attribute reads."""

    def __init__(self, **values: Any) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Callable[[set[str]], None]] = []
        for knob in KNOBS:
            object.__setattr__(self, knob.name, knob.coerce(knob.default))
        self.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in KNOB_BY_NAME:
            raise AttributeError("use Config.update() to change knobs")
        object.__setattr__(self, name, value)

    def on_change(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener(changed_names)`` after every update."""
        self._listeners.append(listener)

    def update(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply knob values atomically; raise KnobError on any bad one."""
        unknown = sorted(set(values) - set(KNOB_BY_NAME))
        if unknown:
            raise KnobError(f"unknown knob(s): {', '.join(unknown)}")
        coerced = {}
        for name, value in values.items():
            try:
                coerced[name] = KNOB_BY_NAME[name].coerce(value)
            except KnobError as exc:
                raise KnobError(f"{name}: {exc}") from None
        with self._lock:
            for name, value in coerced.items():
                object.__setattr__(self, name, value)
        for listener in self._listeners:
            listener(set(coerced))
        return self.as_dict()

    def consume_get_users_503(self) -> bool:
        """Take one from ``get_users_503_next``; True when a 503 is due."""
        with self._lock:
            if self.get_users_503_next <= 0:
                return False
            object.__setattr__(self, "get_users_503_next", self.get_users_503_next - 1)
            return True

    def as_dict(self) -> dict[str, Any]:
        """Every knob and its current value (lists for the name sets)."""
        out = {}
        for knob in KNOBS:
            value = getattr(self, knob.name)
            out[knob.name] = list(value) if isinstance(value, tuple) else value
        return out
