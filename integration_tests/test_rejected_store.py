"""RejectedRecordStore against a real S3 API (moto's server on loopback, IAM checks on); no boto3 mocks."""

from __future__ import annotations

import csv
import gzip
import io
import socket
from datetime import datetime, timezone
from typing import Any

import pytest

from destination_iterable.errors import ConfigError, TransientError
from destination_iterable.storage import RejectedRecordStore, S3StorageConfig, StorageError, parse_storage_config

pytest_plugins = ("integration_tests.moto_s3",)

SYNC_TIME = datetime(2025, 3, 4, 5, 6, 7, 89000, tzinfo=timezone.utc).timestamp()


def fixed_clock(seconds: float = SYNC_TIME):
    return lambda: seconds


def store_for(bucket: Any, sync_id: int | None = 42, clock: Any = None, **config: Any) -> RejectedRecordStore:
    store_kwargs = {k: config.pop(k) for k in ("max_records", "max_bytes", "max_total_bytes", "max_attempts",
                                               "generation_id") if k in config}
    parsed = parse_storage_config({"object_storage_config": bucket.storage_config(**config)})
    assert parsed is not None
    return RejectedRecordStore(parsed, sync_id, clock=clock or fixed_clock(), **store_kwargs)


def csv_rows(body: bytes) -> list[dict[str, str]]:
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------ layout


def test_jsonl_default_layout_and_airbyte_columns(s3_bucket):
    store = store_for(s3_bucket, generation_id=3)
    store.add(None, "users", {"email": "not-an-email", "plan": "gold"}, "invalid_email", "Iterable said no",
              field="email", emitted_at_ms=1700000000000)
    store.add(None, "users", {"email": "b@x"}, "invalid_email", "again")
    store.add("crm", "leads", {"userId": "u1", "tags": ["a", "b"]}, "conflict", "userId belongs to another email")
    keys = store.flush()

    millis = int(SYNC_TIME * 1000)
    assert sorted(keys) == [f"rejected/42/crm/leads/2025_03_04_{millis}_0.jsonl",
                            f"rejected/42/users/2025_03_04_{millis}_0.jsonl"]
    objects = s3_bucket.objects()
    users = s3_bucket.jsonl(objects[f"rejected/42/users/2025_03_04_{millis}_0.jsonl"])
    assert len(users) == 2
    first = users[0]
    assert list(first) == ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id",
                           "_airbyte_data"]
    assert first["_airbyte_extracted_at"] == 1700000000000
    assert first["_airbyte_meta"] == {"sync_id": 42, "changes": []}
    assert first["_airbyte_generation_id"] == 3
    assert first["_airbyte_data"] == {"email": "not-an-email", "plan": "gold", "rejected_reason": "invalid_email",
                                      "rejected_message": "Iterable said no", "rejected_field": "email"}
    assert users[1]["_airbyte_extracted_at"] == millis  # no emitted_at: the store's clock
    assert "rejected_field" not in users[1]["_airbyte_data"]
    leads = s3_bucket.jsonl(objects[f"rejected/42/crm/leads/2025_03_04_{millis}_0.jsonl"])
    assert leads[0]["_airbyte_data"]["tags"] == ["a", "b"]
    assert store.uploaded_records == {(None, "users"): 2, ("crm", "leads"): 1}
    assert store.pending == 0


def test_csv_root_level_flattening_has_union_header_and_json_encoded_nested_values(s3_bucket):
    store = store_for(s3_bucket, format={"format_type": "CSV", "flattening": "Root level flattening"})
    store.add(None, "users", {"email": "a@x", "address": {"city": "Lyon"}, "vip": True}, "r1", "m1")
    store.add(None, "users", {"email": "b@x", "score": 1.5, "nickname": None, "note": 'say "hi", ok'}, "r2", "m2")
    [key] = store.flush()
    assert key.endswith("_0.csv")

    body = s3_bucket.objects()[key]
    header = body.decode().splitlines()[0].split(",")
    assert header == ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id",
                      "email", "address", "vip", "rejected_reason", "rejected_message", "score", "nickname", "note"]
    rows = csv_rows(body)
    assert rows[0]["address"] == '{"city":"Lyon"}'
    assert rows[0]["vip"] == "true"
    assert rows[0]["score"] == ""  # not in that record
    assert rows[0]["_airbyte_meta"] == '{"sync_id":42,"changes":[]}'
    assert rows[1]["score"] == "1.5"
    assert rows[1]["nickname"] == ""
    assert rows[1]["note"] == 'say "hi", ok'
    assert (rows[1]["rejected_reason"], rows[1]["rejected_message"]) == ("r2", "m2")


def test_csv_without_flattening_puts_the_record_in_one_json_column(s3_bucket):
    store = store_for(s3_bucket, format={"format_type": "CSV", "flattening": "No flattening"})
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    [key] = store.flush()
    [row] = csv_rows(s3_bucket.objects()[key])
    assert list(row) == ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id",
                         "_airbyte_data"]
    assert row["_airbyte_data"] == '{"email":"a@x","rejected_reason":"r","rejected_message":"m"}'


@pytest.mark.parametrize(("format_type", "extension"), [("JSONL", ".jsonl.gz"), ("CSV", ".csv.gz")])
def test_gzip_compression(s3_bucket, format_type, extension):
    store = store_for(s3_bucket, format={"format_type": format_type},
                      compression={"compression_type": "GZIP"})
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    [key] = store.flush()
    assert key.endswith(extension)
    body = s3_bucket.objects()[key]
    assert body[:2] == b"\x1f\x8b"
    text = gzip.decompress(body).decode()
    assert "a@x" in text and "rejected_reason" in text


def test_path_and_file_name_placeholders(s3_bucket):
    store = store_for(
        s3_bucket, sync_id=7, bucket_path="/exports//dlq/",
        path_format="{namespace}/{Stream_Name}/{year}/{month}/{day}/{hour}{minute}{second}-{millisecond}/{epoch}",
        file_name_format="{sync_id}-{date:yyyy_MM}-{date}-{timestamp}-part{part_number}{format_extension}")
    store.add("Sales Team", "VIP customers (é)", {"email": "a@x"}, "r", "m")
    [key] = store.flush()
    millis = int(SYNC_TIME * 1000)
    assert key == (f"/exports/dlq/Sales_Team/VIP_customers_(e)/2025/03/04/050607-0089/{millis}/"
                   f"7-2025_03-2025_03_04-{millis}-part0.jsonl")
    assert s3_bucket.keys("/exports/") == [key]


def test_empty_namespace_collapses_and_uuid_placeholder(s3_bucket):
    store = store_for(s3_bucket, bucket_path="", path_format="{sync_id}/{namespace}/{stream_name}/{uuid}",
                      file_name_format="x{format_extension}")
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    [key] = store.flush()
    parts = key.split("/")
    assert parts[:2] == ["42", "users"] and len(parts[2]) == 36 and parts[3] == "x.jsonl"


def test_several_flushes_number_parts_and_never_overwrite(s3_bucket):
    store = store_for(s3_bucket)
    assert store.flush() == []
    keys = []
    for i in range(3):
        store.add(None, "users", {"i": i}, "r", "m")
        keys += store.flush()
    assert [k.rsplit("_", 1)[1] for k in keys] == ["0.jsonl", "1.jsonl", "2.jsonl"]
    assert len(set(keys)) == 3

    fixed = store_for(s3_bucket, file_name_format="rejects{format_extension}", bucket_path="fixed")
    for i in range(3):
        fixed.add(None, "users", {"i": i}, "r", "m")
        fixed.flush()
    assert s3_bucket.keys("fixed/") == ["fixed/42/users/rejects-1.jsonl", "fixed/42/users/rejects-2.jsonl",
                                        "fixed/42/users/rejects.jsonl"]
    bodies = s3_bucket.objects("fixed/")
    assert sorted(s3_bucket.jsonl(b)[0]["_airbyte_data"]["i"] for b in bodies.values()) == [0, 1, 2]


def test_buffers_flush_by_themselves_at_the_record_and_byte_limits(s3_bucket):
    store = store_for(s3_bucket, max_records=3)
    for i in range(7):
        store.add(None, "users", {"i": i}, "r", "m")
    assert len(store.written_keys) == 2 and store.pending == 1
    store.flush()
    records = [r for body in s3_bucket.objects().values() for r in s3_bucket.jsonl(body)]
    assert sorted(r["_airbyte_data"]["i"] for r in records) == list(range(7))

    by_bytes = store_for(s3_bucket, bucket_path="bytes", max_bytes=1000)
    for i in range(10):
        by_bytes.add(None, "users", {"i": i, "pad": "x" * 300}, "r", "m")
    assert by_bytes.written_keys and all(count <= 3 for count in
                                         [len(s3_bucket.jsonl(b)) for b in s3_bucket.objects("bytes/").values()])


def test_total_byte_limit_flushes_every_stream(s3_bucket):
    store = store_for(s3_bucket, max_total_bytes=2000)
    for i in range(6):
        store.add(None, f"stream{i % 2}", {"i": i, "pad": "y" * 300}, "r", "m")
    assert {k.split("/")[2] for k in store.written_keys} == {"stream0", "stream1"}


def test_close_flushes_and_then_refuses_records(s3_bucket):
    store = store_for(s3_bucket)
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    store.close()
    store.close()
    assert len(s3_bucket.keys()) == 1
    with pytest.raises(StorageError):
        store.add(None, "users", {"email": "b@x"}, "r", "m")


def test_non_json_values_are_made_safe(s3_bucket):
    store = store_for(s3_bucket)
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    store.add(None, "users", {"when": when, "nan": float("nan"), "raw": b"\x00\x01"}, "r", "m")
    [key] = store.flush()
    data = s3_bucket.jsonl(s3_bucket.objects()[key])[0]["_airbyte_data"]
    assert data["when"] == "2024-01-02T03:04:05+00:00" and data["nan"] is None and data["raw"] == "AAE="


# ------------------------------------------------------------------------------------------------ check


def test_check_succeeds_and_leaves_nothing_behind(s3_bucket):
    ok, message = store_for(s3_bucket, compression={"compression_type": "GZIP"}).check()
    assert ok, message
    assert message == f"Rejected records can be written to s3://{s3_bucket.name}/rejected/."
    assert s3_bucket.keys() == []


def test_check_with_a_role_arn_assumes_it(s3_bucket):
    store = store_for(s3_bucket, role_arn=s3_bucket.server.role_arn)
    ok, message = store.check()
    assert ok, message
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    assert len(store.flush()) == 1


def test_check_missing_bucket(s3_bucket):
    ok, message = store_for(s3_bucket, s3_bucket_name=s3_bucket.name + "-missing", max_attempts=1).check()
    assert not ok
    assert "does not exist" in message and "S3 Bucket Name" in message


def test_check_wrong_secret_never_shows_the_credentials(s3_bucket):
    secret = "Wrong/Secret+Key0123456789abcdefghijklmn"
    ok, message = store_for(s3_bucket, secret_access_key=secret, max_attempts=1).check()
    assert not ok
    assert "Access Key ID" in message and "Secret Access Key" in message
    assert secret not in message and s3_bucket.server.access_key_id not in message


def test_check_unknown_access_key(s3_bucket):
    ok, message = store_for(s3_bucket, access_key_id="AKIAUNKNOWN000000000", max_attempts=1).check()
    assert not ok
    assert "refused the access key" in message and "AKIAUNKNOWN000000000" not in message


def test_check_key_without_permission(s3_bucket):
    server = s3_bucket.server
    ok, message = store_for(s3_bucket, access_key_id=server.denied_access_key_id,
                            secret_access_key=server.denied_secret_access_key, max_attempts=1).check()
    assert not ok
    assert "not allowed to write" in message and server.denied_secret_access_key not in message


def test_check_unreachable_endpoint(s3_bucket):
    ok, message = store_for(s3_bucket, s3_endpoint=f"http://127.0.0.1:{free_port()}", max_attempts=1).check()
    assert not ok
    assert "Could not reach the storage service" in message


def test_failed_flush_raises_a_storage_error_and_keeps_the_records(s3_bucket):
    secret = "another-WRONG-secret-0123456789abcdefgh"
    store = store_for(s3_bucket, secret_access_key=secret, max_attempts=1)
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    with pytest.raises(StorageError) as caught:
        store.flush()
    error = caught.value
    assert isinstance(error, TransientError)
    assert error.config_problem and error.code == "SignatureDoesNotMatch" and error.stream == "users"
    assert secret not in str(error) and s3_bucket.server.access_key_id not in str(error)
    assert store.pending == 1 and s3_bucket.keys() == []


def test_a_secret_that_shows_up_in_a_message_is_masked(s3_bucket):
    # The unknown key id is also part of the bucket name, so it would appear in the message unmasked.
    key_id = "akialeaky0000000000"
    store = store_for(s3_bucket, access_key_id=key_id, s3_bucket_name=f"{key_id}-bucket", max_attempts=1)
    ok, message = store.check()
    assert not ok
    assert key_id not in message and "'****-bucket'" in message


def test_unreachable_endpoint_on_flush_is_not_a_config_problem(s3_bucket):
    store = store_for(s3_bucket, s3_endpoint=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    store.add(None, "users", {"email": "a@x"}, "r", "m")
    with pytest.raises(StorageError) as caught:
        store.flush()
    assert not caught.value.config_problem


# ------------------------------------------------------------------------------------------------ parsing


def test_storage_off():
    assert parse_storage_config({}) is None
    assert parse_storage_config({"object_storage_config": None}) is None
    assert parse_storage_config({"object_storage_config": {"storage_type": "None"}}) is None
    assert RejectedRecordStore.from_config({"api_key": "k"}, 1) is None


def test_defaults_and_repr_hide_credentials():
    config = parse_storage_config({"object_storage_config": {
        "storage_type": "S3", "s3_bucket_name": "b", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t"}})
    assert config == S3StorageConfig(bucket_name="b", access_key_id="AKIAEXAMPLE", secret_access_key="s3cr3t")
    assert config.path_format == "{sync_id}/{namespace}/{stream_name}/"
    assert config.file_name_format == "{date}_{timestamp}_{part_number}{format_extension}"
    assert (config.format_type, config.flattening, config.compression) == ("CSV", "No flattening", "No Compression")
    assert config.region == "us-east-1" and config.extension == ".csv"
    assert "AKIAEXAMPLE" not in repr(config) and "s3cr3t" not in repr(config)


@pytest.mark.parametrize(("patch", "setting"), [
    ({"storage_type": "GCS"}, "object_storage_config.storage_type"),
    ({"s3_bucket_name": ""}, "object_storage_config.s3_bucket_name"),
    ({"s3_bucket_name": "s3://bucket/path"}, "object_storage_config.s3_bucket_name"),
    ({"s3_bucket_region": "moon-1"}, "object_storage_config.s3_bucket_region"),
    ({"s3_endpoint": "http://minio.internal:9000"}, "object_storage_config.s3_endpoint"),
    ({"s3_endpoint": "ftp://localhost"}, "object_storage_config.s3_endpoint"),
    ({"s3_endpoint": "https://user:pw@s3.example.com"}, "object_storage_config.s3_endpoint"),
    ({"secret_access_key": None}, "object_storage_config.secret_access_key"),
    ({"role_arn": "my-role"}, "object_storage_config.role_arn"),
    ({"format": {"format_type": "PARQUET"}}, "object_storage_config.format.format_type"),
    ({"format": {"format_type": "CSV", "flattening": "Deep"}}, "object_storage_config.format.flattening"),
    ({"compression": {"compression_type": "ZSTD"}}, "object_storage_config.compression.compression_type"),
    ({"path_format": "{sync_id}/{table}/"}, "object_storage_config.path_format"),
    ({"file_name_format": "{PART_NUMBER}.csv"}, "object_storage_config.file_name_format"),
    ({"bucket_path": 12}, "object_storage_config.bucket_path"),
])
def test_bad_values_name_the_setting(patch, setting):
    raw = {"storage_type": "S3", "s3_bucket_name": "b", "s3_bucket_region": "eu-west-1",
           "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t", "bucket_path": "p",
           "format": {"format_type": "JSONL"}}
    raw.update(patch)
    with pytest.raises(ConfigError) as caught:
        parse_storage_config({"object_storage_config": raw})
    assert f"'{setting}'" in caught.value.message
    assert "s3cr3t" not in caught.value.message


def test_loopback_http_endpoints_are_allowed():
    for url in ("http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000", "https://s3.example.com"):
        config = parse_storage_config({"object_storage_config": {"storage_type": "S3", "s3_bucket_name": "b",
                                                                 "s3_endpoint": url}})
        assert config is not None and config.endpoint == url.rstrip("/")
