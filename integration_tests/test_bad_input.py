"""Bad input through the real CLI: each case has its expected outcome (the table is in docs/reliability.md).

Per-record problems are skipped, counted (SYNC_SUMMARY: lists[i].skipped / .rejected, input_problems) and the
sync goes on; configuration problems are a config_error with a sentence that says what to fix. Nothing valid
is lost and no case ends in a Python traceback.

The per-record cases share one connector run (one stream per case, see reliability_helpers.bad_input_run);
every case is still its own test with its own assertions.
"""

from __future__ import annotations

import pytest

from destination_iterable.config import parse_config
from destination_iterable.errors import ConfigError
from destination_iterable.iterable.lists import render_list_name
from integration_tests.harness import (
    make_catalog,
    make_config,
    record,
    stream_entry,
    stream_state,
)
from integration_tests.reliability_helpers import (
    FORGOTTEN_EMAIL,
    LONG_EMAIL,
    assert_no_traceback,
    bad_input_run,
    email,
    error_of,
    run_cli,
    state_ids,
)


@pytest.fixture(scope="module")
def shared():
    return bad_input_run()


def _skipped(shared, stream):
    return shared.result.list_summary(stream)["skipped"]


# ------------------------------------------------------------------------------------------ the run as a whole
def test_shared_run_succeeds_without_traceback(shared):
    result = shared.result
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.errors == []
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ per-line problems
def test_malformed_json_lines_are_skipped_and_counted(shared):
    """A truncated JSON line and a line of invalid UTF-8: counted as malformed_json; the valid records
    around them are written."""
    assert shared.result.summary["input_problems"]["malformed_json"] == 2
    assert shared.emails("b_lines") == {email("b_lines", 0), email("b_lines", 1)}


def test_json_that_is_not_a_message_is_skipped_and_counted(shared):
    """`[1, 2, 3]` and `"just a string"` are JSON but not Airbyte messages."""
    assert shared.result.summary["input_problems"]["not_a_message"] == 2


def test_record_message_without_record_object_is_skipped_and_counted(shared):
    assert shared.result.summary["input_problems"]["malformed_record"] == 2


def test_state_message_without_state_object_is_skipped_and_counted(shared):
    assert shared.result.summary["input_problems"]["malformed_state"] == 1


def test_other_message_types_and_blank_lines_are_ignored(shared):
    """LOG and CONTROL messages and blank lines are neither errors nor problems."""
    assert set(shared.result.summary["input_problems"]) == {"malformed_json", "not_a_message", "malformed_record",
                                                            "malformed_state", "record_for_unknown_stream"}


def test_record_for_stream_missing_from_catalog_is_skipped_and_counted(shared):
    assert shared.result.summary["input_problems"]["record_for_unknown_stream"] == 2
    assert "b_not_in_catalog" not in shared.members
    assert all(entry["stream"] != "b_not_in_catalog" for entry in shared.result.summary["lists"])


def test_state_for_unknown_stream_is_echoed_in_order(shared):
    """A STATE for a stream outside the catalog is passed through (with a record count of 0), in order."""
    assert state_ids(shared.result) == [901, 902]
    first = shared.result.states[0]["state"]
    assert first["stream"]["stream_descriptor"] == {"name": "b_nowhere"}
    assert first["destinationStats"]["recordCount"] == 0


# ------------------------------------------------------------------------------------------ per-record problems
def test_data_that_is_not_an_object_is_skipped_and_counted(shared):
    assert _skipped(shared, "b_notobj") == {"record_not_an_object": 4}
    assert shared.emails("b_notobj") == {email("b_notobj", 0), email("b_notobj", 1)}


def test_five_megabyte_record_is_skipped_and_counted(shared):
    """A 5 MB record cannot fit a 4 MB request: it is skipped as record_too_large; its neighbours are written."""
    assert _skipped(shared, "b_big") == {"record_too_large": 1}
    assert shared.emails("b_big") == {email("b_big", 0), email("b_big", 1)}


def test_email_of_300_characters_is_skipped_as_invalid(shared):
    assert _skipped(shared, "b_longmail") == {"invalid_email": 1}
    assert shared.emails("b_longmail") == {email("b_longmail", 0), email("b_longmail", 1)}
    assert LONG_EMAIL not in shared.result.stdout + shared.result.stderr


def test_null_numeric_and_boolean_emails_are_skipped(shared):
    """null is a missing identifier; 12345 and true are invalid emails."""
    assert _skipped(shared, "b_oddmail") == {"missing_identifier": 1, "invalid_email": 2}
    assert shared.emails("b_oddmail") == {email("b_oddmail", 0), email("b_oddmail", 1)}


def test_user_ids_too_long_or_padded_are_skipped_inner_spaces_and_numbers_are_kept(shared):
    """60 characters (limit 52) and leading/trailing spaces are invalid; 'john smith' and 4242 are valid."""
    assert _skipped(shared, "b_uid") == {"invalid_user_id": 2}
    user_ids = {m["userId"] for m in shared.members["b_uid"] if m["userId"]}
    assert user_ids == {"john smith", "4242"}
    assert shared.emails("b_uid") == {email("b_uid", 0), email("b_uid", 1)}


def test_unicode_and_idn_emails_are_written_lowercased(shared):
    assert _skipped(shared, "b_unicode") == {}
    assert shared.emails("b_unicode") == {"j\u00fcrgen@example.com", "user@b\u00fccher.de",
                                          "\u7528\u6237@\u4f8b\u5b50.\u4e2d\u56fd"}


def test_duplicate_records_of_one_member_give_one_member(shared):
    summary = shared.result.list_summary("b_dupes")
    assert summary["records_read"] == 3 and summary["skipped"] == {}
    assert shared.emails("b_dupes") == {"same.person@example.com"}


def test_data_field_type_conflicting_with_locked_type_is_rejected_and_counted(shared):
    """'score' is locked to a number in the project: Iterable rejects the row with "high" (invalid_data);
    the row with 7 is written."""
    summary = shared.result.list_summary("b_types")
    assert summary["rejected"] == {"invalid_data": 1}, summary
    assert summary["added"] == 1
    assert shared.emails("b_types") == {"typed.right@example.com"}


def test_gdpr_forgotten_user_is_rejected_and_counted(shared):
    assert shared.result.list_summary("b_gdpr")["rejected"] == {"gdpr_forgotten": 1}
    assert shared.emails("b_gdpr") == {email("b_gdpr", 0), email("b_gdpr", 1)}
    assert FORGOTTEN_EMAIL not in shared.result.stdout + shared.result.stderr


# ------------------------------------------------------------------------------------------ nested paths
def test_nested_email_field_paths(sandbox):
    """email_field 'contact.email': found when present; a missing parent, a parent that is not an object,
    a null value and a top-level key literally named 'contact.email' are missing identifiers."""
    stream = "b_nested"
    messages = [record(stream, {"contact": {"email": "Deep.One@example.com"}}),
                record(stream, {"contact": {"email": "deep.two@example.com", "phone": "1"}}),
                record(stream, {"other": 1}),
                record(stream, {"contact": "not-an-object"}),
                record(stream, {"contact": {"email": None}}),
                record(stream, {"contact.email": "dotted.key@example.com"}),
                stream_state(stream, 1, state_id=1)]
    result = run_cli("write", make_config(sandbox, email_field="contact.email"), make_catalog(stream), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.list_summary(stream)["skipped"] == {"missing_identifier": 4}
    list_id = sandbox.client.list_by_name(stream)[0]["id"]
    assert sandbox.client.member_emails(list_id) == {"deep.one@example.com", "deep.two@example.com"}
    assert state_ids(result) == [1]
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ empty inputs
def test_empty_input_succeeds_and_writes_nothing(sandbox):
    result = run_cli("write", make_config(sandbox), make_catalog("b_empty"), b"")
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.errors == [] and result.states == []
    assert result.list_summary("b_empty")["records_read"] == 0
    assert all(item["size"] == 0 for item in sandbox.client.lists())
    assert_no_traceback(result)


def test_input_with_only_state_messages_echoes_every_state_in_order(sandbox):
    messages = [stream_state("b_states", n, state_id=n) for n in range(1, 6)]
    result = run_cli("write", make_config(sandbox), make_catalog("b_states"), messages)
    assert result.returncode == 0, result.stdout[-3000:]
    assert state_ids(result) == [1, 2, 3, 4, 5]
    assert [s["state"]["destinationStats"]["recordCount"] for s in result.states] == [0] * 5
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ configuration
def _config_error(result, *phrases):
    error = error_of(result)
    assert result.returncode != 0 and error["failure_type"] == "config_error", error
    for phrase in phrases:
        assert phrase in error["message"], error["message"]
    assert_no_traceback(result)
    return error


def test_duplicate_streams_in_catalog_are_a_config_error(sandbox):
    result = run_cli("write", make_config(sandbox), make_catalog("b_twice", "b_twice"),
                     [record("b_twice", {"email": "a@example.com"})])
    _config_error(result, "b_twice", "twice")
    assert sandbox.client.lists() == [], "nothing is written"


def test_template_rendering_an_empty_list_name_is_a_config_error(sandbox):
    result = run_cli("write", make_config(sandbox, list_name_template="{namespace}"), make_catalog("b_tmpl"),
                     [record("b_tmpl", {"email": "a@example.com"})])
    _config_error(result, "list_name_template", "{stream}")
    assert sandbox.client.lists() == []


@pytest.mark.parametrize("template", ["{stream:d}", "{stream!x}", "{stream:%Y}"])
def test_template_with_format_spec_or_conversion_is_a_config_error(template):
    """A template that passes the placeholder check but cannot render must be refused as a configuration
    problem (the CLI otherwise ends in a system_error with a traceback when it names the first list)."""
    with pytest.raises(ConfigError, match="list_name_template"):
        config = parse_config({"api_key": "k", "privacy_consent": True, "list_name_template": template})
        render_list_name(config.list_name_template, "segment", None)


def test_unsupported_sync_mode_is_a_config_error(sandbox):
    catalog = make_catalog(stream_entry("b_mode", mode="overwrite_dedup"))
    result = run_cli("write", make_config(sandbox), catalog, [record("b_mode", {"email": "a@example.com"})])
    _config_error(result, "b_mode", "overwrite_dedup", "supported")


WRONG_TYPES = {
    "retry_max_seconds": "ten",          # checked against spec.json
    "request_timeout_seconds": 0,        # not in spec.json: checked by config.py
}


@pytest.mark.parametrize("setting", list(WRONG_TYPES))
def test_config_with_wrong_types_is_a_config_error_naming_the_setting(sandbox, setting):
    config = make_config(sandbox, **{setting: WRONG_TYPES[setting]})
    result = run_cli("write", config, make_catalog("b_cfg"), [record("b_cfg", {"email": "a@example.com"})])
    _config_error(result, setting)
