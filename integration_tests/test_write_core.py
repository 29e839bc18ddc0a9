"""Issue 3: add-mode writes through the real CLI against the sandbox, with exact checkpoints."""

from __future__ import annotations

from integration_tests.harness import (
    global_state,
    make_catalog,
    make_config,
    record,
    run_cli,
    stream_entry,
    stream_state,
)

SIZE_ROUTE = "GET /api/lists/{id}/size"  # the sandbox's request counter of list size reads


def list_id(sandbox, name: str) -> int:
    found = sandbox.client.list_by_name(name)
    assert len(found) == 1, f"expected exactly one list named {name!r}, found {found}"
    return found[0]["id"]


def test_records_become_members_and_states_echo_in_order_with_id_and_counts(sandbox):
    messages = []
    for i in range(2300):
        messages.append(record("vip", {"email": f"  Person{i}@Example.COM ", "plan": "gold"}))
        if i % 1000 == 999:
            messages.append(stream_state("vip", i, state_id=1000 + i))
    messages.append(record("news", {"email": "reader@example.org"}))
    messages.append(stream_state("news", "n1", state_id=5))
    messages.append(global_state("lsn-9", state_id=6))
    result = run_cli("write", make_config(sandbox), make_catalog("vip", "news"), messages)
    assert result.returncode == 0, result.stdout[-2000:]
    ids = [m["state"].get("id") for m in result.states]
    assert ids == [1999, 2999, 5, 6]
    counts = [m["state"]["destinationStats"]["recordCount"] for m in result.states]
    assert counts == [1000.0, 1000.0, 1.0, 2301.0]
    assert result.states[0]["state"]["stream"]["stream_state"] == {"cursor": 999}
    vip = sandbox.client.member_emails(list_id(sandbox, "vip"))
    assert vip == {f"person{i}@example.com" for i in range(2300)}
    assert sandbox.client.member_emails(list_id(sandbox, "news")) == {"reader@example.org"}
    summary = result.list_summary("vip")
    assert summary["records_read"] == 2300 and summary["added"] == 2300 and summary["list_action"] == "created"
    assert summary["size_before"] == 0, "a new list is empty before the sync"
    assert SIZE_ROUTE not in sandbox.client.stats()["requests"], "a new list's size is never read"


def test_second_run_reuses_lists_and_never_duplicates(sandbox):
    config, catalog = make_config(sandbox), make_catalog("vip")
    first = run_cli("write", config, catalog, [record("vip", {"email": "a@example.com"})])
    second = run_cli("write", config, catalog, [record("vip", {"email": "b@example.com"})])
    assert first.returncode == 0 and second.returncode == 0
    assert second.list_summary("vip")["list_action"] == "reused"
    assert second.list_summary("vip")["size_before"] == 1, "a reused list's size is read before the sync writes"
    assert sandbox.client.stats()["requests"][SIZE_ROUTE] == {"200": 1}, "one size read, for the reused list"
    assert sandbox.client.member_emails(list_id(sandbox, "vip")) == {"a@example.com", "b@example.com"}


def test_oldest_of_duplicate_lists_is_reused_with_a_warning(sandbox):
    old, new = sandbox.client.seed([{"name": "vip", "listType": "Standard", "createdAt": 1000},
                                    {"name": "vip", "listType": "Standard", "createdAt": 2000}])
    result = run_cli("write", make_config(sandbox), make_catalog("vip"), [record("vip", {"email": "a@example.com"})])
    assert result.returncode == 0
    assert result.list_summary("vip")["list_id"] == old
    assert sandbox.client.member_emails(old) == {"a@example.com"} and sandbox.client.member_emails(new) == set()
    assert any("using the oldest" in line for line in result.logs)


def test_dynamic_list_with_the_name_is_a_config_error(sandbox):
    sandbox.client.seed([{"name": "vip", "listType": "Dynamic"}])
    result = run_cli("write", make_config(sandbox), make_catalog("vip"), [record("vip", {"email": "a@example.com"})])
    assert result.returncode == 1
    assert result.errors[0]["failure_type"] == "config_error"
    assert "Dynamic" in result.errors[0]["message"] and "vip" in result.errors[0]["message"]
    assert len(sandbox.client.list_by_name("vip")) == 1


def test_list_name_template_and_namespace(sandbox):
    config = make_config(sandbox, list_name_template="Airbyte - {namespace}.{stream}")
    catalog = make_catalog(stream_entry("vip", namespace="crm"))
    result = run_cli("write", config, catalog, [record("vip", {"email": "a@example.com"}, namespace="crm")])
    assert result.returncode == 0, result.stdout[-2000:]
    lists = sandbox.client.list_by_name("Airbyte - crm.vip")
    assert len(lists) == 1 and "vip" in lists[0]["description"]


def test_new_list_id_not_yet_valid_is_waited_out(sandbox):
    sandbox.client.set_config(new_list_invalid_seconds=2)
    result = run_cli("write", make_config(sandbox), make_catalog("vip"),
                     [record("vip", {"email": f"u{i}@example.com"}) for i in range(10)])
    assert result.returncode == 0, result.stdout[-2000:]
    assert len(sandbox.client.member_emails(list_id(sandbox, "vip"))) == 10


def test_local_skips_and_iterable_rejects_are_counted_by_reason(sandbox):
    sandbox.client.set_config(forgotten_emails=["gone@example.com"])
    config = make_config(sandbox, user_id_field="uid")
    messages = [
        record("vip", {"email": "ok@example.com"}),
        record("vip", {"email": "not-an-email"}),
        record("vip", {"email": None}),
        record("vip", {"uid": "x" * 60}),
        record("vip", {"email": "gone@example.com"}),
        record("vip", "not an object"),
    ]
    result = run_cli("write", config, make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-2000:]
    summary = result.list_summary("vip")
    assert summary["skipped"] == {"invalid_email": 1, "missing_identifier": 1, "invalid_user_id": 1,
                                  "record_not_an_object": 1}
    assert summary["rejected"] == {"gdpr_forgotten": 1}
    assert summary["added"] == 1
    output = result.stdout + result.stderr
    assert "gone@example.com" not in output, "rejected emails must be masked in logs"
    assert "g***@example.com" in output


def test_duplicates_in_a_batch_are_merged_and_fields_filtered(sandbox):
    config = make_config(sandbox, data_fields=["plan", "score", "_airbyte_meta"][:2])
    messages = [
        record("vip", {"email": "a@example.com", "plan": "silver", "score": 1, "secret": "x",
                       "_airbyte_raw_id": "r1"}),
        record("vip", {"email": "A@example.com", "plan": "gold"}),
    ]
    result = run_cli("write", config, make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-2000:]
    user = sandbox.client.user(email="a@example.com")
    assert user["dataFields"].get("plan") == "gold" and user["dataFields"].get("score") == 1
    assert "secret" not in user["dataFields"] and "_airbyte_raw_id" not in user["dataFields"]
    assert result.list_summary("vip")["add_rows_sent"] == 1


def test_star_sends_every_non_identifier_field_but_never_airbyte_fields(sandbox):
    config = make_config(sandbox, data_fields=["*"])
    data = {"email": "a@example.com", "first_name": "Ann", "signup": "2024-05-01T10:00:00Z",
            "_airbyte_extracted_at": "2024", "_ab_cdc_updated_at": "2024", "nested": {"k": 1}}
    assert run_cli("write", config, make_catalog("vip"), [record("vip", data)]).returncode == 0
    fields = sandbox.client.user(email="a@example.com")["dataFields"]
    assert fields.get("first_name") == "Ann" and fields.get("nested") == {"k": 1}
    assert "email" not in fields and not any(k.startswith(("_airbyte_", "_ab_cdc_")) for k in fields)


def test_user_id_project(sandbox):
    config = make_config(sandbox, email_field="", user_id_field="account.id")
    messages = [record("vip", {"account": {"id": "U-1"}}), record("vip", {"account": {"id": "U-2"}})]
    result = run_cli("write", config, make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-2000:]
    members = sandbox.client.members(list_id(sandbox, "vip"))
    assert sorted(m["userId"] for m in members) == ["U-1", "U-2"]


def test_auth_failure_is_a_config_error_without_the_key(sandbox):
    config = make_config(sandbox, api_key="wrong-key-that-must-not-leak")
    result = run_cli("write", config, make_catalog("vip"), [record("vip", {"email": "a@example.com"})])
    assert result.returncode == 1
    assert result.errors and result.errors[0]["failure_type"] == "config_error"
    assert "wrong-key-that-must-not-leak" not in result.stdout + result.stderr


def test_consent_off_refuses_to_write(sandbox):
    config = make_config(sandbox, privacy_consent=False)
    result = run_cli("write", config, make_catalog("vip"), [record("vip", {"email": "a@example.com"})])
    assert result.returncode == 1 and "consent" in result.errors[0]["message"]
    assert sandbox.client.lists() == []


def test_progress_lines_are_logged(sandbox):
    sandbox.client.set_config(latency_ms=300)
    messages = [record("vip", {"email": f"u{i}@example.com"}) for i in range(5000)]
    result = run_cli("write", make_config(sandbox, progress_interval_seconds=0.2), make_catalog("vip"), messages)
    assert result.returncode == 0
    assert any(line.startswith("Progress: read") and "records/s" in line for line in result.logs)


def test_in_process_cdk_write_api(sandbox):
    """`DestinationIterable().write(...)` with protocol objects (the CDK API) gives the same result."""
    from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer, Type

    from destination_iterable import DestinationIterable

    catalog = ConfiguredAirbyteCatalogSerializer.load(make_catalog("vip"))
    messages = [AirbyteMessageSerializer.load(m) for m in
                [record("vip", {"email": "a@example.com"}), stream_state("vip", 1)]]
    out = list(DestinationIterable().write(make_config(sandbox), catalog, messages))
    assert [m.type for m in out] == [Type.STATE]
    assert out[0].state.sourceStats is None and out[0].state.destinationStats.recordCount == 1.0
    assert sandbox.client.member_emails(list_id(sandbox, "vip")) == {"a@example.com"}


def test_the_summary_gives_the_request_rate_and_its_429s(sandbox):
    """A 5/s limit with a one-request burst refuses part of the start-up: the summary's rate line and its
    `rate` entry count the same requests and 429s as the sandbox, and name the user's cap."""
    sandbox.client.set_config(subscribe_rps=5, subscribe_burst=1)
    messages = [record("vip", {"email": f"u{i}@example.com"}) for i in range(6000)]
    result = run_cli("write", make_config(sandbox, max_requests_per_second=50), make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    rate = result.summary["rate"]
    codes = sandbox.client.stats()["requests"]["POST /api/lists/subscribe"]
    assert rate["ok"] == codes["200"] == 6  # six batches of 1,000
    assert rate["rate_limited"] == codes["429"] > 0 and rate["sent"] == sum(codes.values()), (rate, codes)
    assert rate["max_rps"] == 50 and rate["sending_s"] > 0 and rate["errors"] == 0
    line = next(text for text in result.logs if text.startswith("Request rate:"))
    assert f"{rate['sent']} list requests in" in line and f"{rate['rate_limited']} answered 429" in line, line
    assert line.endswith("(capped at 50/s)."), line


def test_a_dry_run_says_no_list_requests_were_sent(sandbox):
    messages = [record("vip", {"email": f"u{i}@example.com"}) for i in range(10)]
    result = run_cli("write", make_config(sandbox, dry_run=True), make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Request rate: no list requests were sent." in result.logs
    assert result.summary["rate"]["sent"] == 0
