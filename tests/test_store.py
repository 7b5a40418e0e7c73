"""The store on SQLite and on a real PostgreSQL server: ledger, feedback, replay cache, suppression (issue #6)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cds.feedback import parse_feedback
from cds.store.schema import migrate
from cds.store.sql import LedgerEntry, SqlStore, engine_for
from tests.conftest import AppFactory, CdsCaller
from tests.support import SigningKey, fixture_request


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(database_url)
    yield opened
    opened.close()


def items(*specs: dict[str, object]) -> list:  # type: ignore[type-arg]
    return parse_feedback({"feedback": list(specs)}, "svc")


def entry(card: str, patient: str = "k1", kind: str = "eligible", digest: str = "d1") -> LedgerEntry:
    return LedgerEntry(card, "svc", "hook-1", "iss", kind, digest, patient, ("s-" + card,), datetime.now(UTC))


def test_migration_is_idempotent_and_versioned(database_url: str) -> None:
    engine = engine_for(database_url)
    assert migrate(engine) == 1
    assert migrate(engine) == 1
    engine.dispose()


def test_feedback_is_idempotent_ordered_and_flags_unknown_cards(store: SqlStore) -> None:
    store.record_cards([entry("c1")])
    first = items(
        {
            "card": "c1",
            "outcome": "accepted",
            "outcomeTimestamp": "2026-11-24T10:00:00Z",
            "acceptedSuggestions": [{"id": "s-c1"}],
        },
        {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:01:00Z"},
        {"card": "c-unknown", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:02:00+02:00"},
    )
    receipt = store.record_feedback("svc", "iss", first)
    assert (receipt.stored, receipt.duplicates, receipt.unknown_cards) == (3, 0, ("c-unknown",))
    again = store.record_feedback("svc", "iss", first)
    assert (again.stored, again.duplicates) == (0, 3)  # checklist 112
    rows = store.feedback_rows()
    assert [(r["card_uuid"], r["outcome"], r["known_card"]) for r in rows] == [
        ("c1", "accepted", True),
        ("c1", "overridden", True),
        ("c-unknown", "overridden", False),
    ]
    stamp = rows[2]["outcome_timestamp"]
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    assert stamp == datetime(2026, 11, 24, 8, 2, tzinfo=UTC)  # stored in UTC


def test_concurrent_writers_lose_nothing_and_store_no_duplicates(store: SqlStore) -> None:
    batches = [
        items(
            *(
                {"card": f"c-{w}-{i}", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"}
                for i in range(50)
            )
        )
        for w in range(8)
    ]
    errors: list[BaseException] = []

    def write(batch: list) -> None:  # type: ignore[type-arg]
        try:
            for item in batch:
                store.record_feedback("svc", "iss", [item, item])  # every item twice, from its own thread
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    cards = [row["card_uuid"] for row in store.feedback_rows()]
    assert len(cards) == 400 and len(set(cards)) == 400


def test_jti_is_claimed_once_until_it_expires(store: SqlStore) -> None:
    later = datetime.now(UTC).timestamp() + 300
    assert store.claim_jti("iss", "j1", later) is True
    assert store.claim_jti("iss", "j1", later) is False  # checklist 130, shared by every worker
    assert store.claim_jti("other-iss", "j1", later) is True
    past = datetime.now(UTC).timestamp() - 1
    assert store.claim_jti("iss", "j2", past) is True
    assert store.claim_jti("iss", "j2", later) is True  # an expired entry no longer blocks


def test_overridden_digests_by_patient_kind_and_window(store: SqlStore) -> None:
    store.record_cards(
        [
            entry("c1", digest="d1"),
            entry("c2", patient="k2", digest="d2"),
            entry("c3", kind="information-needed", digest="d3"),
        ]
    )
    now = datetime.now(UTC)
    store.record_feedback(
        "svc",
        "iss",
        items(
            {"card": "c1", "outcome": "overridden", "outcomeTimestamp": now.isoformat()},
            {"card": "c2", "outcome": "overridden", "outcomeTimestamp": (now - timedelta(days=30)).isoformat()},
            {"card": "c3", "outcome": "overridden", "outcomeTimestamp": now.isoformat()},
        ),
    )
    since = now - timedelta(days=14)
    assert store.overridden_digests("svc", "k1", "eligible", since) == {"d1"}
    assert store.overridden_digests("svc", "k2", "eligible", since) == set()  # outside the window
    assert store.overridden_digests("svc", "k1", "information-needed", since) == {"d3"}


def test_suppression_through_the_service(make_app: AppFactory, es384: SigningKey, database_url: str) -> None:
    app = make_app(feedback={"database_url": database_url})
    cds = CdsCaller(app.test_client(), es384)
    card = cds.call(fixture_request("eligible-icd10-loinc")).get_json()["cards"][0]
    now = datetime.now(UTC).isoformat()
    assert (
        cds.feedback(
            {
                "feedback": [
                    {
                        "card": card["uuid"],
                        "outcome": "overridden",
                        "outcomeTimestamp": now,
                        "overrideReason": {"reason": {"code": "curative-option"}},
                    }
                ]
            }
        ).status_code
        == 200
    )
    assert cds.call(fixture_request("eligible-icd10-loinc")).get_json() == {"cards": []}  # not repeated
    changed = fixture_request("eligible-icd10-loinc")
    ecog = next(
        e["resource"] for e in changed["prefetch"]["observations"]["entry"] if e["resource"]["id"].endswith("-ecog")
    )
    ecog["valueInteger"] = 1  # the facts changed: the card (now with an ECOG 1 caution) is shown again
    again = cds.call(changed).get_json()["cards"]
    assert len(again) == 1 and "ECOG 1" in again[0]["detail"]
    other = cds.call(fixture_request("eligible-chinese-text")).get_json()["cards"]
    assert len(other) == 1  # another patient is not affected


def test_an_old_override_does_not_suppress(make_app: AppFactory, es384: SigningKey) -> None:
    app = make_app(feedback={"suppression_days": 14})
    cds = CdsCaller(app.test_client(), es384)
    card = cds.call(fixture_request("info-many-missing")).get_json()["cards"][0]
    old = (datetime.now(UTC) - timedelta(days=15)).isoformat()
    cds.feedback({"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": old}]})
    assert len(cds.call(fixture_request("info-many-missing")).get_json()["cards"]) == 1


def test_ledger_records_cards_without_patient_ids(app_with_store: tuple[CdsCaller, SqlStore]) -> None:
    cds, store = app_with_store
    response = cds.call(fixture_request("eligible-icd10-loinc")).get_json()
    (row,) = store.ledger_rows(None)
    card = response["cards"][0]
    assert row["card_uuid"] == card["uuid"] and row["kind"] == "eligible" and len(row["fact_digest"]) == 64
    assert row["suggestion_uuids"] == f'["{card["suggestions"][0]["uuid"]}"]'
    assert "p-elig-icd10" not in str(row) and len(row["patient_key"]) == 64  # a keyed hash, not the id


@pytest.fixture
def app_with_store(make_app: AppFactory, es384: SigningKey) -> tuple[CdsCaller, SqlStore]:
    app = make_app()
    return CdsCaller(app.test_client(), es384), app.extensions["sortace.runtime"].store
