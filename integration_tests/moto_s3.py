"""Pytest fixtures: a real S3 API on a loopback port (moto's ``ThreadedMotoServer``), with IAM checks on.

Use them from a test module with ``pytest_plugins = ("integration_tests.moto_s3",)``.

* ``moto_s3_server`` (session): the server plus three IAM identities made before authentication is switched on --
  a writer (``s3:*`` and ``sts:AssumeRole``), a user without any permission, and a role the writer may assume.
  Every later request must be signed by a key moto knows, so wrong credentials really fail.
* ``s3_bucket`` (function): a fresh bucket. ``s3_bucket.storage_config(**overrides)`` is an
  ``object_storage_config`` for it; ``s3_bucket.objects()`` reads back what was written.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
BOOTSTRAP_KEY = "bootstrap-key"  # accepted only while authentication is off
_ALLOW_ALL = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}]}


def _trust(principal_arn: str) -> dict[str, Any]:
    """A trust policy that lets ``principal_arn`` assume the role (moto checks it)."""
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole"}]}


@dataclass(frozen=True)
class MotoS3:
    """The running server and the identities made on it."""

    endpoint: str
    region: str
    access_key_id: str
    secret_access_key: str
    denied_access_key_id: str
    denied_secret_access_key: str
    role_arn: str

    def client(self, service: str = "s3", *, access_key_id: str | None = None,
               secret_access_key: str | None = None) -> Any:
        """A boto3 client for this server (the writer's key unless told otherwise)."""
        config = Config(s3={"addressing_style": "path"})
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region, config=config,
                            aws_access_key_id=access_key_id or self.access_key_id,
                            aws_secret_access_key=secret_access_key or self.secret_access_key)


@dataclass(frozen=True)
class S3Bucket:
    """One empty bucket on the moto server."""

    server: MotoS3
    name: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def storage_config(self, **overrides: Any) -> dict[str, Any]:
        """An ``object_storage_config`` (storage_type S3) for this bucket with the writer's key."""
        config: dict[str, Any] = {
            "storage_type": "S3",
            "access_key_id": self.server.access_key_id,
            "secret_access_key": self.server.secret_access_key,
            "s3_bucket_name": self.name,
            "s3_bucket_region": self.server.region,
            "s3_endpoint": self.server.endpoint,
            "bucket_path": "rejected",
            "format": {"format_type": "JSONL", "flattening": "No flattening"},
        }
        config.update(overrides)
        return {key: value for key, value in config.items() if value is not None}

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``, sorted."""
        client = self.server.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Key -> body for every object under ``prefix`` (gzip bodies are returned as stored)."""
        client = self.server.client()
        return {key: client.get_object(Bucket=self.name, Key=key)["Body"].read() for key in self.keys(prefix)}

    @staticmethod
    def jsonl(body: bytes) -> list[dict[str, Any]]:
        """The records of a JSONL body (gunzipped first when it is gzip)."""
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        return [json.loads(line) for line in body.decode("utf-8").splitlines() if line]


def _set_auth(endpoint: str, count: str) -> None:
    """moto's own switch: requests after the first ``count`` must be signed by a known key ("inf" = never)."""
    requests.post(f"{endpoint}/moto-api/reset-auth", data=count.encode(), timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def moto_s3_server() -> Iterator[MotoS3]:
    """moto's server on a free loopback port; IAM authentication on once the identities exist."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        _set_auth(endpoint, "inf")
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=BOOTSTRAP_KEY,
                           aws_secret_access_key=BOOTSTRAP_KEY)
        writer_arn = iam.create_user(UserName="rejected-writer")["User"]["Arn"]
        iam.put_user_policy(UserName="rejected-writer", PolicyName="all", PolicyDocument=json.dumps(_ALLOW_ALL))
        writer = iam.create_access_key(UserName="rejected-writer")["AccessKey"]
        iam.create_user(UserName="nobody")
        denied = iam.create_access_key(UserName="nobody")["AccessKey"]
        trust = json.dumps(_trust(writer_arn))
        role = iam.create_role(RoleName="rejected-role", AssumeRolePolicyDocument=trust)["Role"]
        iam.put_role_policy(RoleName="rejected-role", PolicyName="all", PolicyDocument=json.dumps(_ALLOW_ALL))
        _set_auth(endpoint, "0")
        yield MotoS3(endpoint=endpoint, region=REGION, access_key_id=writer["AccessKeyId"],
                     secret_access_key=writer["SecretAccessKey"], denied_access_key_id=denied["AccessKeyId"],
                     denied_secret_access_key=denied["SecretAccessKey"], role_arn=role["Arn"])
    finally:
        try:
            _set_auth(endpoint, "inf")
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(moto_s3_server: MotoS3) -> Iterator[S3Bucket]:
    """A new, empty bucket (removed with its objects afterwards)."""
    bucket = S3Bucket(moto_s3_server, f"rejected-{uuid.uuid4().hex[:12]}")
    client = moto_s3_server.client()
    client.create_bucket(Bucket=bucket.name)
    try:
        yield bucket
    finally:
        for key in bucket.keys():
            client.delete_object(Bucket=bucket.name, Key=key)
        client.delete_bucket(Bucket=bucket.name)
