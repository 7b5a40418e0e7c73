"""``sortace-cds feedback report``: how often each card is shown, accepted and overridden, and why.

Per service and card kind: cards shown (ledger), the *final* decision per card (its latest feedback by
``outcomeTimestamp``; the CDS Hooks Sandbox sends "accepted" and then "overridden" for one card), the acceptance
rate among decided cards, override reasons with counts, how many final overrides carry a free-text comment,
and the median minutes from card to final decision. Feedback for cards the ledger does not know is counted
apart. No patient identifier is read or printed.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class ReportRow:
    service_id: str
    kind: str
    shown: int = 0
    accepted: int = 0
    overridden: int = 0
    override_reasons: dict[str, int] = field(default_factory=dict)
    override_comments: int = 0
    median_minutes_to_decision: float | None = None

    @property
    def decided(self) -> int:
        return self.accepted + self.overridden

    @property
    def acceptance_rate(self) -> float | None:
        return round(self.accepted / self.decided, 4) if self.decided else None


@dataclass
class Report:
    since: str | None
    rows: list[ReportRow]
    unknown_card_feedback: int

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "rows": [{**asdict(r), "decided": r.decided, "acceptance_rate": r.acceptance_rate} for r in self.rows],
            "unknown_card_feedback": self.unknown_card_feedback,
        }


def build_report(
    ledger: Sequence[dict[str, Any]], feedback: Sequence[dict[str, Any]], since: datetime | None
) -> Report:
    """Aggregate ledger and feedback rows (as stored) into the report."""
    by_card: dict[str, list[dict[str, Any]]] = {}
    for item in feedback:
        by_card.setdefault(item["card_uuid"], []).append(item)
    rows: dict[tuple[str, str], ReportRow] = {}
    minutes: dict[tuple[str, str], list[float]] = {}
    reasons: dict[tuple[str, str], Counter[str]] = {}
    for card in ledger:
        key = (card["service_id"], card["kind"])
        row = rows.setdefault(key, ReportRow(*key))
        row.shown += 1
        items = sorted(by_card.get(card["card_uuid"], []), key=lambda i: (_utc(i["outcome_timestamp"]), i["id"]))
        if not items:
            continue
        final = items[-1]
        delay = (_utc(final["outcome_timestamp"]) - _utc(card["created_at"])).total_seconds() / 60
        minutes.setdefault(key, []).append(max(0.0, delay))
        if final["outcome"] == "accepted":
            row.accepted += 1
        else:
            row.overridden += 1
            reasons.setdefault(key, Counter())[_reason(final)] += 1
            row.override_comments += bool(final["override_comment"])
    for key, row in rows.items():
        row.override_reasons = dict(reasons.get(key, Counter()).most_common())
        if minutes.get(key):
            row.median_minutes_to_decision = round(statistics.median(minutes[key]), 1)
    shown_cards = {card["card_uuid"] for card in ledger}
    unknown = sum(
        1
        for item in feedback
        if not item["known_card"]
        and item["card_uuid"] not in shown_cards
        and (since is None or _utc(item["received_at"]) >= since)
    )
    return Report(
        since.date().isoformat() if since else None,
        sorted(rows.values(), key=lambda r: (r.service_id, r.kind)),
        unknown,
    )


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2)
    if fmt == "csv":
        return _csv(report)
    return _text(report)


def _reason(item: dict[str, Any]) -> str:
    code = item["override_code"]
    if not code:
        return "(no reason given)"
    return f"{code} ({item['override_display']})" if item["override_display"] else code


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _text(report: Report) -> str:
    lines = [f"SOR-TACE CDS feedback report ({'since ' + report.since if report.since else 'all time'})"]
    if not report.rows:
        lines.append("No cards shown in this period.")
    for row in report.rows:
        median = "n/a" if row.median_minutes_to_decision is None else f"{row.median_minutes_to_decision} min"
        lines += [
            "",
            f"{row.service_id} / {row.kind} card",
            f"  cards shown              {row.shown}",
            f"  decided                  {row.decided} (accepted {row.accepted}, overridden {row.overridden}, "
            f"no decision {row.shown - row.decided})",
            f"  acceptance rate          {_percent(row.acceptance_rate)} of decided cards",
            f"  median time to decision  {median}",
            f"  override comments        {row.override_comments}",
            "  override reasons" + ("" if row.override_reasons else "         none"),
        ]
        lines += [f"    {count:>4}  {reason}" for reason, count in row.override_reasons.items()]
    lines += ["", f"Feedback for cards not in the ledger: {report.unknown_card_feedback}"]
    return "\n".join(lines)


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "service_id",
            "kind",
            "shown",
            "decided",
            "accepted",
            "overridden",
            "acceptance_rate",
            "median_minutes_to_decision",
            "override_comments",
            "override_reasons",
        ]
    )
    for row in report.rows:
        writer.writerow(
            [
                row.service_id,
                row.kind,
                row.shown,
                row.decided,
                row.accepted,
                row.overridden,
                "" if row.acceptance_rate is None else row.acceptance_rate,
                "" if row.median_minutes_to_decision is None else row.median_minutes_to_decision,
                row.override_comments,
                "; ".join(f"{r}={c}" for r, c in row.override_reasons.items()),
            ]
        )
    writer.writerow(["(unknown cards)", "", "", "", "", "", "", "", "", f"feedback={report.unknown_card_feedback}"])
    return out.getvalue().rstrip("\n")
