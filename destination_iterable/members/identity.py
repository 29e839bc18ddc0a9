"""Member identity: email / userId normalisation and validation as Iterable does it, dotted-path lookup
and masking for logs.

Email validation mirrors Apache Commons Validator's ``EmailValidator.getInstance()`` (what Iterable uses:
format plus a known top-level domain), with the address trimmed and lowercased first because Iterable
stores emails lowercased:

* local part: commons' ``USER_REGEX`` -- dot-separated words, each a run of atom characters (anything but
  whitespace, control characters and ``()<>@,;:\\".[]``; ``'`` allowed; non-ASCII letters allowed;
  ``\\x`` escapes allowed) or a quoted string (``"..."``, may contain ``\\"``); at most 64 UTF-16 units;
* domain: either a bracketed IP literal (``[192.0.2.1]``, ``[2001:db8::1]``) or a host name of at least two
  labels (letters/digits/hyphens, no leading/trailing hyphen, label <= 63, whole domain <= 253 characters in
  its punycode form) whose last label is an IANA top-level domain (``data/tlds.txt``). Internationalised
  domains are converted with the ``idna`` codec (IDNA 2003, as ``java.net.IDN``); the TLD check uses the
  punycode form, the returned address keeps the unicode form;
* the whole address: may not end with a full stop (``.`` or an IDNA one such as ``\u3002``); at most 254
  characters (our own cap, the RFC 5321 path limit; Iterable documents none).

Deliberate differences from commons: any Unicode whitespace outside a quoted string is rejected (Java's
``\\s`` only knows ASCII whitespace) and line breaks are rejected everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "INVALID_EMAIL",
    "INVALID_USER_ID",
    "MAX_EMAIL_LENGTH",
    "MAX_USER_ID_LENGTH",
    "MISSING_IDENTIFIER",
    "TLDS",
    "compile_path",
    "get_path",
    "mask_email",
    "mask_identifier",
    "normalize_email",
    "normalize_user_id",
]

# Reason codes, used in reports.
MISSING_IDENTIFIER = "missing_identifier"  # no usable email and no usable userId
INVALID_EMAIL = "invalid_email"
INVALID_USER_ID = "invalid_user_id"

MAX_EMAIL_LENGTH = 254  # whole address, characters (our choice: RFC 5321 forward-path limit)
MAX_LOCAL_LENGTH = 64  # commons-validator MAX_USERNAME_LEN (Java String length = UTF-16 units)
MAX_DOMAIN_LENGTH = 253  # commons DomainValidator, measured on the punycode form
MAX_USER_ID_LENGTH = 52  # Iterable


def _load_tlds() -> frozenset[str]:
    """Read ``data/tlds.txt`` (one lowercase ASCII label per line, ``#`` comments) into a frozenset."""
    path = Path(__file__).with_name("data") / "tlds.txt"
    labels = set()
    with open(path, encoding="ascii") as handle:
        for line in handle:
            label = line.strip().lower()
            if label and not label.startswith("#"):
                labels.add(label)
    return frozenset(labels)


TLDS: frozenset[str] = _load_tlds()

# ---------------------------------------------------------------------------------------------------------
# Regexes (compiled once at import)

# Fast path: the plain ASCII dot-atom address, already lowercased. Every address it accepts (with the TLD and
# length checks below) is also accepted by the full validator, and vice versa for ASCII dot-atom addresses.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TOP_LABEL = r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST_EMAIL = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+({_TOP_LABEL}))").fullmatch

# Full path: commons-validator USER_REGEX. VALID_CHARS = "(\\.)|[^\s" + SPECIAL_CHARS + "]",
# SPECIAL_CHARS = "\p{Cntrl}\(\)<>@,;:'\\\"\.\[\]", QUOTED_USER = "(\"(\\\"|[^\"])*\")",
# WORD = "((" + VALID_CHARS + "|')+|" + QUOTED_USER + ")", USER_REGEX = "^" + WORD + "(\." + WORD + ")*$".
_VALID_CHAR = r"""(?:\\.|[^\s\x00-\x1f\x7f()<>@,;:'\\".\[\]])"""
_WORD = rf"""(?:(?:{_VALID_CHAR}|')+|"(?:\\"|[^"])*")"""
_USER = re.compile(rf"{_WORD}(?:\.{_WORD})*").fullmatch
# commons DomainValidator DOMAIN_NAME_REGEX on the punycode (ASCII) form, without the optional trailing dot:
# an address ending with any IDNA full stop (. \u3002 \uff0e \uff61) is rejected.
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+({_TOP_LABEL})").fullmatch
_FULL_STOPS = (".", "\u3002", "\uff0e", "\uff61")
_HAS_WHITESPACE = re.compile(r"\s").search
_LINE_BREAKS = re.compile("[\n\r\x85\u2028\u2029]").search

# ---------------------------------------------------------------------------------------------------------
# Paths


def compile_path(dotted: str) -> tuple[str, ...]:
    """Split a field path on dots: ``"contact.email"`` -> ``("contact", "email")``; ``""`` -> ``()``.

    Raises ``ValueError`` for an empty segment (``"a..b"``, ``".a"``, ``"a."``). A top-level key that itself
    contains a dot cannot be addressed.
    """
    if not dotted:
        return ()
    parts = tuple(dotted.split("."))
    if "" in parts:
        raise ValueError(f"invalid field path {dotted!r}: empty segment")
    return parts


def get_path(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Return the value at ``path`` in ``data``, or ``None`` when a step is missing or not a mapping.

    The empty path (identifier not configured) returns ``None``.
    """
    if len(path) == 1:
        try:
            return data.get(path[0])
        except AttributeError:  # not a mapping
            return None
    if not path:
        return None
    value: Any = data
    for key in path:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(key)
        if value is None:
            return None
    return value


# ---------------------------------------------------------------------------------------------------------
# Email


def _utf16_len(text: str) -> int:
    """Length as Java counts it (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


@lru_cache(maxsize=4096)
def _to_punycode(domain: str) -> str | None:
    """IDNA 2003 ToASCII of a unicode domain, ``None`` when it does not convert (cached: codec is slow)."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _valid_domain(domain: str) -> bool:
    """commons EmailValidator.isValidDomain with allowLocal=false, allowTld=false."""
    if domain[0] == "[" and domain[-1] == "]":
        try:
            ipaddress.ip_address(domain[1:-1])
        except ValueError:
            return False
        return True
    if domain.isascii():
        ascii_domain = domain
    else:
        ascii_domain = _to_punycode(domain)
        if ascii_domain is None:
            return False
    if len(ascii_domain) > MAX_DOMAIN_LENGTH:
        return False
    match = _DOMAIN(ascii_domain)
    return match is not None and match.group(1) in TLDS


def _valid_email_full(address: str) -> bool:
    """Full commons-style check of a trimmed, lowercased, non-empty address (slow path)."""
    if len(address) > MAX_EMAIL_LENGTH or address.endswith(_FULL_STOPS):
        return False
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return False
    if _HAS_WHITESPACE(domain) or _LINE_BREAKS(local):
        return False
    if _utf16_len(local) > MAX_LOCAL_LENGTH or _USER(local) is None:
        return False
    return _valid_domain(domain)


def normalize_email(value: Any) -> tuple[str | None, str | None]:
    """Trim, lowercase and validate an email as Iterable would.

    Returns ``(email, None)`` or ``(None, reason)``: ``MISSING_IDENTIFIER`` for ``None``/empty/blank,
    ``INVALID_EMAIL`` for non-strings and malformed addresses.
    """
    if type(value) is not str:
        if value is None:
            return None, MISSING_IDENTIFIER
        if not isinstance(value, str):
            return None, INVALID_EMAIL
        value = str.__str__(value)  # str subclass (e.g. a str Enum) -> its plain value
    address = value.strip().lower()
    if not address:
        return None, MISSING_IDENTIFIER
    size = len(address)
    if size > MAX_EMAIL_LENGTH:
        return None, INVALID_EMAIL
    match = _FAST_EMAIL(address)
    if match is not None:  # plain ASCII address: the decision is final here
        if (
            match.group(3) in TLDS
            and match.end(1) <= MAX_LOCAL_LENGTH
            and size - match.start(2) <= MAX_DOMAIN_LENGTH
        ):
            return address, None
        return None, INVALID_EMAIL
    if _valid_email_full(address):
        return address, None
    return None, INVALID_EMAIL


# ---------------------------------------------------------------------------------------------------------
# userId


def normalize_user_id(value: Any) -> tuple[str | None, str | None]:
    """Validate a userId as Iterable does, never changing it (userIds are case- and space-sensitive).

    Accepts strings and ints (``str(int)``; bools are refused). Returns ``(user_id, None)`` or
    ``(None, reason)``: ``MISSING_IDENTIFIER`` for ``None``, ``""`` or whitespace only; ``INVALID_USER_ID``
    for other types, leading/trailing spaces (not trimmed: a padded id is a different Iterable user), more
    than 52 characters, non-ASCII or non-printable characters. Inner spaces are allowed.
    """
    tp = type(value)
    if tp is not str:
        if value is None:
            return None, MISSING_IDENTIFIER
        if tp is int:
            value = str(value)
        elif isinstance(value, str):
            value = str.__str__(value)
        elif isinstance(value, int) and tp is not bool:
            value = str(int(value))  # int subclass such as an IntEnum -> its number
        else:
            return None, INVALID_USER_ID
    if (
        0 < len(value) <= MAX_USER_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    ):
        return value, None
    if not value or value.isspace():
        return None, MISSING_IDENTIFIER
    return None, INVALID_USER_ID


# ---------------------------------------------------------------------------------------------------------
# Masking for logs


def mask_email(email: str) -> str:
    """Mask an email for logs: ``"jane.doe@example.com"`` -> ``"j***@example.com"``.

    The first character of the local part is shown only when the local part has at least two characters; the
    domain is kept. Garbage without ``@`` (or with nothing before it) is masked like any other identifier.
    Never returns the full value.
    """
    text = email if type(email) is str else str(email)
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return _mask_plain(text)
    head = local[0] if len(local) >= 2 else ""
    return f"{head}***@{domain}"


def _mask_plain(text: str) -> str:
    """First character (when there are at least two) + ``***`` + length hint."""
    if not text:
        return "***(0)"
    head = text[0] if len(text) >= 2 else ""
    return f"{head}***({len(text)})"


def mask_identifier(value: Any) -> str:
    """Mask any identifier for logs: emails via :func:`mask_email`, other values as ``"u***(8)"``.

    ``None`` gives ``"<none>"``; non-strings are masked through ``str()``.
    """
    if value is None:
        return "<none>"
    text = value if type(value) is str else str(value)
    if "@" in text:
        return mask_email(text)
    return _mask_plain(text)
