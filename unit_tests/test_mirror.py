"""Mirror diff: removes exactly the members not written in this sync, comparing as Iterable does."""

from destination_iterable.sync.mirror import SeenSet, plan_mirror, removal_row


def seen_of(*ids: str) -> SeenSet:
    seen = SeenSet()
    for identity in ids:
        seen.add(identity)
    return seen


def test_members_not_seen_are_removed_in_list_order():
    plan = plan_mirror(iter(["a@x.com", "b@x.com", "c@x.com", "d@x.com"]), seen_of("b@x.com", "d@x.com"))
    try:
        assert plan.current_members == 4 and plan.to_remove == 2
        assert list(plan.iter_removals()) == ["a@x.com", "c@x.com"]
        assert plan.removal_percent() == 50.0
    finally:
        plan.close()


def test_emails_compare_lowercased_user_ids_exactly():
    plan = plan_mirror(iter(["Mixed@X.com", "User-1", "user-1"]), seen_of("mixed@x.com", "User-1"))
    try:
        # emails fold case (Mixed@X.com is kept); userIds do not ("user-1" differs from "User-1")
        assert list(plan.iter_removals()) == ["user-1"]
    finally:
        plan.close()


def test_empty_list_and_empty_sync():
    empty = plan_mirror(iter([]), seen_of("a@x.com"))
    assert empty.to_remove == 0 and list(empty.iter_removals()) == []
    everyone = plan_mirror(iter(["a@x.com", "b@x.com"]), SeenSet())
    assert everyone.to_remove == 2 and everyone.removal_percent() == 100.0
    empty.close()
    everyone.close()


def test_large_list_is_diffed_exactly():
    members = (f"m{i}@example.com" for i in range(200_000))
    seen = seen_of(*(f"m{i}@example.com" for i in range(0, 200_000, 2)))
    plan = plan_mirror(members, seen)
    removals = list(plan.iter_removals())
    plan.close()
    assert len(removals) == 100_000
    assert removals[:2] == ["m1@example.com", "m3@example.com"]


def test_removal_rows():
    assert removal_row("a@x.com") == {"email": "a@x.com"}
    assert removal_row("user-7") == {"userId": "user-7"}
