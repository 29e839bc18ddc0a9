"""Tests for destination_iterable.members.identity: email/userId rules as Iterable applies them, paths, masking."""

from __future__ import annotations

import enum
import random
import re
import time
import types
from pathlib import Path
from typing import Any

import pytest

from destination_iterable.members import identity
from destination_iterable.members.identity import (
    INVALID_EMAIL,
    INVALID_USER_ID,
    MISSING_IDENTIFIER,
    compile_path,
    get_path,
    mask_email,
    mask_identifier,
    normalize_email,
    normalize_user_id,
)

TLDS_FILE = Path(identity.__file__).with_name("data") / "tlds.txt"

# ---------------------------------------------------------------------------------------------------------
# Emails: (input, expected normalized address or None when invalid)

VALID_EMAILS: list[tuple[str, str]] = [
    ("jane.doe@example.com", "jane.doe@example.com"),
    ("Jane.Doe@Example.COM", "jane.doe@example.com"),  # lowercased as Iterable stores it
    ("  jane@example.com\t\n", "jane@example.com"),  # surrounding whitespace trimmed
    ("\u00a0jane@example.com\u3000", "jane@example.com"),  # unicode spaces trimmed too
    ("user+tag@example.com", "user+tag@example.com"),  # plus addressing
    ("user.name+tag+sorting@mail.example.co.uk", "user.name+tag+sorting@mail.example.co.uk"),
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("a!#$%&'*+/=?^_`{|}~-z@example.org", "a!#$%&'*+/=?^_`{|}~-z@example.org"),  # every atext char
    ("1234@123.example.com", "1234@123.example.com"),  # labels may start with a digit
    ("a@b-c.io", "a@b-c.io"),
    ("x@example.museum", "x@example.museum"),
    ("x@example.arpa", "x@example.arpa"),  # infrastructure TLD
    ("x@example.xn--p1ai", "x@example.xn--p1ai"),  # punycode TLD
    ('"john doe"@example.com', '"john doe"@example.com'),  # quoted local part may hold spaces (commons)
    ('"john..doe"@example.com', '"john..doe"@example.com'),  # ... and double dots
    ('"a@b"@example.com', '"a@b"@example.com'),  # ... and @
    ('"say \\"hi\\""@example.com', '"say \\"hi\\""@example.com'),  # ... and escaped quotes
    ('first."middle".last@example.com', 'first."middle".last@example.com'),
    ("a\\@b@example.com", "a\\@b@example.com"),  # backslash escape in an atom (commons)
    ("josé@exämple.com", "josé@exämple.com"),  # non-ASCII local (commons allows), IDN domain
    ("用户@例子.中国", "用户@例子.中国"),  # IDN with the IDN TLD xn--fiqs8s
    ("USER@ПРИМЕР.РФ", "user@пример.рф"),  # unicode lowercased, TLD checked as xn--p1ai
    ("user@[192.0.2.1]", "user@[192.0.2.1]"),  # IP literal (commons InetAddressValidator)
    ("user@[2001:DB8::1]", "user@[2001:db8::1]"),
    ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),  # local part at the 64 limit
    ("a@" + "b" * 63 + ".com", "a@" + "b" * 63 + ".com"),  # label at the 63 limit
]

INVALID_EMAILS: list[str] = [
    "user @example.com",  # the example Iterable documents
    "user@ example.com",
    "user@exa mple.com",
    "jane\u00a0doe@example.com",  # unicode whitespace inside (stricter than commons)
    "ja\nne@example.com",
    "jane.@example.com",  # dot at the end of the local part
    "jane..doe@example.com",  # double dot
    ".jane@example.com",  # leading dot
    "jane@example.com.",  # trailing dot
    "jane@例子.中国\u3002",  # trailing ideographic full stop
    "jane@example",  # no TLD
    "jane@localhost",
    "jane@example.123",  # numeric TLD
    "jane@example.c",
    "a@b.notatld",  # unknown TLD
    "用户@例子.广告",  # 广告 (xn--4rr70v) is not a delegated TLD
    "jane@exämple.notatld",
    "jane@-example.com",  # label starts with a hyphen
    "jane@example-.com",  # label ends with a hyphen
    "jane@exa_mple.com",
    "jane@.example.com",
    "jane@example..com",
    "jane@xn--.com",
    "@example.com",
    "jane@",
    "jane",
    "jane@@example.com",
    "jane(comment)@example.com",
    "jane,doe@example.com",
    "jane<doe>@example.com",
    "jane;doe@example.com",
    "jane[x]@example.com",
    '"unclosed@example.com',
    'ja"ne@example.com',
    "jane\x00@example.com",
    "a@[300.1.1.1]",
    "a@[1.2.3]",
    "a@[not-an-ip]",
    "a" * 65 + "@example.com",  # local part too long
    "a@" + "b" * 64 + ".com",  # label too long
    "a@" + ".".join(["b" * 50] * 6) + ".com",  # 300+ characters
    "x" * 290 + "@example.com",  # 300-character address
]


@pytest.mark.parametrize(("raw", "expected"), VALID_EMAILS)
def test_valid_emails(raw: str, expected: str) -> None:
    assert normalize_email(raw) == (expected, None)


@pytest.mark.parametrize("raw", INVALID_EMAILS)
def test_invalid_emails(raw: str) -> None:
    assert normalize_email(raw) == (None, INVALID_EMAIL)


def test_email_table_is_large_enough() -> None:
    assert len(VALID_EMAILS) + len(INVALID_EMAILS) >= 40


@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n"])
def test_missing_email(raw: Any) -> None:
    assert normalize_email(raw) == (None, MISSING_IDENTIFIER)


@pytest.mark.parametrize("raw", [123, 1.5, True, False, [], ["a@example.com"], {"email": "a@example.com"}, b"a@b.com"])
def test_non_string_email_is_invalid(raw: Any) -> None:
    assert normalize_email(raw) == (None, INVALID_EMAIL)


def test_email_length_cap_is_254() -> None:
    tail = "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".com"  # 186 characters
    at_limit = "a" * 64 + "@ee." + tail
    assert len(at_limit) == 254
    assert normalize_email(at_limit) == (at_limit, None)
    over = "f" + at_limit
    assert normalize_email(over) == (None, INVALID_EMAIL)  # local part 65 anyway
    over = at_limit.replace("@", "@g", 1)
    assert len(over) == 255
    assert normalize_email(over) == (None, INVALID_EMAIL)


def test_email_str_subclass_returns_plain_str() -> None:
    class Email(str, enum.Enum):
        A = "Jane@Example.com"

    result, reason = normalize_email(Email.A)
    assert (result, reason) == ("jane@example.com", None)
    assert type(result) is str


def test_fast_and_full_paths_agree() -> None:
    """The ASCII fast path must never decide differently from the full commons-style validator."""
    rng = random.Random(1234)
    alphabets = ("ab1+_'-.", "ab.-@_+'\"\\ (1Zé")
    tld_like = ["com", "io", "notatld", "c", "123", "xn--p1ai", "中国", ""]
    fast = valid = 0
    for _ in range(4000):
        alphabet = rng.choice(alphabets)
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        host_alphabet = rng.choice(("ab1", "ab-.1"))
        host = "".join(rng.choice(host_alphabet) for _ in range(rng.randint(0, 6)))
        address = f"{local}@{host}.{rng.choice(tld_like)}".strip().lower()
        if not address:
            continue
        full = identity._valid_email_full(address)
        assert (normalize_email(address)[0] is not None) == full, address
        fast += identity._FAST_EMAIL(address) is not None
        valid += full
    assert fast > 400 and valid > 400  # both paths really exercised
    for raw, _ in VALID_EMAILS:
        assert identity._valid_email_full(raw.strip().lower())
    for raw in INVALID_EMAILS:
        assert not identity._valid_email_full(raw.strip().lower())


def test_adversarial_local_parts_are_fast() -> None:
    """No catastrophic regex backtracking on quoted/escaped local parts or very long input."""
    nasty = [
        '"\\".' * 16 + "@example.com",
        '"' + '\\"' * 31 + "@example.com",
        "\\" * 64 + "(@example.com",
        "a." * 32 + "(@example.com",
        "a" * 100_000 + "@example.com",
        "a@" + "b." * 50_000 + "(",
    ]
    start = time.perf_counter()
    for _ in range(20):
        for raw in nasty:
            normalize_email(raw)
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------------------------------------------
# userIds


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("user-1", "user-1"),
        ("User-1", "User-1"),  # case is kept
        ("a" * 52, "a" * 52),
        ("John Smith", "John Smith"),  # inner spaces are printable ASCII: allowed
        ("a@b.com", "a@b.com"),
        ("~!@#$%^&*()_+{}|:<>?", "~!@#$%^&*()_+{}|:<>?"),
        (12345, "12345"),
        (0, "0"),
        (-7, "-7"),
    ],
)
def test_valid_user_ids(raw: Any, expected: str) -> None:
    assert normalize_user_id(raw) == (expected, None)


@pytest.mark.parametrize(
    "raw",
    [
        "a" * 53,
        "a" * 60,
        " user",  # padded ids are distinct Iterable users: never trimmed
        "user ",
        " user ",
        "user\t1",
        "user\n",
        "usér",
        "用户",
        "user\x7f",
        "user\x00",
        10**60,
        True,
        False,
        1.0,
        1.5,
        [1],
        {"id": 1},
        b"u1",
    ],
)
def test_invalid_user_ids(raw: Any) -> None:
    assert normalize_user_id(raw) == (None, INVALID_USER_ID)


@pytest.mark.parametrize("raw", [None, "", "   ", "\t"])
def test_missing_user_id(raw: Any) -> None:
    assert normalize_user_id(raw) == (None, MISSING_IDENTIFIER)


def test_user_id_subclasses_become_plain_values() -> None:
    class Level(enum.IntEnum):
        GOLD = 7

    class Uid(str):
        pass

    assert normalize_user_id(Level.GOLD) == ("7", None)
    result, _ = normalize_user_id(Uid("u-1"))
    assert result == "u-1" and type(result) is str


# ---------------------------------------------------------------------------------------------------------
# Paths


def test_compile_path() -> None:
    assert compile_path("contact.email") == ("contact", "email")
    assert compile_path("email") == ("email",)
    assert compile_path("") == ()
    for bad in ("a..b", ".a", "a.", "."):
        with pytest.raises(ValueError, match="empty segment"):
            compile_path(bad)


def test_get_path() -> None:
    record = {"email": "a@b.com", "zero": 0, "contact": {"email": "c@d.com", "tags": ["x"]}, "s": "text"}
    assert get_path(record, ("email",)) == "a@b.com"
    assert get_path(record, ("zero",)) == 0
    assert get_path(record, ("nope",)) is None
    assert get_path(record, ("contact", "email")) == "c@d.com"
    assert get_path(record, ("contact", "nope")) is None
    assert get_path(record, ("nope", "email")) is None
    assert get_path(record, ("s", "email")) is None  # step is a string, not a mapping
    assert get_path(record, ("contact", "tags", "x")) is None  # step is a list
    assert get_path(record, ("contact", "email", "x")) is None
    assert get_path({"a": None}, ("a", "b")) is None
    assert get_path(record, ()) is None  # identifier not configured
    assert get_path(types.MappingProxyType({"a": {"b": 1}}), ("a", "b")) == 1
    assert get_path(types.MappingProxyType({"a": types.MappingProxyType({"b": 2})}), ("a", "b")) == 2
    assert get_path(["not", "a", "mapping"], ("a",)) is None  # type: ignore[arg-type]
    assert get_path("text", ("a",)) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Masking


def test_mask_email() -> None:
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_email("j@example.com") == "***@example.com"  # one character is not shown
    assert mask_email("no-at-sign") == "n***(10)"
    assert mask_email("@example.com") == "@***(12)"
    assert mask_email("") == "***(0)"
    assert mask_email(12345) == "1***(5)"  # type: ignore[arg-type]


def test_mask_identifier() -> None:
    assert mask_identifier("user-123") == "u***(8)"
    assert mask_identifier("jane.doe@example.com") == "j***@example.com"
    assert mask_identifier(12345678) == "1***(8)"
    assert mask_identifier("x") == "***(1)"
    assert mask_identifier(None) == "<none>"


@pytest.mark.parametrize(
    "value",
    ["jane.doe@example.com", "j@example.com", "ab@c.io", "@example.com", "a@", "x", "xy", "user-123",
     "0123456789" * 10, 42, 7, "用户@例子.中国", " padded ", "a@b@c.com"],
)
def test_masking_never_returns_the_full_value(value: Any) -> None:
    text = str(value)
    for masked in (mask_identifier(value), mask_email(text)):
        assert text not in masked
        assert "***" in masked


# ---------------------------------------------------------------------------------------------------------
# tlds.txt


def test_tlds_file() -> None:
    lines = TLDS_FILE.read_text(encoding="ascii").splitlines()
    assert lines[0].startswith("# ") and "IANA" in lines[0]
    entries = [line for line in lines if line and not line.startswith("#")]
    assert len(entries) > 1000
    assert len(entries) == len(set(entries))
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", entry) for entry in entries)
    for tld in ("com", "org", "io", "arpa", "xn--p1ai", "xn--fiqs8s"):
        assert tld in entries
    assert "notatld" not in entries
    assert identity.TLDS == frozenset(entries)
