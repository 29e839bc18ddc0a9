"""`make demo`: sync three sample segments into the local Iterable sandbox, first as a dry run, then for real.

Run from the project root: `python -m integration_tests.demo`.
"""

from __future__ import annotations

import random
import sys

from integration_tests.harness import (
    RunResult,
    make_catalog,
    record,
    run_cli,
    stream_entry,
    stream_state,
    stream_status,
)
from integration_tests.sandbox import SandboxServer

API_KEY = "demo-key-0123456789abcdef0123456"
PLANS = ["gold", "silver", "bronze"]


def segments(rng: random.Random) -> list[dict]:
    """Input as a source would send it: three streams, states, and completion statuses."""
    messages: list[dict] = []
    for i in range(2500):
        value = round(rng.uniform(100, 9000), 2)
        messages.append(record("vip_customers", {"email": f"Customer{i}@Example.com", "first_name": f"Name{i}",
                                                 "plan": PLANS[i % 3], "lifetime_value": value}))
        if i % 1000 == 999:
            messages.append(stream_state("vip_customers", i, state_id=i))
    messages += [record("vip_customers", {"email": bad}) for bad in ("not-an-email", "x@y.notatld", None)]
    messages.append(record("vip_customers", {"email": "forgotten@example.com"}))
    for i in range(0, 600, 2):  # churn risk keeps the even half of last week's members, plus newcomers
        messages.append(record("churn_risk", {"email": f"user{i}@example.com"}))
    messages += [record("churn_risk", {"email": f"new{i}@example.com"}) for i in range(50)]
    messages.append(stream_state("churn_risk", "2024-06-01", state_id=9001))
    messages += [record("newsletter_optins", {"email": f"reader{i}@example.org"}) for i in range(400)]
    messages += [record("newsletter_optins", {"email": f"reader{i}@example.org", "_ab_cdc_deleted_at": "2024-06-01"})
                 for i in range(400, 440)]  # unsubscribed upstream (CDC deletes)
    messages.append(stream_state("newsletter_optins", "lsn-77", state_id=9002))
    messages += [stream_status(name) for name in ("vip_customers", "churn_risk", "newsletter_optins")]
    return messages


def catalog() -> dict:
    return make_catalog(
        stream_entry("vip_customers", mode="append_dedup"),
        stream_entry("churn_risk", mode="overwrite", generation_id=7, minimum_generation_id=7),
        stream_entry("newsletter_optins", mode="append"),
    )


def config(url: str, **extra) -> dict:
    return {"api_key": API_KEY, "api_base_url": url, "privacy_consent": True, "email_field": "email",
            "data_fields": ["first_name", "plan", "lifetime_value"], "list_name_template": "Airbyte - {stream}",
            "mirror_max_removal_percent": 60, "progress_interval_seconds": 5, **extra}


def print_table(title: str, result: RunResult) -> None:
    """The end-of-sync summary as a table."""
    summary = result.summary or {"lists": []}
    print(f"\n{title}")
    head = (f"{'list':<30} {'id':>7} {'list':>8} {'mode':>6} {'read':>6} {'added':>6} {'removed':>8} "
            "skipped / rejected (by reason)")
    print(head)
    print("-" * len(head))
    for row in summary["lists"]:
        added = row["added"] if not summary.get("dry_run") else f"~{row['add_rows_sent']}"
        removed = row["removed_by_delete"] + row["removed_by_mirror"]
        reasons = {**{f"skip:{k}": v for k, v in row["skipped"].items()},
                   **{f"iterable:{k}": v for k, v in row["rejected"].items()}}
        reason_text = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) or "-"
        print(f"{row['list']:<30} {str(row['list_id'] or 'new'):>7} {row['list_action']:>8} {row['mode']:>6} "
              f"{row['records_read']:>6} {added!s:>6} {removed:>8} {reason_text}")
    print(f"states echoed: {len(result.states)} (ids {[s['state'].get('id') for s in result.states]})")


def print_discover(result: RunResult) -> None:
    """The DESTINATION_CATALOG of `discover` as a short table: one row per object."""
    catalogs = [m["destination_catalog"] for m in result.messages if m.get("type") == "DESTINATION_CATALOG"]
    if not catalogs:
        print("discover failed:", result.errors)
        return
    objects: dict[str, dict] = {}
    for op in catalogs[0]["operations"]:
        row = objects.setdefault(op["object_name"], {"modes": [], "keys": op.get("matching_keys") or [],
                                                     "fields": []})
        row["modes"].append(op["sync_mode"])
        if op["sync_mode"] == "append":
            row["fields"] = sorted(op["json_schema"]["properties"])
    head = f"{'object (list)':<36} {'sync modes':<37} {'matching keys':<14} fields"
    print(head)
    print("-" * len(head))
    for name, row in objects.items():
        keys = ", ".join(".".join(key) for key in row["keys"])
        fields = ", ".join(row["fields"][:6]) + (", ..." if len(row["fields"]) > 6 else "")
        print(f"{name:<36} {', '.join(row['modes']):<37} {keys:<14} {fields}")


def main() -> int:
    rng = random.Random(7)
    server = SandboxServer(api_key=API_KEY, port=0, subscribe_rps=20, forgotten_emails=["forgotten@example.com"],
                           get_users_per_minute=0, size_per_minute=0).start()
    try:
        print(f"Iterable sandbox running at {server.url} (subscribe limit 20 requests/s, not told to the connector)")
        server.client.seed([{"name": "Airbyte - churn_risk", "listType": "Standard",
                             "members": [{"email": f"user{i}@example.com"} for i in range(600)]}])
        server.client.seed([{"name": "Airbyte - newsletter_optins", "listType": "Standard",
                             "members": [{"email": f"reader{i}@example.org"} for i in range(300, 440)]}])
        print("Seeded existing lists: 'Airbyte - churn_risk' (last week's 600 members) and "
              "'Airbyte - newsletter_optins' (140 readers).")
        messages, cat = segments(rng), catalog()

        print("\n== 1. Dry run: read-only plan ==")
        dry = run_cli("write", config(server.url, dry_run=True), cat, messages)
        for line in dry.logs:
            if line.startswith(("Dry run", "Dry-run plan")):
                print("  " + line)
        print_table("Dry-run plan", dry)

        print("\n== 2. Real sync ==")
        real = run_cli("write", config(server.url), cat, messages)
        for line in real.logs:
            if line.startswith(("Created", "Progress", "Sync summary", "Request rate")) or (
                    "rejected" in line and not line.startswith("SYNC_SUMMARY")):
                print("  " + line)
        print_table("Sync summary", real)
        if real.returncode != 0:
            print("The sync failed:", real.errors)
            return 1

        print("\nLists in the sandbox now:")
        for entry in server.client.lists():
            print(f"  {entry['name']:<30} id {entry['id']:>7}  {entry['size']:>5} members")
        print("\nRun it again and every list is reused; nothing is duplicated.")

        print("\n== 3. Data activation: what `discover` offers (Airbyte 1.8+) ==")
        found = run_cli("discover", config(server.url))
        print_discover(found)
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
