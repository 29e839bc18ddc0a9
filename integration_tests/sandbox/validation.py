"""Email/userId rules and the hot-path request-body checks.

The body checks are hand-coded twins of the JSON Schemas in ``schemas/`` (a test keeps them in step):
jsonschema is far too slow for 50 bodies of 1,000 subscribers a second.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

MAX_USER_ID_LEN = 52
MAX_LOCAL_LEN = 64
MAX_DOMAIN_LEN = 253
TLDS_PATH = Path(__file__).resolve().parents[2] / "destination_iterable" / "data" / "tlds.txt"

# Apache Commons Validator EmailValidator, translated (Java \s and \p{Cntrl} are ASCII-only).
_SPECIAL = r"\x00-\x1f\x7f()<>@,;:'\\\".\[\]"
_VALID_CHAR = rf"(?:\\.|[^ \t\n\x0b\f\r{_SPECIAL}])"
_QUOTED = r'(?:"(?:\\"|[^"])*")'
_WORD = rf"(?:(?:{_VALID_CHAR}|')+|{_QUOTED})"
_USER_RE = re.compile(rf"{_WORD}(?:\.{_WORD})*", re.DOTALL)
_LINE_BREAKS = re.compile("[\n\r\x85\u2028\u2029]")
_LABEL = r"[A-Za-z0-9](?>[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP = r"[A-Za-z](?>[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"(?:{_LABEL}\.)+({_TOP})\.?")
_WHITESPACE = re.compile(r"\s")


def load_tlds(path: Path = TLDS_PATH) -> frozenset[str] | None:
    """IANA TLDs from ``destination_iterable/data/tlds.txt`` if that file exists, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    tlds = frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#")
    return tlds or None


class EmailValidator:
    """Format + TLD check in the manner of Apache Commons ``EmailValidator.getInstance()``."""

    def __init__(self, tlds: frozenset[str] | None = None) -> None:
        self.tlds = tlds

    def __call__(self, email: str) -> bool:
        """True when ``email`` is acceptable (case does not matter)."""
        if not email or email.endswith("."):
            return False
        local, at, domain = email.rpartition("@")
        if not at or not local or not domain or _WHITESPACE.search(domain) or _LINE_BREAKS.search(local):
            return False
        if len(local) > MAX_LOCAL_LEN or not _USER_RE.fullmatch(local):
            return False
        return self.valid_domain(domain)

    def valid_domain(self, domain: str) -> bool:
        """Domain part: an IP literal in brackets, or a name with a known top-level domain."""
        if domain.startswith("[") and domain.endswith("]"):
            try:
                ipaddress.ip_address(domain[1:-1])
            except ValueError:
                return False
            return True
        if not domain.isascii():
            try:
                domain = domain.encode("idna").decode("ascii")
            except UnicodeError:
                return False
        if len(domain) > MAX_DOMAIN_LEN:
            return False
        match = _DOMAIN_RE.fullmatch(domain)
        return match is not None and self.valid_tld(match.group(1).lower())

    def valid_tld(self, tld: str) -> bool:
        """A TLD from the IANA list when we have one, else any alphabetic 2-63 chars or ``xn--``."""
        if self.tlds is not None:
            return tld in self.tlds
        return tld.startswith("xn--") or (2 <= len(tld) <= 63 and tld.isalpha())


def valid_user_id(user_id: str) -> bool:
    """Iterable's userId rule: 1-52 printable ASCII chars, no leading/trailing space."""
    return (0 < len(user_id) <= MAX_USER_ID_LEN and user_id.isascii() and user_id.isprintable()
            and user_id[0] != " " and user_id[-1] != " ")


class RequestError(Exception):
    """A whole-request problem: answered with ``status`` and an Iterable error body."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def bad_params(msg: str) -> RequestError:
    """A 400 BadParams error."""
    return RequestError(400, "BadParams", f"Invalid params: {msg}")


_TYPE_NAMES = {int: "an integer", str: "a string", bool: "a boolean", dict: "an object", list: "an array"}
SUBSCRIBE_FIELDS = {"listId": int, "subscribers": list, "updateExistingUsersOnly": bool}
UNSUBSCRIBE_FIELDS = {"listId": int, "subscribers": list, "campaignId": int, "channelUnsubscribe": bool}
SUBSCRIBER_FIELDS = {"email": str, "userId": str, "dataFields": dict, "preferUserId": bool,
                     "mergeNestedObjects": bool}
UNSUBSCRIBER_FIELDS = {"email": str, "userId": str}
CREATE_LIST_FIELDS = {"name": str, "description": str}


def _check_object(obj: Any, fields: dict[str, type], required: tuple[str, ...], where: str) -> None:
    if type(obj) is not dict:
        raise bad_params(f"'{where or 'body'}' must be an object")
    for name in required:
        if name not in obj:
            raise bad_params(f"missing required field '{where}{name}'")
    for name, value in obj.items():
        expected = fields.get(name)
        if expected is None:
            raise bad_params(f"unknown field '{where}{name}'")
        if type(value) is not expected:
            raise bad_params(f"'{where}{name}' must be {_TYPE_NAMES[expected]}")


def check_bulk(body: Any, unsubscribe: bool, max_subscribers: int) -> list[dict[str, Any]]:
    """Validate a subscribe/unsubscribe body; return its subscribers."""
    top, item = (UNSUBSCRIBE_FIELDS, UNSUBSCRIBER_FIELDS) if unsubscribe else (SUBSCRIBE_FIELDS, SUBSCRIBER_FIELDS)
    _check_object(body, top, ("listId", "subscribers"), "")
    subscribers = body["subscribers"]
    if len(subscribers) > max_subscribers:
        raise RequestError(400, "BatchTooLarge",
                           f"Too many subscribers: {len(subscribers)} (at most {max_subscribers} per request)")
    for index, subscriber in enumerate(subscribers):
        if type(subscriber) is not dict:
            raise bad_params(f"'subscribers[{index}]' must be an object")
        for name, value in subscriber.items():
            expected = item.get(name)
            if expected is None:
                raise bad_params(f"unknown field 'subscribers[{index}].{name}'")
            if type(value) is not expected:
                raise bad_params(f"'subscribers[{index}].{name}' must be {_TYPE_NAMES[expected]}")
    return subscribers


def check_create_list(body: Any) -> tuple[str, str]:
    """Validate a create-list body; return (name, description)."""
    _check_object(body, CREATE_LIST_FIELDS, ("name",), "")
    if not body["name"].strip():
        raise bad_params("'name' must not be blank")
    return body["name"], body.get("description", "")
