"""Rejected records in the user's S3 bucket, laid out as Airbyte's Kotlin bulk CDK lays out its dead-letter files.

The setting is Airbyte's ``object_storage_config`` (a oneOf on ``storage_type``: ``None`` or ``S3``); the
platform reads the same key to link a job's rejected records (docs/data-activation.md has the sources).

* ``parse_storage_config(raw_config)`` -> ``S3StorageConfig`` or ``None`` (storage off); a bad value raises
  ``ConfigError`` naming the setting.
* ``RejectedRecordStore(config, sync_id)`` buffers rejected records per stream (``add``) and uploads one object per
  stream per ``flush``: ``<bucket_path>/<path_format>/<file_name_format>``, JSONL or CSV, optionally gzipped. A
  buffer is flushed on its own when it holds ``max_records`` records or ``max_bytes`` bytes, and every buffer when
  all of them together hold ``max_total_bytes``. ``check()`` writes and deletes a small test object.
* Storage failures raise ``StorageError`` (a ``TransientError``); ``config_problem`` tells whether the user must
  change a setting. No message ever contains the access key, the secret or a session token.

Each line/row has the bulk CDK's columns (``_airbyte_raw_id``, ``_airbyte_extracted_at``, ``_airbyte_meta``,
``_airbyte_generation_id``) and the record: under ``_airbyte_data`` ("No flattening") or as top-level columns
("Root level flattening"). The record is its original fields plus ``rejected_reason``, ``rejected_message`` and,
when known, ``rejected_field`` (the names destination-customer-io writes).
"""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import logging
import os
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

from destination_iterable.errors import ConfigError, TransientError
from destination_iterable.members.fields import json_safe

logger = logging.getLogger("airbyte")

CONFIG_KEY = "object_storage_config"
STORAGE_NONE = "None"
STORAGE_S3 = "S3"
FORMAT_CSV = "CSV"
FORMAT_JSONL = "JSONL"
NO_FLATTENING = "No flattening"
ROOT_FLATTENING = "Root level flattening"
NO_COMPRESSION = "No Compression"
GZIP = "GZIP"
DEFAULT_PATH_FORMAT = "{sync_id}/{namespace}/{stream_name}/"
DEFAULT_FILE_NAME_FORMAT = "{date}_{timestamp}_{part_number}{format_extension}"
FORMAT_EXTENSIONS = {FORMAT_JSONL: "jsonl", FORMAT_CSV: "csv"}
# The region enum of the bulk CDK's S3 spec ("" = not set).
S3_REGIONS = frozenset({
    "", "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ca-central-1", "ca-west-1",
    "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
    "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "sa-east-1", "us-east-1",
    "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
})
DEFAULT_REGION = "us-east-1"
# path_format placeholders (case-insensitive, as the bulk CDK upper-cases them) and file_name_format ones.
PATH_VARIABLES = frozenset({"namespace", "stream_name", "sync_id", "year", "month", "day", "hour", "minute",
                            "second", "millisecond", "epoch", "uuid"})
FILE_NAME_VARIABLES = frozenset({"date", "date:yyyy_MM", "timestamp", "part_number", "sync_id",
                                 "format_extension"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Characters the bulk CDK keeps in namespace/stream names inside keys (Transformations.toS3SafeCharacters).
_S3_UNSAFE = re.compile(r"[^A-Za-z0-9/!_.*')(&$@=;:+,?\-]")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/\S+$")

REJECTED_REASON = "rejected_reason"
REJECTED_MESSAGE = "rejected_message"
REJECTED_FIELD = "rejected_field"
META_RAW_ID = "_airbyte_raw_id"
META_EXTRACTED_AT = "_airbyte_extracted_at"
META_META = "_airbyte_meta"
META_GENERATION_ID = "_airbyte_generation_id"
META_DATA = "_airbyte_data"

MAX_RECORDS = 10_000
MAX_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 32 * 1024 * 1024
CREDENTIALS_REFRESH_MARGIN_SECONDS = 300.0
ROLE_SESSION_NAME = "airbyte-destination-iterable"
EXTERNAL_ID_ENV = "AWS_ASSUME_ROLE_EXTERNAL_ID"

# AWS error codes -> (what went wrong, in words a marketer understands; is it the user's setting?)
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                               "UnrecognizedClientException", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"})
_PERMISSION_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
_REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException",
                           "301"})
_BUCKET_CODES = frozenset({"NoSuchBucket", "InvalidBucketName", "404"})


class StorageError(TransientError):
    """Rejected records could not be written. ``code`` is AWS's error code (or the client's error class name);
    ``config_problem`` is True when a setting is wrong (bucket, region, credentials, permissions)."""

    def __init__(self, message: str, *, code: str = "", config_problem: bool = False,
                 stream: str | None = None) -> None:
        super().__init__(message, stream=stream)
        self.code = code
        self.config_problem = config_problem


@dataclass(frozen=True)
class S3StorageConfig:
    """``object_storage_config`` with ``storage_type: S3``, validated. ``repr`` never shows the credentials."""

    bucket_name: str
    bucket_region: str = ""
    bucket_path: str = ""
    access_key_id: str | None = dataclass_field(default=None, repr=False)
    secret_access_key: str | None = dataclass_field(default=None, repr=False)
    role_arn: str | None = None
    endpoint: str | None = None
    format_type: str = FORMAT_CSV
    flattening: str = NO_FLATTENING
    compression: str = NO_COMPRESSION
    path_format: str = DEFAULT_PATH_FORMAT
    file_name_format: str = DEFAULT_FILE_NAME_FORMAT

    @property
    def region(self) -> str:
        """The region the client uses (the bucket's, else us-east-1)."""
        return self.bucket_region or DEFAULT_REGION

    @property
    def extension(self) -> str:
        """``{format_extension}``: ``.jsonl``/``.csv``, plus ``.gz`` with GZIP."""
        ext = "." + FORMAT_EXTENSIONS[self.format_type]
        return ext + ".gz" if self.compression == GZIP else ext

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a message."""
        return tuple(v for v in (self.access_key_id, self.secret_access_key) if v)


# ---------------------------------------------------------------------------------------------------------
# parsing


def _setting(name: str) -> str:
    return f"'{CONFIG_KEY}.{name}'" if name else f"'{CONFIG_KEY}'"


def _bad(name: str, sentence: str) -> ConfigError:
    return ConfigError(f"Rejected-records storage: setting {_setting(name)} {sentence} Fix it in the "
                       "destination's settings or set the storage type to None.")


def _string(raw: Mapping[str, Any], name: str, *, required: bool = False, default: str | None = None) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise _bad(name, "is required when the storage type is S3.")
        return default
    if not isinstance(value, str):
        raise _bad(name, f"must be a string, got {type(value).__name__}.")
    return value


def _choice(raw: Any, parent: str, key: str, allowed: tuple[str, ...], default: str) -> str:
    """``raw`` is the nested object (format/compression); missing or null -> ``default``."""
    if raw is None:
        return default
    if isinstance(raw, str):  # the spec's odd "default": "CSV" on the format object
        raw = {key: raw}
    if not isinstance(raw, Mapping):
        raise _bad(parent, f"must be an object, got {type(raw).__name__}.")
    value = raw.get(key, default)
    if value not in allowed:
        raise _bad(f"{parent}.{key}", f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}.")
    return value


def _check_placeholders(name: str, template: str, allowed: frozenset[str], case_insensitive: bool) -> None:
    for found in _PLACEHOLDER.findall(template):
        probe = found.lower() if case_insensitive else found
        if probe not in allowed:
            names = ", ".join("{" + v + "}" for v in sorted(allowed))
            raise _bad(name, f"uses the unknown placeholder {{{found}}}; the supported ones are {names}.")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint(value: str | None) -> str | None:
    if value is None:
        return None
    url = value.strip().rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise _bad("s3_endpoint", "must be a URL such as https://s3.example.com (no user name or password in it).")
    if parts.scheme == "http" and not _is_loopback(host):
        raise _bad("s3_endpoint", "must use https; plain http is only allowed to a loopback address (127.0.0.1, "
                                  "localhost or ::1).")
    return url


def parse_storage_config(raw_config: Mapping[str, Any]) -> S3StorageConfig | None:
    """The S3 settings from a connector config, or None when ``object_storage_config`` is absent or ``None``."""
    raw = raw_config.get(CONFIG_KEY) if isinstance(raw_config, Mapping) else None
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad("", f"must be an object, got {type(raw).__name__}.")
    storage_type = raw.get("storage_type", STORAGE_NONE)
    if storage_type in (STORAGE_NONE, None):
        return None
    if storage_type != STORAGE_S3:
        raise _bad("storage_type", f"must be 'None' or 'S3', got {storage_type!r}.")

    bucket = _string(raw, "s3_bucket_name", required=True) or ""
    if bucket != bucket.strip() or "/" in bucket or any(c.isspace() for c in bucket):
        raise _bad("s3_bucket_name", "must be a bucket name only, without spaces, slashes or an s3:// prefix.")
    region = _string(raw, "s3_bucket_region", default="") or ""
    if region not in S3_REGIONS:
        raise _bad("s3_bucket_region", f"must be an AWS region code such as us-east-1, got {region!r}.")
    access_key = _string(raw, "access_key_id")
    secret_key = _string(raw, "secret_access_key")
    if bool(access_key) != bool(secret_key):
        missing = "secret_access_key" if access_key else "access_key_id"
        raise _bad(missing, "is required together with the other half of the access key.")
    role_arn = _string(raw, "role_arn")
    if role_arn is not None:
        role_arn = role_arn.strip()
        if not _ROLE_ARN.match(role_arn):
            raise _bad("role_arn", "must be an IAM role ARN such as arn:aws:iam::123456789012:role/my-role.")
    path_format = _string(raw, "path_format", default=DEFAULT_PATH_FORMAT) or DEFAULT_PATH_FORMAT
    file_name_format = _string(raw, "file_name_format", default=DEFAULT_FILE_NAME_FORMAT) or DEFAULT_FILE_NAME_FORMAT
    _check_placeholders("path_format", path_format, PATH_VARIABLES, case_insensitive=True)
    _check_placeholders("file_name_format", file_name_format, FILE_NAME_VARIABLES, case_insensitive=False)
    fmt = raw.get("format")
    return S3StorageConfig(
        bucket_name=bucket,
        bucket_region=region,
        bucket_path=_string(raw, "bucket_path", default="") or "",
        access_key_id=access_key,
        secret_access_key=secret_key,
        role_arn=role_arn,
        endpoint=_endpoint(_string(raw, "s3_endpoint")),
        format_type=_choice(fmt, "format", "format_type", (FORMAT_CSV, FORMAT_JSONL), FORMAT_CSV),
        flattening=_choice(fmt if isinstance(fmt, Mapping) else None, "format", "flattening",
                           (NO_FLATTENING, ROOT_FLATTENING), NO_FLATTENING),
        compression=_choice(raw.get("compression"), "compression", "compression_type", (NO_COMPRESSION, GZIP),
                            NO_COMPRESSION),
        path_format=path_format,
        file_name_format=file_name_format,
    )


# ---------------------------------------------------------------------------------------------------------
# key layout


def s3_safe(name: str) -> str:
    """A namespace or stream name as the bulk CDK puts it in a key: accents dropped, odd characters -> ``_``."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _S3_UNSAFE.sub("_", stripped)


def _collapse_slashes(path: str) -> str:
    return re.sub(r"/{2,}", "/", path)


def _cell(value: Any) -> str:
    """One CSV cell: strings as they are, null empty, everything else as JSON (nested values JSON-encoded)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class _Buffer:
    __slots__ = ("lines", "size", "parts")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.parts = 0


# ---------------------------------------------------------------------------------------------------------
# the store


class RejectedRecordStore:
    """Buffers rejected records per (namespace, stream) and uploads them to S3. Thread-safe.

    ``sync_id`` is the catalog's ``sync_id`` (the platform's job id; the platform links
    ``<bucket_path>/<job id>/``). ``clock`` returns epoch seconds (tests pass a fixed one).
    """

    def __init__(self, config: S3StorageConfig, sync_id: int | None, *, generation_id: int | None = None,
                 max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                 max_attempts: int = 5, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.sync_id = sync_id if sync_id is not None else 0
        self.generation_id = generation_id if generation_id is not None else 0
        self.max_records = max(1, max_records)
        self.max_bytes = max(1, max_bytes)
        self.max_total_bytes = max(1, max_total_bytes)
        self.max_attempts = max(1, max_attempts)
        self._clock = clock
        self._sync_time = datetime.fromtimestamp(clock(), tz=timezone.utc)
        self._lock = threading.RLock()
        self._buffers: dict[tuple[str | None, str], _Buffer] = {}
        self._total_bytes = 0
        self._keys: set[str] = set()
        self._client: Any = None
        self._client_expires: float | None = None  # epoch seconds of assumed-role credentials
        self._secrets: list[str] = list(config.secrets)
        self.written_keys: list[str] = []
        self.uploaded_records: dict[tuple[str | None, str], int] = {}
        self.closed = False

    @classmethod
    def from_config(cls, raw_config: Mapping[str, Any], sync_id: int | None,
                    **kwargs: Any) -> RejectedRecordStore | None:
        """A store for the connector config, or None when rejected-records storage is off."""
        config = parse_storage_config(raw_config)
        return cls(config, sync_id, **kwargs) if config is not None else None

    # ------------------------------------------------------------ public API
    @property
    def location(self) -> str:
        """``s3://bucket/<bucket_path>/`` (for messages)."""
        prefix = self.config.bucket_path.rstrip("/")
        return f"s3://{self.config.bucket_name}/{prefix + '/' if prefix else ''}"

    @property
    def pending(self) -> int:
        """Rejected records buffered and not uploaded yet."""
        with self._lock:
            return sum(len(buf.lines) for buf in self._buffers.values())

    def add(self, namespace: str | None, stream: str, record: Mapping[str, Any] | Any, reason: str, message: str,
            *, field: str | None = None, emitted_at_ms: int | None = None) -> None:
        """Buffer one rejected record; uploads the stream's buffer (or all buffers) when a limit is reached.

        A ``StorageError`` from that upload leaves the record buffered (do not add it again); the next flush
        retries.
        """
        if self.closed:
            raise StorageError("The rejected-records store is closed.", code="Closed", stream=stream)
        line = orjson.dumps(self._row(record, reason, message, field, emitted_at_ms))
        key = (namespace, stream)
        with self._lock:
            buf = self._buffers.get(key)
            if buf is None:
                buf = self._buffers[key] = _Buffer()
            buf.lines.append(line)
            buf.size += len(line) + 1
            self._total_bytes += len(line) + 1
            if len(buf.lines) >= self.max_records or buf.size >= self.max_bytes:
                self._flush_one(key)
            elif self._total_bytes >= self.max_total_bytes:
                self._flush_all()

    def flush(self) -> list[str]:
        """Upload every non-empty buffer, one object per stream. Returns the keys written."""
        with self._lock:
            return self._flush_all()

    def check(self) -> tuple[bool, str]:
        """Write and delete a small test object where the files would go; (ok, a sentence for the user)."""
        key = self._directory("testing", "test") + "_check_test"
        body = b'{"data":1}'
        if self.config.compression == GZIP:
            body = gzip.compress(body, mtime=0)
        try:
            self._put(key, body, "check")
        except StorageError as exc:
            return False, exc.message
        try:
            self._call(lambda client: client.delete_object(Bucket=self.config.bucket_name, Key=key),
                       f"delete the test file '{key}'")
        except StorageError as exc:
            return False, (f"{exc.message} Airbyte could write the test file '{key}' but not delete it: allow "
                           "s3:DeleteObject or delete the file yourself.")
        return True, f"Rejected records can be written to {self.location}."

    def close(self) -> None:
        """Upload what is still buffered, then release the client. Safe to call twice."""
        with self._lock:
            if self.closed:
                return
            try:
                self._flush_all()
            finally:
                self.closed = True
                client, self._client = self._client, None
                if client is not None and hasattr(client, "close"):
                    client.close()

    # ------------------------------------------------------------ rows
    def _row(self, record: Mapping[str, Any] | Any, reason: str, message: str, field: str | None,
             emitted_at_ms: int | None) -> dict[str, Any]:
        safe = json_safe(record)
        content: dict[str, Any] = dict(safe) if isinstance(safe, dict) else {"value": safe}
        content[REJECTED_REASON] = reason
        content[REJECTED_MESSAGE] = message
        if field is not None:
            content[REJECTED_FIELD] = field
        row: dict[str, Any] = {
            META_RAW_ID: str(uuid.uuid4()),
            META_EXTRACTED_AT: int(emitted_at_ms) if emitted_at_ms is not None else int(self._clock() * 1000),
            META_META: {"sync_id": self.sync_id, "changes": []},
            META_GENERATION_ID: self.generation_id,
        }
        if self.config.flattening == ROOT_FLATTENING:
            row.update(content)  # as in the bulk CDK, a record field wins over a meta column of the same name
        else:
            row[META_DATA] = content
        return row

    def _render(self, lines: list[bytes]) -> bytes:
        if self.config.format_type == FORMAT_JSONL:
            body = b"\n".join(lines) + b"\n"
        else:
            rows = [orjson.loads(line) for line in lines]
            header: dict[str, None] = {}
            for row in rows:
                for name in row:
                    header.setdefault(name, None)
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(header)
            for row in rows:
                writer.writerow([_cell(row.get(name)) for name in header])
            body = out.getvalue().encode("utf-8")
        return gzip.compress(body, mtime=0) if self.config.compression == GZIP else body

    # ------------------------------------------------------------ keys
    def _directory(self, namespace: str | None, stream: str) -> str:
        """``<bucket_path>/<path_format>/`` with its placeholders filled in (always ends with ``/``)."""
        t = self._sync_time
        values = {
            "namespace": s3_safe(namespace or ""), "stream_name": s3_safe(stream), "sync_id": str(self.sync_id),
            "year": f"{t.year:04d}", "month": f"{t.month:02d}", "day": f"{t.day:02d}", "hour": f"{t.hour:02d}",
            "minute": f"{t.minute:02d}", "second": f"{t.second:02d}",
            "millisecond": f"{t.microsecond // 1000:04d}", "epoch": str(int(t.timestamp() * 1000)),
        }

        def fill(match: re.Match[str]) -> str:
            name = match.group(1).lower()
            return str(uuid.uuid4()) if name == "uuid" else values[name]

        path = _PLACEHOLDER.sub(fill, self.config.path_format)
        prefix = self.config.bucket_path.rstrip("/")
        joined = _collapse_slashes(f"{prefix}/{path}/" if prefix else f"{path}/")
        return "" if joined == "/" else joined

    def _file_name(self, part: int) -> str:
        now_ms = int(self._clock() * 1000)
        t = self._sync_time
        values = {
            "date": f"{t.year:04d}_{t.month:02d}_{t.day:02d}", "date:yyyy_MM": f"{t.year:04d}_{t.month:02d}",
            "timestamp": str(now_ms), "part_number": str(part), "sync_id": str(self.sync_id),
            "format_extension": self.config.extension,
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.config.file_name_format)

    def _unique(self, key: str) -> str:
        """Never overwrite an object this store wrote (a file name format without a varying part)."""
        if key not in self._keys:
            return key
        ext = self.config.extension
        stem, suffix = (key[: -len(ext)], ext) if key.endswith(ext) else (key, "")
        n = 1
        while f"{stem}-{n}{suffix}" in self._keys:
            n += 1
        return f"{stem}-{n}{suffix}"

    # ------------------------------------------------------------ uploads
    def _flush_all(self) -> list[str]:
        return [key for key in (self._flush_one(k) for k in list(self._buffers)) if key]

    def _flush_one(self, key: tuple[str | None, str]) -> str | None:
        buf = self._buffers.get(key)
        if buf is None or not buf.lines:
            return None
        namespace, stream = key
        object_key = self._unique(self._directory(namespace, stream) + self._file_name(buf.parts))
        body = self._render(buf.lines)
        self._put(object_key, body, stream)  # raises: the buffer is kept for a later flush
        count = len(buf.lines)
        self._keys.add(object_key)
        self.written_keys.append(object_key)
        self.uploaded_records[key] = self.uploaded_records.get(key, 0) + count
        self._total_bytes -= buf.size
        buf.lines, buf.size = [], 0
        buf.parts += 1
        logger.info(f"Wrote {count} rejected record(s) of stream '{stream}' to "
                    f"s3://{self.config.bucket_name}/{object_key}.")
        return object_key

    def _put(self, key: str, body: bytes, stream: str) -> None:
        content_type = "application/gzip" if self.config.compression == GZIP else (
            "application/x-ndjson" if self.config.format_type == FORMAT_JSONL else "text/csv")
        self._call(lambda client: client.put_object(Bucket=self.config.bucket_name, Key=key, Body=body,
                                                    ContentType=content_type),
                   f"write '{key}'", stream=None if stream == "check" else stream)

    def _call(self, action: Callable[[Any], Any], what: str, stream: str | None = None) -> Any:
        try:
            return action(self._get_client())
        except StorageError:
            raise
        except Exception as exc:  # botocore's ClientError/BotoCoreError family, and connection errors
            raise self._storage_error(exc, what, stream) from None

    # ------------------------------------------------------------ client
    def _get_client(self) -> Any:
        expiring = self._client_expires is not None and (
            self._client_expires - self._clock() < CREDENTIALS_REFRESH_MARGIN_SECONDS)
        if self._client is None or expiring:
            self._client = self._new_client()
        return self._client

    def _boto_config(self) -> Any:
        from botocore.config import Config

        extra: dict[str, Any] = {"s3": {"addressing_style": "path"}} if self.config.endpoint else {}
        return Config(connect_timeout=10, read_timeout=60, user_agent_extra="airbyte-destination-iterable",
                      retries={"max_attempts": self.max_attempts, "mode": "standard"}, **extra)

    def _new_client(self) -> Any:
        try:
            import boto3
        except ImportError:  # pragma: no cover - boto3 is a requirement of the package
            raise StorageError("Rejected-records storage needs the boto3 package, which is not installed.",
                               code="ImportError") from None
        cfg = self.config
        session = boto3.session.Session(aws_access_key_id=cfg.access_key_id,
                                        aws_secret_access_key=cfg.secret_access_key, region_name=cfg.region)
        if cfg.role_arn:
            session = self._assume_role(boto3, session)
        return session.client("s3", endpoint_url=cfg.endpoint, config=self._boto_config())

    def _assume_role(self, boto3: Any, base: Any) -> Any:
        """Temporary credentials for ``role_arn`` (renewed before they expire). STS is reached at ``s3_endpoint``
        when one is set (S3-compatible stores serve both), else at AWS."""
        cfg = self.config
        params: dict[str, Any] = {"RoleArn": cfg.role_arn, "RoleSessionName": f"{ROLE_SESSION_NAME}-{self.sync_id}"}
        external_id = os.environ.get(EXTERNAL_ID_ENV)
        if external_id:
            params["ExternalId"] = external_id
        try:
            sts = base.client("sts", endpoint_url=cfg.endpoint, config=self._boto_config())
            creds = sts.assume_role(**params)["Credentials"]
        except Exception as exc:
            raise self._storage_error(exc, f"assume the role '{cfg.role_arn}'", None, role=True) from None
        self._secrets.extend(v for v in (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]) if v)
        expiration = creds.get("Expiration")
        self._client_expires = expiration.timestamp() if hasattr(expiration, "timestamp") else None
        return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                     aws_secret_access_key=creds["SecretAccessKey"],
                                     aws_session_token=creds["SessionToken"], region_name=cfg.region)

    # ------------------------------------------------------------ errors
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    def _storage_error(self, exc: Exception, what: str, stream: str | None, role: bool = False) -> StorageError:
        cfg = self.config
        bucket = f"'{cfg.bucket_name}'"
        response = getattr(exc, "response", None)
        error = response.get("Error", {}) if isinstance(response, dict) else {}
        code = str(error.get("Code") or type(exc).__name__)
        detail = self._scrub(str(error.get("Message") or exc))
        config_problem = True
        if role and (code in _PERMISSION_CODES or code in _CREDENTIAL_CODES):
            text = (f"Airbyte could not assume the role '{cfg.role_arn}' ({code}). Check 'Role ARN' and that the "
                    "role's trust policy lets Airbyte assume it.")
        elif code in _BUCKET_CODES:
            text = (f"The bucket {bucket} does not exist. Create it, or fix 'S3 Bucket Name' in the rejected-records "
                    "storage settings.")
        elif code in _CREDENTIAL_CODES:
            text = (f"The storage service refused the access key for bucket {bucket} ({code}). Check 'Access Key ID' "
                    "and 'Secret Access Key' in the rejected-records storage settings.")
        elif code in _PERMISSION_CODES:
            text = (f"Airbyte is not allowed to write to the bucket {bucket} ({code}). Give the access key (or role) "
                    f"permission to put and delete objects under {self.location}.")
        elif code in _REGION_CODES:
            text = (f"The bucket {bucket} is not in region '{cfg.region}' ({code}). Fix 'S3 Bucket Region' in the "
                    "rejected-records storage settings.")
        elif code in ("NoCredentialsError", "PartialCredentialsError"):
            text = ("No AWS credentials were found for the rejected-records bucket. Fill in 'Access Key ID' and "
                    "'Secret Access Key' (or 'Role ARN').")
        elif code in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError",
                      "ConnectionError"):
            where = cfg.endpoint or f"AWS S3 in {cfg.region}"
            text = (f"Could not reach the storage service at {where} to {what}. Check 'S3 Endpoint' and the network; "
                    "a later attempt may work.")
            config_problem = False
        else:
            text = f"Could not {what} in bucket {bucket}: {code}: {detail}"
            config_problem = False
        return StorageError(self._scrub(text), code=code, config_problem=config_problem, stream=stream)
