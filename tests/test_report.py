"""``sortace-cds feedback report`` against a hand-computed example (issue #6 item 5)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds.feedback import parse_feedback
from cds.report import build_report, render
from cds.store.sql import LedgerEntry, SqlStore


def at(hour: int, minute: int = 0, day: int = 24) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def stamp(hour: int, minute: int = 0) -> str:
    return at(hour, minute).isoformat().replace("+00:00", "Z")


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[SqlStore, str]]:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    store = SqlStore.open(url)

    def card(uuid: str, kind: str, shown: datetime) -> LedgerEntry:
        return LedgerEntry(uuid, "sor-tace-recurrent-hcc", "h", "iss", kind, "d", f"patient-{uuid}", (), shown)

    store.record_cards(
        [
            card("A", "eligible", at(10)),
            card("B", "eligible", at(10)),
            card("C", "eligible", at(10)),
            card("D", "eligible", at(10)),
            card("E", "information-needed", at(9)),
            card("OLD", "eligible", at(9, day=1)),
        ]
    )
    feedback = [
        {"card": "A", "outcome": "accepted", "outcomeTimestamp": stamp(10, 30), "acceptedSuggestions": [{"id": "s"}]},
        {"card": "B", "outcome": "accepted", "outcomeTimestamp": stamp(10, 10), "acceptedSuggestions": [{"id": "s"}]},
        {
            "card": "B",
            "outcome": "overridden",
            "outcomeTimestamp": stamp(10, 20),
            "overrideReason": {
                "reason": {
                    "code": "curative-option",
                    "system": "urn:sortace-cds:override-reason",
                    "display": "A curative option was chosen",
                },
                "userComment": "Ablation planned",
            },
        },
        {
            "card": "C",
            "outcome": "overridden",
            "outcomeTimestamp": stamp(11),
            "overrideReason": {"reason": {"code": "contraindication"}},
        },
        {"card": "E", "outcome": "overridden", "outcomeTimestamp": stamp(9, 5)},
        {"card": "X-unknown", "outcome": "overridden", "outcomeTimestamp": stamp(12)},
    ]
    store.record_feedback(
        "sor-tace-recurrent-hcc", "iss", parse_feedback({"feedback": feedback}, "sor-tace-recurrent-hcc")
    )
    yield store, url
    store.close()


def test_report_numbers_match_the_hand_computed_example(filled: tuple[SqlStore, str]) -> None:
    store, _ = filled
    since = at(0)
    report = build_report(store.ledger_rows(since), store.feedback_rows(), since)
    eligible, info = report.rows  # sorted by kind
    assert (eligible.kind, eligible.shown, eligible.decided, eligible.accepted, eligible.overridden) == (
        "eligible",
        4,
        3,
        1,
        2,
    )  # OLD is before --since; D has no decision; B's final decision is the override
    assert eligible.acceptance_rate == pytest.approx(1 / 3, abs=1e-4)
    assert eligible.override_reasons == {"curative-option (A curative option was chosen)": 1, "contraindication": 1}
    assert eligible.override_comments == 1
    assert eligible.median_minutes_to_decision == 30.0  # decisions after 30, 20 and 60 minutes
    assert (info.kind, info.shown, info.decided, info.overridden, info.acceptance_rate) == (
        "information-needed",
        1,
        1,
        1,
        0.0,
    )
    assert info.override_reasons == {"(no reason given)": 1} and info.median_minutes_to_decision == 5.0
    assert report.unknown_card_feedback == 1
    all_time = build_report(store.ledger_rows(None), store.feedback_rows(), None)
    assert all_time.rows[0].shown == 5


def test_report_formats_through_the_command_line(filled: tuple[SqlStore, str], tmp_path: Path) -> None:
    _, url = filled
    config = tmp_path / "report.toml"
    config.write_text(f'profile = "development"\ndata_dir = "{tmp_path}"\n[feedback]\ndatabase_url = "{url}"\n')

    def report(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "cds", "feedback", "report", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    as_json = json.loads(report("--since", "2026-11-24", "--format", "json"))
    assert as_json["rows"][0]["shown"] == 4 and as_json["rows"][0]["acceptance_rate"] == pytest.approx(0.3333)
    text = report("--since", "2026-11-24")
    assert "cards shown              4" in text and "acceptance rate          33.3% of decided cards" in text
    assert "median time to decision  30.0 min" in text and "Feedback for cards not in the ledger: 1" in text
    rows = list(csv.DictReader(io.StringIO(report("--since", "2026-11-24", "--format", "csv"))))
    assert rows[0]["kind"] == "eligible" and rows[0]["overridden"] == "2" and rows[1]["accepted"] == "0"
    for output in (text, json.dumps(as_json)):
        assert "patient-" not in output  # no patient identifiers (not even the hashes)


def test_an_empty_store_reports_nothing_shown(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'empty.db'}")
    text = render(build_report(store.ledger_rows(None), store.feedback_rows(), None), "text")
    store.close()
    assert "No cards shown in this period." in text
