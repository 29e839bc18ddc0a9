"""Counters per list, progress lines and the end-of-sync summary. Identifiers are masked."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from destination_iterable.members.identity import mask_identifier

logger = logging.getLogger("airbyte")

BUCKET_REASONS = {
    "invalidEmails": "invalid_email", "invalidUserIds": "invalid_user_id",
    "forgottenEmails": "gdpr_forgotten", "forgottenUserIds": "gdpr_forgotten",
    "conflictEmails": "conflict", "conflictUserIds": "conflict",
    "invalidDataEmails": "invalid_data", "invalidDataUserIds": "invalid_data",
    "notFoundEmails": "not_found", "notFoundUserIds": "not_found",
    "recordTooLarge": "record_too_large",
}
SAMPLES_PER_REASON = 3


@dataclass
class ListReport:
    """What happened to one stream's list."""

    stream: str
    list_name: str
    list_id: int | None = None
    created: bool = False
    mode: str = "add"
    dry_run: bool = False
    records_read: int = 0
    rejected_records: int = 0  # records not delivered: skipped locally or refused by Iterable (rows)
    skipped: Counter = field(default_factory=Counter)          # local skips by reason
    add_rows_sent: int = 0
    added: int = 0
    rejected: Counter = field(default_factory=Counter)         # Iterable's per-row rejects (adds) by reason
    remove_rows_sent: int = 0
    removed_by_delete: int = 0
    removed_by_mirror: int = 0
    remove_not_member: int = 0
    remove_rejected: Counter = field(default_factory=Counter)
    removals_refused: int = 0
    mirror: str = "off"
    size_before: int | None = None  # members before this sync (read at its start; 0 for a new list)
    _samples: Counter = field(default_factory=Counter, repr=False)

    def skip(self, reason: str) -> None:
        """Count a record not sent because it failed a local check."""
        self.skipped[reason] += 1

    def record_bulk(self, kind: str, rows: int, success: int, failed: dict[str, list[str]], *,
                    by_mirror: bool = False) -> None:
        """Fold one subscribe/unsubscribe answer into the counters, logging a few masked samples."""
        if kind == "add":
            self.add_rows_sent += rows
            self.added += success
            target = self.rejected
        else:
            self.remove_rows_sent += rows
            if by_mirror:
                self.removed_by_mirror += success
            else:
                self.removed_by_delete += success
            target = self.remove_rejected
        for bucket, ids in failed.items():
            reason = BUCKET_REASONS.get(bucket, bucket)
            if kind == "remove" and reason == "not_found":
                self.remove_not_member += len(ids)
                continue
            target[reason] += len(ids)
            self._log_samples(kind, reason, ids)

    def _log_samples(self, kind: str, reason: str, ids: list[str]) -> None:
        key = f"{kind}:{reason}"
        room = SAMPLES_PER_REASON - self._samples[key]
        if room <= 0:
            return
        shown = [mask_identifier(i) for i in ids[:room]]
        self._samples[key] += len(shown)
        logger.warning(f"List '{self.list_name}': Iterable rejected {kind} row(s) as {reason}, e.g. {shown}")

    def as_dict(self) -> dict[str, Any]:
        """Machine-readable summary (used by the demo and tests)."""
        return {
            "stream": self.stream, "list": self.list_name, "list_id": self.list_id,
            "list_action": "created" if self.created else "reused", "mode": self.mode,
            "records_read": self.records_read, "rejected_records": self.rejected_records,
            "skipped": dict(self.skipped),
            "add_rows_sent": self.add_rows_sent, "added": self.added, "rejected": dict(self.rejected),
            "remove_rows_sent": self.remove_rows_sent, "removed_by_delete": self.removed_by_delete,
            "removed_by_mirror": self.removed_by_mirror, "remove_not_member": self.remove_not_member,
            "remove_rejected": dict(self.remove_rejected), "removals_refused": self.removals_refused,
            "mirror": self.mirror, "size_before": self.size_before,
        }

    def summary_line(self) -> str:
        """One human line for the log."""
        def fmt(counter: Counter) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "none"

        if self.dry_run:
            target = "would be CREATED" if self.created else f"reused, id {self.list_id}" + (
                f", {self.size_before} members now" if self.size_before is not None else "")
            return (f"List '{self.list_name}' ({target}, mode {self.mode}): read {self.records_read}, would add "
                    f"{self.add_rows_sent}, would remove {self.removed_by_mirror} by mirror and send "
                    f"{self.removed_by_delete} delete(s), would skip {sum(self.skipped.values())} "
                    f"({fmt(self.skipped)}), removals refused {self.removals_refused}, mirror {self.mirror}")

        return (f"List '{self.list_name}' (id {self.list_id if self.list_id is not None else 'new'}, "
                f"{'created' if self.created else 'reused'}, mode {self.mode}): read {self.records_read}, "
                f"added {self.added}, skipped locally {sum(self.skipped.values())} ({fmt(self.skipped)}), "
                f"rejected by Iterable {sum(self.rejected.values())} ({fmt(self.rejected)}), removed "
                f"{self.removed_by_delete + self.removed_by_mirror} (deletes {self.removed_by_delete}, mirror "
                f"{self.removed_by_mirror}), removals refused {self.removals_refused}, mirror {self.mirror}"
                + (f", size before the sync {self.size_before}" if self.size_before is not None else ""))


class Progress:
    """Logs a progress line about every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.started = time.monotonic()
        self.last = self.started
        self.last_records = 0
        self.last_requests = 0

    def due(self, now: float) -> bool:
        """True when a progress line should be written."""
        return now - self.last >= self.interval

    def log(self, now: float, reports: list[ListReport], requests: int, target_rps: float) -> None:
        """Write one progress line: records read, sent, rejected, records/s, requests/s."""
        read = sum(r.records_read for r in reports)
        sent = sum(r.add_rows_sent + r.remove_rows_sent for r in reports)
        rejected = sum(sum(r.rejected.values()) + sum(r.skipped.values()) for r in reports)
        span = max(now - self.last, 1e-6)
        logger.info(f"Progress: read {read} records, sent {sent} rows, rejected/skipped {rejected}; "
                    f"{(read - self.last_records) / span:.0f} records/s, {(requests - self.last_requests) / span:.1f} "
                    f"requests/s (target {target_rps:.1f}/s)")
        self.last, self.last_records, self.last_requests = now, read, requests


def rate_line(snapshot: dict[str, Any]) -> str:
    """One line on the list requests: how many, how fast, how many Iterable refused, where the rate ended."""
    sent = snapshot.get("sent", 0)
    if not sent:
        return "Request rate: no list requests were sent."
    seconds = snapshot.get("sending_s") or 0.0
    pace = f" in {seconds:.1f} s ({sent / seconds:.1f}/s on average)" if seconds > 0 else ""
    limited, errors = snapshot.get("rate_limited", 0), snapshot.get("errors", 0)
    cap = snapshot.get("max_rps")
    return (f"Request rate: {sent} list requests{pace}; {limited} answered 429 ({limited / sent:.1%}) and {errors} "
            f"failed with a server error or a dropped connection (both are retried); the rate ended at "
            f"{snapshot.get('target_rps', 0.0):.1f}/s" + (f" (capped at {cap:g}/s)." if cap else "."))


RATE_KEYS = ("sent", "ok", "rate_limited", "errors", "sending_s", "target_rps", "max_rps")


def log_summary(reports: list[ListReport], *, dry_run: bool, extra: dict[str, Any],
                rate: dict[str, Any] | None = None) -> None:
    """Log the end-of-sync summary: one line per list, one on the request rate (the rate controller's
    ``snapshot()``, when there is a client), and one machine-readable JSON line."""
    title = "Dry-run plan" if dry_run else "Sync summary"
    for report in reports:
        logger.info(f"{title}: {report.summary_line()}")
    if rate is not None:
        logger.info(rate_line(rate))
        extra = {**extra, "rate": {key: rate.get(key) for key in RATE_KEYS}}
    payload = {"dry_run": dry_run, "lists": [r.as_dict() for r in reports], **extra}
    logger.info("SYNC_SUMMARY " + orjson.dumps(payload).decode())
