"""Data activation (issue 13) through the real CLI: `discover`, a mapped write, rejected counts and files."""

from __future__ import annotations

from typing import Any

from destination_iterable.airbyte.discover import NEW_LIST_OBJECT_NAME
from integration_tests.conftest import TEST_READ_ONLY_KEY
from integration_tests.harness import make_catalog, make_config, record, run_cli, stream_entry, stream_state

pytest_plugins = ("integration_tests.moto_s3",)

SEEDED = [
    {"name": "VIP customers", "members": [{"email": "old@example.com", "dataFields": {"plan": "gold", "ltv": 1.5}}]},
    {"name": "VIP customers", "members": []},  # a younger duplicate: one object, the oldest list is used
    {"name": "Churn risk", "members": []},
    {"name": "Big spenders", "listType": "Dynamic"},
    {"name": "Do not mail", "listType": "Suppression"},
]


def discover(sandbox: Any, **config: Any):
    return run_cli("discover", make_config(sandbox, **config))


def catalogs(result) -> list[dict[str, Any]]:
    return [m["destination_catalog"] for m in result.messages if m.get("type") == "DESTINATION_CATALOG"]


def test_discover_offers_exactly_the_standard_lists_with_typed_fields(sandbox):
    sandbox.client.seed(SEEDED)
    before = sandbox.client.stats()["requests"]
    result = discover(sandbox, api_key=TEST_READ_ONLY_KEY)  # a read-only key is enough
    assert result.returncode == 0, result.stdout[-3000:]
    [catalog] = catalogs(result)
    objects = {op["object_name"] for op in catalog["operations"]}
    assert objects == {NEW_LIST_OBJECT_NAME, "VIP customers", "Churn risk"}
    modes = {op["sync_mode"] for op in catalog["operations"] if op["object_name"] == "VIP customers"}
    assert modes == {"append", "update", "soft_delete", "overwrite"}
    append = next(op for op in catalog["operations"]
                  if op["object_name"] == "VIP customers" and op["sync_mode"] == "append")
    props = append["json_schema"]["properties"]
    assert props["plan"] == {"type": "string"} and props["ltv"] == {"type": "number"}
    assert props["email"]["type"] == "string" and "signupDate" not in props
    assert append["matching_keys"] == [["email"]]  # no userId field configured: an email project
    after = sandbox.client.stats()["requests"]
    calls = {route: sum(after[route].values()) - sum(before.get(route, {}).values()) for route in after}
    assert {route: n for route, n in calls.items() if n} == {"GET /api/lists": 1, "GET /api/users/getFields": 1}
    assert sandbox.client.list_by_name("VIP customers")[0]["size"] == 1  # nothing written


def test_discover_matching_keys_follow_the_identity_settings(sandbox):
    result = discover(sandbox, email_field="", user_id_field="uid")
    assert result.returncode == 0, result.stdout[-3000:]
    [catalog] = catalogs(result)
    assert {tuple(map(tuple, op["matching_keys"])) for op in catalog["operations"]} == {(("userId",),)}
    hybrid = catalogs(discover(sandbox, user_id_field="uid"))[0]
    assert hybrid["operations"][0]["matching_keys"] == [["email"], ["userId"]]


def test_discover_with_a_wrong_key_is_a_config_error(sandbox):
    result = discover(sandbox, api_key="not-the-key")
    assert result.returncode != 0
    assert not catalogs(result)
    assert result.errors and result.errors[0]["failure_type"] == "config_error"
    assert "not-the-key" not in result.stdout


def activation_stream(name: str, target: str, key: str, mode: str = "append") -> dict[str, Any]:
    entry = stream_entry(name, mode=mode, primary_key=[[key]],
                         properties={key: {"type": "string"}, "plan": {"type": "string"}, "ltv": {"type": "number"}})
    entry["destination_object_name"] = target
    entry["sync_id"] = 777
    return entry


def activation_messages() -> list[dict[str, Any]]:
    return [
        record("warehouse_users", {"email": "a@example.com", "plan": "silver", "ltv": 2.0, "_airbyte_raw_id": "r1"}),
        record("warehouse_users", {"email": "not-an-email", "plan": "gold"}),               # skipped locally
        stream_state("warehouse_users", 1, state_id=1),
        record("warehouse_users", {"email": "b@example.com", "plan": "gold", "ltv": "lots"}),  # Iterable: type
        record("warehouse_users", {"email": "c@example.com", "plan": "bronze"}),
        record("warehouse_users", {"plan": "no identifier"}),                               # skipped locally
        stream_state("warehouse_users", 2, state_id=2),
        record("warehouse_users", {"email": "d@example.com"}),
        stream_state("warehouse_users", 3, state_id=3),
    ]


def run_activation(sandbox: Any, **config: Any):
    sandbox.client.seed(SEEDED[:2])
    catalog = make_catalog(activation_stream("warehouse_users", "VIP customers", "email"))
    # email_field/data_fields of the config are ignored for a data-activation stream
    return run_cli("write", make_config(sandbox, email_field="contact.mail", data_fields=["nothing"], **config),
                   catalog, activation_messages())


def test_write_into_a_chosen_list_with_mapped_fields_and_rejected_counts(sandbox):
    result = run_activation(sandbox)
    assert result.returncode == 0, result.stdout[-3000:]
    oldest = min(sandbox.client.list_by_name("VIP customers"), key=lambda entry: entry["id"])
    assert sandbox.client.member_emails(oldest["id"]) == {"old@example.com", "a@example.com", "c@example.com",
                                                          "d@example.com"}
    assert len(sandbox.client.list_by_name("VIP customers")) == 2  # no new list
    user = sandbox.client.user(email="a@example.com")
    assert user["dataFields"]["plan"] == "silver" and user["dataFields"]["ltv"] == 2.0
    assert not any(key.startswith("_airbyte") for key in user["dataFields"])
    stats = [s["state"]["destinationStats"] for s in result.states]
    assert [s["state"]["id"] for s in result.states] == [1, 2, 3]
    assert stats == [{"recordCount": 1.0, "rejectedRecordCount": 1.0},
                     {"recordCount": 1.0, "rejectedRecordCount": 2.0},
                     {"recordCount": 1.0, "rejectedRecordCount": 0.0}]
    summary = result.summary
    assert summary["lists"][0]["rejected_records"] == 3 == summary["state_rejected_count"]
    assert summary["state_record_count"] == 3
    assert summary["lists"][0]["rejected"] == {"invalid_data": 1}


def test_update_mode_adds_only_existing_users(sandbox):
    sandbox.client.seed([{"name": "VIP customers", "members": []},
                         {"name": "Known", "members": [{"email": "known@example.com"}]}])
    catalog = make_catalog(activation_stream("warehouse_users", "VIP customers", "email", mode="update"))
    messages = [record("warehouse_users", {"email": "known@example.com", "plan": "gold"}),
                record("warehouse_users", {"email": "stranger@example.com"}),
                stream_state("warehouse_users", 1, state_id=1)]
    result = run_cli("write", make_config(sandbox), catalog, messages)
    assert result.returncode == 0, result.stdout[-3000:]
    [vip] = sandbox.client.list_by_name("VIP customers")
    assert sandbox.client.member_emails(vip["id"]) == {"known@example.com"}
    assert result.states[0]["state"]["destinationStats"] == {"recordCount": 1.0, "rejectedRecordCount": 1.0}


def test_userid_matching_key_and_a_missing_list_is_created(sandbox):
    catalog = make_catalog(activation_stream("warehouse_users", "Fresh list", "userId"))
    messages = [record("warehouse_users", {"userId": "u-1", "email": "x@example.com", "plan": "gold"}),
                stream_state("warehouse_users", 1, state_id=1)]
    result = run_cli("write", make_config(sandbox), catalog, messages)
    assert result.returncode == 0, result.stdout[-3000:]
    [fresh] = sandbox.client.list_by_name("Fresh list")
    members = sandbox.client.members(fresh["id"])
    assert [m.get("userId") for m in members] == ["u-1"]
    assert sandbox.client.user(user_id="u-1")["dataFields"]["plan"] == "gold"


def test_rejected_records_are_stored_in_the_bucket(sandbox, s3_bucket):
    result = run_activation(sandbox, object_storage_config=s3_bucket.storage_config())
    assert result.returncode == 0, result.stdout[-3000:]
    objects = s3_bucket.objects("rejected/777/")
    rows = [row for body in objects.values() for row in s3_bucket.jsonl(body)]
    data = sorted((row["_airbyte_data"] for row in rows), key=lambda d: d["rejected_reason"])
    assert [(d["rejected_reason"], d.get("email"), d.get("plan")) for d in data] == [
        ("invalid_data", "b@example.com", "gold"),
        ("invalid_email", "not-an-email", "gold"),
        ("missing_identifier", None, "no identifier"),
    ]
    assert all(key.startswith("rejected/777/warehouse_users/") for key in objects)
    assert s3_bucket.storage_config()["secret_access_key"] not in result.stdout


def test_check_proves_the_bucket_is_writable(sandbox, s3_bucket, moto_s3_server):
    ok = run_cli("check", make_config(sandbox, object_storage_config=s3_bucket.storage_config()))
    assert ok.connection_status["status"] == "SUCCEEDED", ok.stdout[-2000:]
    denied = s3_bucket.storage_config(access_key_id=moto_s3_server.denied_access_key_id,
                                      secret_access_key=moto_s3_server.denied_secret_access_key)
    bad = run_cli("check", make_config(sandbox, object_storage_config=denied))
    assert bad.connection_status["status"] == "FAILED"
    assert moto_s3_server.denied_secret_access_key not in bad.stdout


def test_overwrite_with_the_userid_matching_key_compares_members_by_userid(sandbox):
    """The classic settings identify by email; the mapped stream by userId: the mirror must compare userIds."""
    from integration_tests.harness import stream_status

    sandbox.client.seed([{"name": "Members", "members": [{"email": "stay@example.com", "userId": "u-stay"},
                                                         {"email": "left@example.com", "userId": "u-left"}]}])
    entry = activation_stream("warehouse_users", "Members", "userId", mode="overwrite")
    entry["generation_id"] = entry["minimum_generation_id"] = 1
    messages = [record("warehouse_users", {"userId": "u-stay"}), stream_state("warehouse_users", 1, state_id=1),
                stream_status("warehouse_users")]
    result = run_cli("write", make_config(sandbox, mirror_max_removal_percent=100), make_catalog(entry), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    [members_list] = sandbox.client.list_by_name("Members")
    assert [m.get("userId") for m in sandbox.client.members(members_list["id"])] == ["u-stay"]
