"""Nothing a client sends produces a 500; an internal failure is a 500 that reveals nothing (checklist I 141-144)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from cds.hook import HookRuntime
from tests.conftest import CAPTURED_LOGS, CdsCaller
from tests.support import fixture_request

ELIGIBLE = "eligible-icd10-loinc"


def junk_requests() -> list[Any]:
    base = fixture_request(ELIGIBLE)
    variants: list[Any] = [None, 0, "text", [], {}, {"hook": None}, {"context": None}, {"prefetch": "x"}]
    for key in ("conditions", "observations", "patient", "medicationRequests"):
        for value in (
            1,
            "x",
            [],
            [None],
            {"resourceType": "Bundle", "entry": "x", "link": 5},
            {"resourceType": "Bundle", "entry": [None, 1, {"resource": "x"}, {"resource": {"x": 1}}]},
            {
                "resourceType": "Bundle",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Condition",
                            "id": "c",
                            "subject": {"reference": "Patient/p-elig-icd10"},
                            "onsetDateTime": "yesterday",
                            "code": 5,
                        }
                    }
                ],
            },
            {
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "Observation", "id": "o", "subject": "Patient/p-elig-icd10"}}],
            },
            {"resourceType": "OperationOutcome", "issue": "broken"},
            {"resourceType": "Patient", "id": "p-elig-icd10", "birthDate": "not a date"},
        ):
            variant = json.loads(json.dumps(base))
            variant["prefetch"][key] = value
            variants.append(variant)
    deep = json.loads(json.dumps(base))
    deep["context"]["extension"] = {"a": [{"b": [{"c": None}] * 50}] * 50}
    variants.append(deep)
    unicode = json.loads(json.dumps(base))
    unicode["hookInstance"] = "\u202e\u0000" * 100
    variants.append(unicode)
    return variants


@pytest.mark.parametrize("body", junk_requests())
def test_no_client_input_makes_a_500(cds: CdsCaller, body: Any) -> None:
    response = cds.call(body)
    assert response.status_code in (200, 400, 412), response.get_data(as_text=True)[:300]
    payload = response.get_json()
    assert payload is not None
    if response.status_code != 200:
        assert payload["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"feedback": [None]},
        {"feedback": [{"card": 1}]},
        {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": 5}]},
        {
            "feedback": [
                {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z", "overrideReasons": 3}
            ]
        },
        {
            "feedback": [
                {
                    "card": "c",
                    "outcome": "accepted",
                    "outcomeTimestamp": "2026-11-24T10:00:00Z",
                    "acceptedSuggestions": "s",
                }
            ]
        },
    ],
)
def test_no_feedback_input_makes_a_500(cds: CdsCaller, body: Any) -> None:
    assert cds.feedback(body).status_code == 400


def test_an_invalid_resource_is_left_out_and_named_in_the_log(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE)
    entry = request["prefetch"]["observations"]["entry"]
    ecog = next(e["resource"] for e in entry if e["resource"]["id"].endswith("-ecog"))
    ecog["effectiveDateTime"] = "last week"  # not a FHIR dateTime: the ECOG cannot be read
    response = cds.call(request)
    assert response.status_code == 200
    assert "ECOG" in response.get_json()["cards"][0]["summary"]  # the card asks for it instead of guessing


def test_an_internal_error_is_a_bare_500(cds: CdsCaller, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fault no client can cause on demand: the assessment itself failing. The message carries a JWT-like
    # string to prove that nothing of the exception reaches the answer.
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJ4In0.c2ln")

    monkeypatch.setattr("cds.hook.assess", broken)
    before = len(CAPTURED_LOGS)
    response = cds.call(fixture_request(ELIGIBLE))
    assert response.status_code == 500  # checklist 143
    assert response.get_json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "Internal error; the service logged it."}],
    }
    logged = "\n".join(CAPTURED_LOGS[before:])
    assert "RuntimeError" in logged and "eyJhbGciOiJFUzM4NCJ9" not in logged and "Traceback" not in logged


def test_feedback_that_cannot_be_stored_is_a_500_not_a_silent_200(app: Flask, cds: CdsCaller) -> None:
    runtime: HookRuntime = app.extensions["sortace.runtime"]
    assert runtime.store is not None
    with runtime.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE feedback"))  # a real database failure
    item = {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"}
    response = cds.feedback({"feedback": [item]})
    assert response.status_code == 500  # the EHR keeps the item and may retry; never "stored" when it was not
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_auth_off_is_loud(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        app = make_app(auth={"mode": "off"})
    assert "AUTHENTICATION IS OFF" in caplog.text
    assert app.test_client().get("/cds-services").status_code == 200  # every caller is trusted: local use only
