"""Per-row outcomes of subscribe/unsubscribe: each failedUpdates bucket, identity rules and dataFields."""

from __future__ import annotations

import pytest

from integration_tests.sandbox.testing import create_list, subscribe, unsubscribe
from integration_tests.sandbox.validation import EmailValidator, load_tlds, valid_user_id


def failed(body, bucket):
    return body["failedUpdates"][bucket]


def only_bucket(body):
    """The single non-empty failedUpdates bucket and its content."""
    used = {name: values for name, values in body["failedUpdates"].items() if values}
    assert len(used) == 1, used
    return next(iter(used.items()))


# ----------------------------------------------------------------------------- identifiers
def test_emails_are_lowercased_and_re_adding_counts_as_success(sandbox):
    list_id = create_list(sandbox)
    first = subscribe(sandbox, list_id, [{"email": "Mixed.Case@Example.COM"}])
    again = subscribe(sandbox, list_id, [{"email": "mixed.case@example.com"}])
    assert first["successCount"] == again["successCount"] == 1
    assert sandbox.client.members(list_id) == [{"email": "mixed.case@example.com", "userId": None}]
    assert sandbox.client.user(email="MIXED.CASE@example.com")["email"] == "mixed.case@example.com"


BAD_EMAILS = ["User @Example.com", "no-at-sign", "two@@example.com", "a@b", "a@-bad.com", "a@bad-.com",
              "a@example.c0m", "a@example.c", "a.@example.com", ".a@example.com", "a..b@example.com",
              "a@example.com.", "a(b)@example.com", "a@exa_mple.com", "", "x" * 65 + "@example.com",
              "tab\t@example.com", "a@" + "x" * 64 + ".com"]
GOOD_EMAILS = ["a+tag@sub.example.co.uk", "o'brien@example.ie", '"john doe"@example.com', "user@b\u00fccher.de",
               "first.last@example.org", "a@[192.168.0.1]", "x_y-z@ex-ample.com", "\u00fcser@example.com"]


def test_invalid_emails_bucket_reports_the_lowercased_value(sandbox):
    list_id = create_list(sandbox)
    body = subscribe(sandbox, list_id, [{"email": email} for email in BAD_EMAILS])
    assert body["successCount"] == 0 and body["failCount"] == len(BAD_EMAILS)
    assert failed(body, "invalidEmails") == [email.lower() for email in BAD_EMAILS]
    assert body["invalidEmails"] == failed(body, "invalidEmails")  # deprecated top-level copy
    assert sandbox.client.members(list_id) == []


def test_valid_email_forms_are_accepted(sandbox):
    list_id = create_list(sandbox)
    body = subscribe(sandbox, list_id, [{"email": email} for email in GOOD_EMAILS])
    assert body["failCount"] == 0 and body["successCount"] == len(GOOD_EMAILS)
    assert sandbox.client.member_emails(list_id) == {email.lower() for email in GOOD_EMAILS}


def test_tld_list_is_used_when_given():
    assert EmailValidator(frozenset({"com"}))("a@example.com")
    assert not EmailValidator(frozenset({"com"}))("a@example.org")
    assert EmailValidator(None)("a@example.anything") and not EmailValidator(None)("a@example.x")
    assert EmailValidator(None)("a@example.xn--p1ai")
    tlds = load_tlds()
    if tlds is not None:  # destination_iterable/members/data/tlds.txt exists: only IANA TLDs pass
        assert "com" in tlds and not EmailValidator(tlds)("a@example.notarealtldzz")


BAD_USER_IDS = ["", "x" * 53, "\u00fcser", "tab\tid", " lead", "trail ", "new\nline"]


def test_invalid_user_ids_bucket(sandbox):
    list_id = create_list(sandbox)
    body = subscribe(sandbox, list_id, [{"userId": uid} for uid in BAD_USER_IDS] + [{"userId": "x" * 52}])
    assert failed(body, "invalidUserIds") == BAD_USER_IDS and body["invalidUserIds"] == BAD_USER_IDS
    assert body["successCount"] == 1 and body["failCount"] == len(BAD_USER_IDS)
    assert not valid_user_id(" ") and valid_user_id("a b") and valid_user_id("Case-Sensitive_1")


def test_valid_email_with_invalid_user_id_fails_as_invalid_user_id(sandbox):
    list_id = create_list(sandbox)
    body = subscribe(sandbox, list_id, [{"email": "ok@example.com", "userId": "bad "}])
    assert only_bucket(body) == ("invalidUserIds", ["bad "])


def test_subscriber_without_identifier_is_invalid_email_empty(sandbox):
    list_id = create_list(sandbox)
    body = subscribe(sandbox, list_id, [{}, {"dataFields": {"a": 1}}, {"email": "ok@example.com"}])
    assert body["successCount"] == 1 and body["failCount"] == 2
    assert failed(body, "invalidEmails") == ["", ""]


# ----------------------------------------------------------------------------- notFound / forgotten / conflict
def test_unsubscribe_of_non_members_is_not_found(sandbox):
    list_id = create_list(sandbox)
    other = create_list(sandbox, "other")
    subscribe(sandbox, list_id, [{"email": "member@example.com"}, {"userId": "member-id"}])
    subscribe(sandbox, other, [{"email": "elsewhere@example.com"}])
    body = unsubscribe(sandbox, list_id, [{"email": "Member@example.com"}, {"userId": "member-id"},
                                          {"email": "ghost@example.com"}, {"userId": "ghost-id"},
                                          {"email": "elsewhere@example.com"}], channelUnsubscribe=False)
    assert body["successCount"] == 2 and body["failCount"] == 3
    assert failed(body, "notFoundEmails") == ["ghost@example.com", "elsewhere@example.com"]
    assert failed(body, "notFoundUserIds") == ["ghost-id"]
    assert sandbox.client.members(list_id) == []
    assert sandbox.client.member_emails(other) == {"elsewhere@example.com"}


def test_forgotten_users_are_reported_and_not_added(sandbox_factory):
    server = sandbox_factory(forgotten_emails=["Gone@Example.com"], forgotten_user_ids=["gone-id"])
    list_id = create_list(server)
    body = subscribe(server, list_id, [{"email": "gone@example.com"}, {"userId": "gone-id"},
                                       {"email": "ok@example.com", "userId": "gone-id"}, {"email": "ok@example.com"}])
    assert failed(body, "forgottenEmails") == ["gone@example.com"]
    assert failed(body, "forgottenUserIds") == ["gone-id", "gone-id"]
    assert body["successCount"] == 1 and body["failCount"] == 3
    assert server.client.member_emails(list_id) == {"ok@example.com"}
    assert server.client.user(email="gone@example.com") is None


def test_hybrid_conflict_when_email_and_user_id_belong_to_different_users(sandbox):
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": "a@example.com", "userId": "user-a"}, {"email": "b@example.com"},
                                 {"userId": "user-b"}])
    body = subscribe(sandbox, list_id, [{"email": "a@example.com", "userId": "user-b"},
                                        {"email": "A@example.com", "userId": "user-x"},
                                        {"email": "b@example.com", "userId": "user-b"}])
    assert only_bucket(body) == ("conflictEmails", ["a@example.com", "a@example.com", "b@example.com"])
    assert body["successCount"] == 0 and body["failCount"] == 3
    assert sandbox.client.user(email="b@example.com")["userId"] is None


def test_hybrid_fills_in_a_missing_identifier(sandbox):
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": "a@example.com"}])
    body = subscribe(sandbox, list_id, [{"email": "a@example.com", "userId": "user-a"}])
    assert body["successCount"] == 1
    assert sandbox.client.user(user_id="user-a")["email"] == "a@example.com"
    assert len(sandbox.client.members(list_id)) == 1


def test_update_existing_users_only_skips_unknown_users(sandbox):
    list_id = create_list(sandbox)
    other = create_list(sandbox, "other")
    subscribe(sandbox, other, [{"email": "known@example.com"}, {"userId": "known-id"}])
    body = subscribe(sandbox, list_id, [{"email": "known@example.com"}, {"userId": "known-id"},
                                        {"email": "new@example.com"}, {"userId": "new-id"}],
                     updateExistingUsersOnly=True)
    assert body["successCount"] == 2 and body["failCount"] == 2
    assert failed(body, "notFoundEmails") == ["new@example.com"]
    assert failed(body, "notFoundUserIds") == ["new-id"]
    assert sandbox.client.user(email="new@example.com") is None
    assert len(sandbox.client.members(list_id)) == 2


# ----------------------------------------------------------------------------- project types
def test_userid_project_requires_a_user_id(sandbox_factory):
    server = sandbox_factory(project_type="userid")
    list_id = create_list(server)
    body = subscribe(server, list_id, [{"email": "only@example.com"}, {"userId": "u1", "email": "shared@example.com"},
                                       {"userId": "u2", "email": "shared@example.com"}])
    assert body["successCount"] == 2 and failed(body, "invalidUserIds") == [""]
    assert {m["userId"] for m in server.client.members(list_id)} == {"u1", "u2"}
    text = server.client.session.get(f"{server.url}/api/lists/getUsers", params={"listId": list_id},
                                     headers={"Api-Key": server.api_key}).text
    assert set(text.split()) == {"u1", "u2"}


def test_email_project_rules(sandbox_factory):
    server = sandbox_factory(project_type="email")
    list_id = create_list(server)
    body = subscribe(server, list_id, [{"userId": "unknown-id"}, {"userId": "placeholder-id", "preferUserId": True},
                                       {"email": "a@example.com", "userId": "first"}])
    assert failed(body, "notFoundUserIds") == ["unknown-id"] and body["successCount"] == 2
    assert server.client.user(user_id="placeholder-id")["email"] == "placeholder-id@placeholder.email"
    subscribe(server, list_id, [{"email": "a@example.com", "userId": "second"}])  # email wins, userId overwritten
    assert server.client.user(email="a@example.com")["userId"] == "second"
    assert subscribe(server, list_id, [{"userId": "second"}])["successCount"] == 1  # a known userId is fine


def test_project_type_can_change_at_run_time(sandbox):
    sandbox.client.set_config(project_type="userid")
    list_id = create_list(sandbox)
    assert failed(subscribe(sandbox, list_id, [{"email": "a@example.com"}]), "invalidUserIds") == [""]


# ----------------------------------------------------------------------------- dataFields
def test_field_types_lock_on_first_value_and_mismatched_rows_are_not_applied(sandbox):
    list_id = create_list(sandbox)
    first = subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {
        "age": 30, "score": 1.5, "name": "Ann", "signup": "2024-05-01", "vip": True, "tags": ["x"],
        "address": {"city": "Oslo"}, "later": None}}])
    assert first["createdFields"] == ["address", "address.city", "age", "name", "score", "signup", "tags", "vip"]
    rows = [
        {"email": "ok1@example.com", "dataFields": {"age": 31, "score": 2, "name": "2024-01-01", "later": "x"}},
        {"email": "bad1@example.com", "dataFields": {"age": "thirty"}},
        {"email": "bad2@example.com", "dataFields": {"age": 30.5}},
        {"email": "bad3@example.com", "dataFields": {"signup": "not a date"}},
        {"userId": "bad4", "dataFields": {"vip": "yes"}},
        {"email": "bad5@example.com", "dataFields": {"address": {"city": 5}}},
        {"email": "bad6@example.com", "dataFields": {"tags": "x"}},
        {"email": "ok2@example.com", "dataFields": {"age": None, "signup": "2024-05-01T10:00:00Z", "later": "y"}},
    ]
    body = subscribe(sandbox, list_id, rows)
    assert body["successCount"] == 2 and body["failCount"] == 6
    assert failed(body, "invalidDataEmails") == [f"bad{n}@example.com" for n in (1, 2, 3, 5, 6)]
    assert failed(body, "invalidDataUserIds") == ["bad4"]
    assert sandbox.client.member_emails(list_id) == {"a@example.com", "ok1@example.com", "ok2@example.com"}
    assert sandbox.client.user(email="bad1@example.com") is None


def test_data_fields_merge_and_nested_objects(sandbox):
    list_id = create_list(sandbox)
    subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {"keep": 1, "prefs": {"email": True}}}])
    subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {"prefs": {"sms": False}},
                                  "mergeNestedObjects": True}])
    assert sandbox.client.user(email="a@example.com")["dataFields"] == {"keep": 1,
                                                                        "prefs": {"email": True, "sms": False}}
    subscribe(sandbox, list_id, [{"email": "a@example.com", "dataFields": {"prefs": {"push": True}}}])
    user = sandbox.client.user(email="a@example.com")
    assert user["dataFields"] == {"keep": 1, "prefs": {"push": True}} and user["listIds"] == [list_id]


@pytest.mark.parametrize("unsubscribe_first", [False, True])
def test_fail_count_equals_bucket_entries(sandbox, unsubscribe_first):
    list_id = create_list(sandbox)
    rows = [{"email": "bad"}, {"userId": ""}, {}, {"email": "fine@example.com"}]
    body = (unsubscribe if unsubscribe_first else subscribe)(sandbox, list_id, rows)
    assert body["failCount"] == sum(len(v) for v in body["failedUpdates"].values())
    assert body["successCount"] + body["failCount"] == len(rows)
