"""Realistic connector input for the throughput benchmark, generated once and cached by its arguments.

One line per Airbyte message, as the platform sends them:

* RECORD messages for ``streams`` streams, interleaved at random, with an email and a few profile fields
  (first_name, last_name, plan, signup_date, score, country); emails come in mixed case, some with
  surrounding spaces, ``+tags`` or a non-ASCII local part (the identity module's slow path);
* about 3% invalid rows (malformed or unknown-TLD emails, blank, null, numbers, missing key) and about 2%
  duplicates (an earlier member of the same stream again, in another case, with other field values), plus
  about 3% members that also belong to another stream;
* a STREAM state (with the platform's ``id``) every ~5,000 records of a stream, a last state per stream and a
  STREAM_STATUS COMPLETE per stream at the end.

The expected outcome (unique valid members per stream) is known by construction and written next to the
input as ``<name>.meta.json``. Mirror inputs (``mirror_offset``) number their members like the sandbox's
``generate`` seeding (``member{i}@bench.example.com``) so that a run can overlap a seeded list.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

STATE_EVERY = 5_000
INVALID_SHARE = 0.03
DUPLICATE_SHARE = 0.02
CROSS_STREAM_SHARE = 0.03
RECENT = 20_000  # members a duplicate is drawn from (per stream)
EMITTED_AT = 1_700_000_000_000
GENERATOR_VERSION = 1  # bump when the output changes, so old cache files are not reused

MIRROR_DOMAIN = "bench.example.com"
MIRROR_PATTERN = "member{i}@" + MIRROR_DOMAIN

FIRST = ("Jane", "John", "Maria", "Wei", "Aisha", "Lukas", "Sofia", "Mateo", "Yuki", "Olga", "Liam", "Emma",
         "Noah", "Ava", "Chloé", "Zoë", "Ahmed", "Priya", "Kwame", "Ines")
LAST = ("Doe", "Smith", "Garcia", "Chen", "Khan", "Müller", "Rossi", "Silva", "Tanaka", "Ivanova", "Brown",
        "Martin", "Nguyen", "Kowalski", "Okafor", "Dubois", "Jensen", "Costa", "Novak", "Haddad")
ASCII_LAST = ("doe", "smith", "garcia", "chen", "khan", "mueller", "rossi", "silva", "tanaka", "ivanova",
              "brown", "martin", "nguyen", "kowalski", "okafor", "dubois", "jensen", "costa", "novak", "haddad")
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.co.uk", "icloud.com", "gmx.de", "orange.fr",
           "example.org", "acme-corp.com", "mail.company.io", "uni-heidelberg.de", "web.de")
PLANS = ("free", "starter", "pro", "enterprise", None)
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP", "NG", "ES", "PL")
INVALID = ("no-at-sign.example.com", "two@@example.com", "name@example.notatld", "name@localhost", "", "   ",
           None, 12345, "a b@example.com", "name@-bad-.com", "@example.com", "name@example.com.")


@dataclass
class InputMeta:
    """What a generated input holds and what a correct sync must end with."""

    path: str
    records: int
    streams: list[str]
    lines: int = 0
    bytes: int = 0
    states: int = 0
    invalid: int = 0
    duplicates: int = 0
    cross_stream: int = 0
    expected_members: dict[str, int] = field(default_factory=dict)
    records_per_stream: dict[str, int] = field(default_factory=dict)
    mirror_offset: int | None = None
    duplicate_share: float = DUPLICATE_SHARE
    version: int = GENERATOR_VERSION


def stream_names(streams: int) -> list[str]:
    """The benchmark's stream names (also the list names)."""
    return [f"bench_segment_{n}" for n in range(streams)]


def cache_path(records: int, streams: int, seed: int, mirror_offset: int | None, cache_dir: Path | None,
               duplicate_share: float = DUPLICATE_SHARE) -> Path:
    """Where the input for these arguments lives (one file per argument set)."""
    base = cache_dir or Path(os.environ.get("BENCH_CACHE_DIR") or Path(tempfile.gettempdir()) /
                             "destination-iterable-bench")
    key = f"v{GENERATOR_VERSION}-r{records}-s{streams}-seed{seed}" + (
        f"-mirror{mirror_offset}" if mirror_offset is not None else "") + (
        f"-dup{duplicate_share:g}" if duplicate_share != DUPLICATE_SHARE else "")
    return base / f"input-{key}.jsonl"


def ensure_input(records: int, streams: int, *, seed: int = 1, mirror_offset: int | None = None,
                 cache_dir: Path | None = None, duplicate_share: float = DUPLICATE_SHARE) -> tuple[InputMeta, bool]:
    """The cached input for these arguments, generated first when missing. -> (meta, generated_now)."""
    path = cache_path(records, streams, seed, mirror_offset, cache_dir, duplicate_share)
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        meta = InputMeta(**orjson.loads(meta_path.read_bytes()))
        if meta.version == GENERATOR_VERSION and path.stat().st_size == meta.bytes:
            meta.path = str(path)
            return meta, False
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = generate(path, records, streams, seed=seed, mirror_offset=mirror_offset, duplicate_share=duplicate_share)
    meta_path.write_bytes(orjson.dumps(asdict(meta), option=orjson.OPT_INDENT_2))
    return meta, True


class _Stream:
    """Per-stream generation state."""

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.records = 0
        self.unique = 0
        self.recent: list[str] = []  # emails (as written) of members already in this stream
        self.borrowed: set[str] = set()  # normalised emails taken from other streams
        self.cursor = 0


def _fresh_email(rng: random.Random, number: int, mirror_offset: int | None) -> str:
    """A new, valid, never-used email (as a source would hold it: mixed case, sometimes padded)."""
    if mirror_offset is not None:
        local = f"member{mirror_offset + number}"
        domain = MIRROR_DOMAIN
        roll = rng.random()
        if roll < 0.3:
            return f"{local.capitalize()}@{domain.upper()}"
        return f" {local}@{domain} " if roll < 0.32 else f"{local}@{domain}"
    first = rng.choice(FIRST)
    roll = rng.random()
    if roll < 0.005:  # non-ASCII local part (allowed by Iterable's validator; the slow path here)
        local = f"{first.lower()}.{rng.choice(LAST).lower()}.{number}"
    else:
        local = f"{first.lower()}.{rng.choice(ASCII_LAST)}.{number}".encode("ascii", "ignore").decode()
        if roll < 0.1:
            local = local.replace(".", "+news.", 1)
    email = f"{local}@{rng.choice(DOMAINS)}"
    roll = rng.random()
    if roll < 0.25:
        email = email.title()
    elif roll < 0.27:
        email = f"  {email}\t"
    return email


def _normalised(email: str) -> str:
    return email.strip().lower()


def _profile(rng: random.Random, email: object, number: int) -> dict[str, object]:
    data: dict[str, object] = {
        "email": email,
        "first_name": rng.choice(FIRST),
        "last_name": rng.choice(LAST),
        "plan": rng.choice(PLANS),
        "signup_date": f"20{rng.randint(15, 24):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "score": rng.randint(0, 1000),
        "country": rng.choice(COUNTRIES),
        "customer_id": number,
    }
    return data


def generate(path: Path, records: int, streams: int, *, seed: int = 1, mirror_offset: int | None = None,
             duplicate_share: float = DUPLICATE_SHARE) -> InputMeta:
    """Write the input to ``path`` (atomically) and return what it holds."""
    rng = random.Random(seed)
    names = stream_names(streams)
    state = [_Stream(name, index) for index, name in enumerate(names)]
    meta = InputMeta(path=str(path), records=records, streams=names, mirror_offset=mirror_offset,
                     duplicate_share=duplicate_share)
    per_stream = [records // streams + (1 if n < records % streams else 0) for n in range(streams)]
    pending = list(range(streams))
    left = list(per_stream)
    next_number = 0
    state_id = 0
    dumps = orjson.dumps
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb", buffering=1 << 20) as out:
        def write(message: dict) -> None:
            line = dumps(message) + b"\n"
            out.write(line)
            meta.lines += 1
            meta.bytes += len(line)

        def emit_state(s: _Stream) -> None:
            nonlocal state_id
            state_id += 1
            meta.states += 1
            write({"type": "STATE", "state": {
                "type": "STREAM", "id": state_id,
                "stream": {"stream_descriptor": {"name": s.name},
                           "stream_state": {"cursor": s.cursor,
                                            "updated_at": f"2024-06-01T00:00:{s.cursor % 60:02d}Z"}},
                "sourceStats": {"recordCount": float(STATE_EVERY)}}})

        while pending:
            slot = rng.randrange(len(pending))
            s = state[pending[slot]]
            left[s.index] -= 1
            if left[s.index] == 0:
                pending.pop(slot)
            roll = rng.random()
            if roll < INVALID_SHARE:
                meta.invalid += 1
                data = _profile(rng, rng.choice(INVALID), -1)
                if rng.random() < 0.1:
                    del data["email"]
            elif roll < INVALID_SHARE + duplicate_share and s.recent:
                meta.duplicates += 1
                email = rng.choice(s.recent)
                email = email.upper() if rng.random() < 0.5 else f" {email.lower()}"
                data = _profile(rng, email, -2)
            elif (roll < INVALID_SHARE + duplicate_share + CROSS_STREAM_SHARE and streams > 1
                  and mirror_offset is None):
                other = state[(s.index + 1 + rng.randrange(streams - 1)) % streams]
                email = rng.choice(other.recent) if other.recent else None
                if email is not None and _normalised(email) not in s.borrowed:
                    meta.cross_stream += 1
                    s.borrowed.add(_normalised(email))
                    s.unique += 1
                    data = _profile(rng, email, -3)
                else:
                    email = _fresh_email(rng, next_number, mirror_offset)
                    next_number += 1
                    s.unique += 1
                    _remember(rng, s, email)
                    data = _profile(rng, email, next_number)
            else:
                email = _fresh_email(rng, next_number, mirror_offset)
                next_number += 1
                s.unique += 1
                _remember(rng, s, email)
                data = _profile(rng, email, next_number)
            s.records += 1
            s.cursor += 1
            write({"type": "RECORD", "record": {"stream": s.name, "data": data, "emitted_at": EMITTED_AT}})
            if s.records % STATE_EVERY == 0:
                emit_state(s)
        for s in state:
            emit_state(s)
        for s in state:
            write({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": float(EMITTED_AT),
                                              "stream_status": {"stream_descriptor": {"name": s.name},
                                                                "status": "COMPLETE"}}})
    os.replace(tmp, path)
    meta.expected_members = {s.name: s.unique for s in state}
    meta.records_per_stream = {s.name: s.records for s in state}
    return meta


def _remember(rng: random.Random, s: _Stream, email: str) -> None:
    """Keep a bounded sample of this stream's members for duplicates and cross-stream members."""
    if len(s.recent) < RECENT:
        s.recent.append(email)
    else:
        s.recent[rng.randrange(RECENT)] = email


def digest(path: Path) -> str:
    """Short content hash (for reports)."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]
