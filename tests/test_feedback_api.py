"""Feedback endpoint: envelope, validation, idempotency, unknown cards (checklist F 102-114)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from cds.hook import HookRuntime
from tests.conftest import CdsCaller
from tests.support import fixture_request
from tests.test_service_requests import assert_outcome


def shown_card(cds: CdsCaller) -> dict[str, Any]:
    card: dict[str, Any] = cds.call(fixture_request("eligible-icd10-loinc")).get_json()["cards"][0]
    return card


def accepted(card: dict[str, Any], when: str = "2026-11-24T10:00:00.123Z") -> dict[str, Any]:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": when,
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }


def overridden(card_id: str, when: str = "2026-11-24T10:05:00Z", **extra: Any) -> dict[str, Any]:
    return {"card": card_id, "outcome": "overridden", "outcomeTimestamp": when, **extra}


def stored(app: Flask) -> list[dict[str, Any]]:
    runtime: HookRuntime = app.extensions["sortace.runtime"]
    assert runtime.store is not None
    return runtime.store.feedback_rows()


def test_valid_feedback_is_stored_and_answered_200(app: Flask, cds: CdsCaller) -> None:
    card = shown_card(cds)
    response = cds.feedback({"feedback": [accepted(card)]})
    assert response.status_code == 200  # checklist 102, 103, 104
    assert response.get_json() == {"stored": 1, "duplicates": 0}
    (row,) = stored(app)
    assert row["card_uuid"] == card["uuid"] and row["outcome"] == "accepted" and row["known_card"] is True


def test_a_batch_covering_several_cards_and_outcomes_is_kept_in_order(app: Flask, cds: CdsCaller) -> None:
    first, second = shown_card(cds), shown_card(cds)
    batch = [accepted(first), overridden(first["uuid"]), overridden(second["uuid"], "2026-11-24T11:00:00+08:00")]
    assert cds.feedback({"feedback": batch}).get_json() == {"stored": 3, "duplicates": 0}  # checklist 112
    rows = stored(app)
    assert [(r["card_uuid"], r["outcome"]) for r in rows] == [
        (first["uuid"], "accepted"),
        (first["uuid"], "overridden"),
        (second["uuid"], "overridden"),
    ]


def test_the_same_item_twice_is_stored_once(app: Flask, cds: CdsCaller) -> None:
    card = shown_card(cds)
    item = accepted(card)
    assert cds.feedback({"feedback": [item]}).get_json() == {"stored": 1, "duplicates": 0}
    assert cds.feedback({"feedback": [item]}).get_json() == {"stored": 0, "duplicates": 1}  # checklist 112
    assert cds.feedback({"feedback": [item, item]}).status_code == 200
    assert len(stored(app)) == 1


def test_override_without_reason_with_comment_only_and_with_bare_coding(app: Flask, cds: CdsCaller) -> None:
    card = shown_card(cds)["uuid"]
    batch = [
        overridden(card, "2026-11-24T10:01:00Z"),  # checklist 109
        overridden(
            card, "2026-11-24T10:02:00Z", overrideReason={"userComment": "Re-resection planned"}
        ),  # checklist 110
        overridden(
            card, "2026-11-24T10:03:00Z", overrideReason={"reason": {"code": "curative-option"}}
        ),  # checklist 111
        overridden(
            card,
            "2026-11-24T10:04:00Z",
            overrideReason={"reason": {"code": "contraindication", "system": "urn:sortace-cds:override-reason"}},
        ),  # checklist 111
    ]
    assert cds.feedback({"feedback": batch}).get_json()["stored"] == 4
    rows = stored(app)
    assert [r["override_code"] for r in rows] == [None, None, "curative-option", "contraindication"]
    assert rows[1]["override_comment"] == "Re-resection planned"


def test_epic_override_reasons_plural_is_read(app: Flask, cds: CdsCaller) -> None:
    card = shown_card(cds)["uuid"]
    item = overridden(
        card,
        overrideReasons={
            "reason": {"code": "patient-declines", "display": "Declines", "system": "urn:sortace-cds:override-reason"},
            "userComment": "Wants a second opinion",
        },
    )
    assert cds.feedback({"feedback": [item]}).status_code == 200
    (row,) = stored(app)
    assert (row["override_code"], row["override_comment"]) == ("patient-declines", "Wants a second opinion")


def test_feedback_for_an_unknown_card_is_stored_and_flagged(app: Flask, cds: CdsCaller) -> None:
    unknown = str(uuid.uuid4())
    assert cds.feedback({"feedback": [overridden(unknown)]}).status_code == 200  # checklist 113
    (row,) = stored(app)
    assert row["card_uuid"] == unknown and row["known_card"] is False


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "feedback: required field is missing"),  # checklist 105
        ({"feedback": []}, "feedback: must contain at least one item"),  # checklist 104
        ({"feedback": {"card": "x"}}, "feedback: must be of type array"),
        (
            {
                "feedback": [
                    {
                        "outcome": "accepted",
                        "outcomeTimestamp": "2026-11-24T10:00:00Z",
                        "acceptedSuggestions": [{"id": "s"}],
                    }
                ]
            },
            "feedback[0].card: required field is missing",
        ),  # 105
        (
            {"feedback": [{"card": "c", "outcomeTimestamp": "2026-11-24T10:00:00Z"}]},
            "feedback[0].outcome: required field is missing",
        ),  # checklist 105
        ({"feedback": [{"card": "c", "outcome": "overridden"}]}, "feedback[0].outcomeTimestamp: required"),  # 105
        (
            {"feedback": [{"card": "c", "outcome": "dismissed", "outcomeTimestamp": "2026-11-24T10:00:00Z"}]},
            "feedback[0].outcome: must be one of accepted, overridden",
        ),  # checklist 106
        (
            {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:00:00Z"}]},
            "feedback[0].acceptedSuggestions: required field is missing",
        ),  # checklist 107
        (
            {
                "feedback": [
                    {
                        "card": "c",
                        "outcome": "accepted",
                        "outcomeTimestamp": "2026-11-24T10:00:00Z",
                        "acceptedSuggestions": [],
                    }
                ]
            },
            "feedback[0].acceptedSuggestions: must contain at least one",
        ),  # 107
        (
            {
                "feedback": [
                    {
                        "card": "c",
                        "outcome": "accepted",
                        "outcomeTimestamp": "2026-11-24T10:00:00Z",
                        "acceptedSuggestions": [{"uuid": "s"}],
                    }
                ]
            },
            "feedback[0].acceptedSuggestions[0].id: required",
        ),
        (
            {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
            "feedback[0].outcomeTimestamp",
        ),  # checklist 108
        (
            {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-02-30T10:00:00Z"}]},
            "not a valid rfc3339-date-time",
        ),  # checklist 108: an impossible date
        (
            {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00"}]},
            "not a valid rfc3339-date-time",
        ),  # checklist 108: RFC 3339 needs an offset
    ],
)
def test_invalid_feedback_is_400_naming_item_and_field(app: Flask, cds: CdsCaller, body: Any, fragment: str) -> None:
    assert_outcome(cds.feedback(body), 400, fragment)
    assert stored(app) == []


def test_one_bad_item_rejects_the_whole_batch(app: Flask, cds: CdsCaller) -> None:
    card = shown_card(cds)
    batch = [accepted(card), {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "not a time"}]
    assert_outcome(cds.feedback({"feedback": batch}), 400, "feedback[1].outcomeTimestamp")
    assert stored(app) == []  # nothing half-stored


def test_feedback_to_an_unknown_service_is_404(cds: CdsCaller) -> None:
    assert_outcome(cds.feedback({"feedback": [overridden("c")]}, service="nope"), 404)
