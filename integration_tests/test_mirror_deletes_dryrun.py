"""Issue 4: mirror lists safely, remove deleted members, and preview a sync with dry-run."""

from __future__ import annotations

import pytest

from integration_tests.harness import (
    make_catalog,
    make_config,
    record,
    run_cli,
    stream_entry,
    stream_state,
    stream_status,
)

DELETED = "2024-06-01T00:00:00Z"


def seed_vip(sandbox, emails):
    return sandbox.client.seed([{"name": "vip", "listType": "Standard",
                                 "members": [{"email": e} for e in emails]}])[0]


def mirror_catalog(gen=2, min_gen=2):
    return make_catalog(stream_entry("vip", mode="overwrite", generation_id=gen, minimum_generation_id=min_gen))


def sync(*emails):
    return [record("vip", {"email": e}) for e in emails]


def test_mirror_with_complete_status_gives_exactly_the_new_segment(sandbox):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
    messages = [*sync("b@x.com", "C@X.com", "e@x.com"), stream_state("vip", 1, state_id=1), stream_status("vip")]
    result = run_cli("write", make_config(sandbox), mirror_catalog(), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sandbox.client.member_emails(list_id) == {"b@x.com", "c@x.com", "e@x.com"}
    summary = result.list_summary("vip")
    assert summary["removed_by_mirror"] == 2 and summary["mode"] == "mirror" and summary["size_before"] == 4
    assert [s["state"]["id"] for s in result.states] == [1]
    assert sandbox.client.stats()["channel_unsubscribes"] == 0, "a mirror must never unsubscribe from a channel"


@pytest.mark.parametrize("tail", [[], [stream_status("vip", "INCOMPLETE")], [stream_status("other")]],
                         ids=["no-status", "incomplete", "other-stream-complete"])
def test_without_completion_nobody_is_removed(sandbox, tail):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com"])
    result = run_cli("write", make_config(sandbox), mirror_catalog(), [*sync("b@x.com", "c@x.com"), *tail])
    assert result.returncode == 0, result.stdout[-3000:]
    assert sandbox.client.member_emails(list_id) == {"a@x.com", "b@x.com", "c@x.com"}
    assert any("nobody was removed" in line for line in result.logs)


def test_input_cut_off_mid_stream_removes_nobody(sandbox):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com"])
    cut = b'{"type":"RECORD","record":{"stream":"vip","data":{"email":"b@x.com"},"emitted_at":1}}\n{"type":"REC'
    result = run_cli("write", make_config(sandbox), mirror_catalog(), cut)
    assert sandbox.client.member_emails(list_id) == {"a@x.com", "b@x.com"}
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("gen, min_gen, removed", [(3, 3, True), (3, 0, False), (None, None, False), (4, 1, True)])
def test_refresh_generations(sandbox, gen, min_gen, removed):
    list_id = seed_vip(sandbox, ["old@x.com"])
    result = run_cli("write", make_config(sandbox), mirror_catalog(gen, min_gen), [*sync("new@x.com"),
                                                                                 stream_status("vip")])
    assert result.returncode == 0, result.stdout[-3000:]
    expected = {"new@x.com"} if removed else {"old@x.com", "new@x.com"}
    assert sandbox.client.member_emails(list_id) == expected


def test_safety_valve_refuses_then_raised_cap_allows(sandbox):
    members = [f"m{i}@x.com" for i in range(10)]
    list_id = seed_vip(sandbox, members)
    messages = [*sync("m0@x.com", "m1@x.com"), stream_state("vip", 1, state_id=1), stream_status("vip")]
    refused = run_cli("write", make_config(sandbox), mirror_catalog(), messages)
    assert refused.returncode == 1
    error = refused.errors[0]
    assert error["failure_type"] == "config_error"
    assert "8 of the 10 members" in error["message"] and "mirror_max_removal_percent" in error["message"]
    assert sandbox.client.member_emails(list_id) == set(members)
    assert refused.list_summary("vip")["removals_refused"] == 8
    assert [s["state"]["id"] for s in refused.states] == [1], "records were added, so their state still counts"
    allowed = run_cli("write", make_config(sandbox, mirror_max_removal_percent=80), mirror_catalog(), messages)
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert sandbox.client.member_emails(list_id) == {"m0@x.com", "m1@x.com"}


def test_cdc_deletes_keep_input_order(sandbox):
    list_id = seed_vip(sandbox, ["gone@x.com", "back@x.com"])
    messages = [
        record("vip", {"email": "gone@x.com", "_ab_cdc_deleted_at": DELETED}),
        record("vip", {"email": "back@x.com", "_ab_cdc_deleted_at": DELETED}),
        record("vip", {"email": "back@x.com", "_ab_cdc_deleted_at": None}),
        record("vip", {"email": "brief@x.com"}),
        record("vip", {"email": "brief@x.com", "_ab_cdc_deleted_at": DELETED}),
        record("vip", {"email": "never@x.com", "_ab_cdc_deleted_at": DELETED}),
        stream_state("vip", 1, state_id=1),
    ]
    result = run_cli("write", make_config(sandbox, batch_max_age_seconds=60), make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sandbox.client.member_emails(list_id) == {"back@x.com"}
    summary = result.list_summary("vip")
    # within one batch the last change of a member wins: brief@ is never added, so both it and never@ are no-ops
    assert summary["removed_by_delete"] == 1 and summary["remove_not_member"] == 2
    assert summary["remove_rejected"] == {}
    assert sandbox.client.stats()["channel_unsubscribes"] == 0


def test_delete_then_readd_across_batches(sandbox):
    list_id = seed_vip(sandbox, ["m@x.com"])
    filler = [record("vip", {"email": f"f{i}@x.com"}) for i in range(999)]
    messages = [record("vip", {"email": "m@x.com", "_ab_cdc_deleted_at": DELETED}), *filler,
                record("vip", {"email": "m@x.com"})]
    result = run_cli("write", make_config(sandbox), make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "m@x.com" in sandbox.client.member_emails(list_id)


def test_soft_delete_stream_removes_every_record(sandbox):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com", "c@x.com"])
    result = run_cli("write", make_config(sandbox), make_catalog(stream_entry("vip", mode="soft_delete")),
                     sync("a@x.com", "b@x.com"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert sandbox.client.member_emails(list_id) == {"c@x.com"}


def writes(stats) -> int:
    return sum(sum(codes.values()) for endpoint, codes in stats["requests"].items()
               if endpoint.split(" ")[0] in ("POST", "DELETE", "PUT", "PATCH"))


def test_dry_run_sends_no_writes_and_its_plan_matches_the_real_run(sandbox):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
    messages = [*sync("b@x.com", "c@x.com", "e@x.com", "bad-email", "f@x.com"),
                record("vip", {"email": "d@x.com", "_ab_cdc_deleted_at": DELETED}),
                stream_state("vip", 1, state_id=1), stream_status("vip")]
    catalog = make_catalog(stream_entry("vip", mode="overwrite", generation_id=2, minimum_generation_id=2),
                           stream_entry("fresh"))
    before = writes(sandbox.client.stats())
    dry = run_cli("write", make_config(sandbox, dry_run=True), catalog, [*messages, *sync()])
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert writes(sandbox.client.stats()) == before, "a dry run must send no POST or DELETE"
    assert dry.states == [], "a dry run echoes no state"
    assert sandbox.client.member_emails(list_id) == {"a@x.com", "b@x.com", "c@x.com", "d@x.com"}
    assert sandbox.client.list_by_name("fresh") == []
    assert any("Dry-run plan" in line and "would be CREATED" in line for line in dry.logs)
    real = run_cli("write", make_config(sandbox), catalog, messages)
    assert real.returncode == 0, real.stdout[-3000:]
    planned, done = dry.list_summary("vip"), real.list_summary("vip")
    for key in ("records_read", "add_rows_sent", "skipped", "removed_by_mirror", "removed_by_delete"):
        assert planned[key] == done[key], key
    assert planned["list_action"] == "reused" and planned["list_id"] == list_id
    assert dry.list_summary("fresh")["list_action"] == "created" and dry.list_summary("fresh")["list_id"] is None
    assert sandbox.client.member_emails(list_id) == {"b@x.com", "c@x.com", "e@x.com", "f@x.com"}


@pytest.mark.slow
def test_mirror_of_a_million_member_list_completes_with_bounded_memory(sandbox):
    list_id = sandbox.client.seed([{"name": "vip", "listType": "Standard",
                                    "generate": {"count": 1_000_000, "email_pattern": "member{i}@example.com"}}])[0]
    keep = [f"member{i}@example.com" for i in range(0, 1_000_000, 1000)]
    config = make_config(sandbox, mirror_max_removal_percent=100, retry_max_seconds=120)
    result = run_cli("write", config, mirror_catalog(), [*sync(*keep), stream_status("vip")], timeout=600,
                     measure_rss=True)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = result.list_summary("vip")
    assert summary["removed_by_mirror"] == 1_000_000 - len(keep)
    assert sandbox.client.member_emails(list_id) == set(keep)
    print(f"mirror of 1,000,000 members: peak RSS {result.peak_rss_mb:.0f} MB")
    assert result.peak_rss_mb is not None and result.peak_rss_mb < 400


def test_get_users_503_is_retried_and_the_mirror_completes(sandbox):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com"])
    sandbox.client.set_config(get_users_503_next=2)
    config = make_config(sandbox, slow_endpoint_wait_seconds=0.2)
    result = run_cli("write", config, mirror_catalog(), [*sync("b@x.com"), stream_status("vip")])
    assert result.returncode == 0, result.stdout[-3000:]
    assert sandbox.client.member_emails(list_id) == {"b@x.com"}
    assert sandbox.client.stats()["faults"]["get_users_503"] == 2


def test_get_users_failing_beyond_the_budget_removes_nobody(sandbox):
    list_id = seed_vip(sandbox, ["a@x.com", "b@x.com"])
    sandbox.client.set_config(get_users_503_next=100)
    config = make_config(sandbox, slow_endpoint_wait_seconds=0.2, retry_max_seconds=1)
    result = run_cli("write", config, mirror_catalog(), [*sync("b@x.com"), stream_status("vip")])
    assert result.returncode == 1
    assert result.errors[0]["failure_type"] == "transient_error"
    assert sandbox.client.member_emails(list_id) == {"a@x.com", "b@x.com"}


def test_two_streams_sharing_a_list_name_use_one_list(sandbox):
    config = make_config(sandbox, list_name_template="All segments")
    result = run_cli("write", config, make_catalog("a", "b"), [record("a", {"email": "a@x.com"}),
                                                               record("b", {"email": "b@x.com"})])
    assert result.returncode == 0, result.stdout[-3000:]
    lists = sandbox.client.list_by_name("All segments")
    assert len(lists) == 1 and sandbox.client.member_emails(lists[0]["id"]) == {"a@x.com", "b@x.com"}


def test_a_mirror_sharing_its_list_with_another_stream_is_refused(sandbox):
    config = make_config(sandbox, list_name_template="All segments")
    catalog = make_catalog(stream_entry("a", mode="overwrite", generation_id=1, minimum_generation_id=1), "b")
    result = run_cli("write", config, catalog, [record("a", {"email": "a@x.com"})])
    assert result.returncode == 1 and result.errors[0]["failure_type"] == "config_error"
    assert "both map to the list" in result.errors[0]["message"]


def test_repeated_changes_of_members_across_batches_in_flight_end_in_input_order(sandbox):
    """With latency, later batches are cut while earlier ones touching the same members are still in flight: each
    member's last change wins, whether its row was held back for a later batch or its batch waited whole."""
    sandbox.client.set_config(latency_ms=150, latency_jitter_ms=100)
    members = 1500
    messages = []
    for change in range(6):  # member j is added in even passes and deleted in odd ones, shifted by j
        for j in range(members):
            deleted = (change + j) % 2 == 1
            messages.append(record("vip", {"email": f"m{j}@x.com", "_ab_cdc_deleted_at": DELETED if deleted else None}))
        messages.append(stream_state("vip", change + 1, state_id=change + 1))
    result = run_cli("write", make_config(sandbox), make_catalog("vip"), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    [vip] = sandbox.client.list_by_name("vip")
    # the last pass (change 5) adds member j when (5 + j) is even: the odd members
    assert sandbox.client.member_emails(vip["id"]) == {f"m{j}@x.com" for j in range(1, members, 2)}
    assert [s["state"]["id"] for s in result.states] == [1, 2, 3, 4, 5, 6]
