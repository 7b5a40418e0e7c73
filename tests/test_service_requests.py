"""Service calls: what the service accepts and how it rejects bad input (checklists A, C, I)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import AppFactory, CdsCaller
from tests.support import SERVICE_ID, SigningKey, fixture_request

PATH = f"/cds-services/{SERVICE_ID}"


def minimal(patient: str = "p-na-icc", **extra: Any) -> dict[str, Any]:
    request = fixture_request("na-cholangiocarcinoma")
    request.update(extra)
    return request


def assert_outcome(response: Any, status: int, *fragments: str) -> dict[str, Any]:
    """Every non-2xx answer is an OperationOutcome that says what was wrong (checklist 142)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(i["severity"] and i["code"] for i in body["issue"])
    text = json.dumps(body)
    for fragment in fragments:
        assert fragment in text, text
    assert "Traceback" not in text and "eyJ" not in text  # checklist 143: no stack trace, no JWT
    return body


def test_a_valid_request_gets_200_with_cards(cds: CdsCaller) -> None:
    response = cds.call(minimal())
    assert response.status_code == 200  # checklist 31, 70
    assert response.get_json() == {"cards": []}  # checklist 71: no guidance is exactly {"cards": []}
    assert response.mimetype == "application/json"  # checklist 6


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_json_media_type_with_or_without_charset(cds: CdsCaller, content_type: str) -> None:
    response = cds.post_raw(PATH, json.dumps(minimal()), content_type)
    assert response.status_code == 200  # checklist 7


def test_invalid_json_is_400(cds: CdsCaller) -> None:
    assert_outcome(cds.post_raw(PATH, '{"hook": "patient-view",'), 400, "not valid JSON")  # checklist 32


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_400(cds: CdsCaller, content_type: str | None) -> None:
    assert_outcome(
        cds.post_raw(PATH, json.dumps(minimal()), content_type), 400, "Content-Type must be application/json"
    )


def test_a_body_that_is_not_an_object_is_400(cds: CdsCaller) -> None:
    assert_outcome(cds.post_raw(PATH, "[1, 2]"), 400, "JSON object")


@pytest.mark.parametrize(
    ("remove", "expression"),
    [
        ("hook", "hook"),  # checklist 33
        ("hookInstance", "hookInstance"),  # checklist 34
        ("context", "context"),  # checklist 36
    ],
)
def test_missing_required_members_are_400_naming_them(cds: CdsCaller, remove: str, expression: str) -> None:
    request = minimal()
    del request[remove]
    body = assert_outcome(cds.call(request), 400, f"{expression}: required field is missing")
    assert body["issue"][0]["expression"] == [expression]


@pytest.mark.parametrize("field", ["patientId", "userId"])
def test_missing_context_ids_are_400(cds: CdsCaller, field: str) -> None:
    request = minimal()
    del request["context"][field]
    assert_outcome(cds.call(request), 400, f"context.{field}: required field is missing")  # checklist 39, 40


def test_a_hook_other_than_patient_view_is_400(cds: CdsCaller) -> None:
    assert_outcome(cds.call(minimal(hook="order-select")), 400, "answers the 'patient-view' hook")  # checklist 37


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("hook",), 5, "hook: must be of type string"),  # checklist 35
        (("context",), "p1", "context: must be of type object"),
        (("context", "patientId"), 42, "context.patientId: must be of type string"),
        (("prefetch",), [], "prefetch: must be of type object"),
        (("fhirServer",), "ftp://x", "fhirServer"),
    ],
)
def test_wrong_types_are_400(cds: CdsCaller, path: tuple[str, ...], value: Any, fragment: str) -> None:
    request = minimal()
    target = request
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert_outcome(cds.call(request), 400, fragment)


def test_every_problem_of_a_body_is_reported_at_once(cds: CdsCaller) -> None:
    body = assert_outcome(cds.call({"hook": 1, "context": {}}), 400)
    expressions = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert {"hook", "hookInstance", "context.userId", "context.patientId"} <= expressions


def test_a_non_uuid_hook_instance_is_accepted(cds: CdsCaller) -> None:
    assert cds.call(minimal(hookInstance="not-a-uuid")).status_code == 200  # checklist 38


def test_encounter_id_is_optional(cds: CdsCaller) -> None:
    request = minimal()
    assert "encounterId" not in request["context"]
    assert cds.call(request).status_code == 200  # checklist 41
    request["context"]["encounterId"] = "enc-1"
    assert cds.call(request).status_code == 200


@pytest.mark.parametrize("user", ["Practitioner/x", "PractitionerRole/x-1", "Patient/p1", "RelatedPerson/r.1"])
def test_all_user_types_are_accepted(cds: CdsCaller, user: str) -> None:
    request = minimal()
    request["context"]["userId"] = user
    assert cds.call(request).status_code == 200  # checklist 42


@pytest.mark.parametrize("user", ["x", "Device/1", "Practitioner/", "Practitioner/a b"])
def test_user_id_not_of_the_form_type_slash_id_is_400(cds: CdsCaller, user: str) -> None:
    request = minimal()
    request["context"]["userId"] = user
    assert_outcome(cds.call(request), 400, "context.userId")  # checklist 43: policy is reject


def test_unknown_members_and_extensions_are_ignored(cds: CdsCaller) -> None:
    request = minimal()
    request["unknownTopLevel"] = {"x": 1}
    request["extension"] = {"com.example.flag": True}
    request["context"]["extension"] = {"com.epic.cdshooks.request.bpa-trigger-action": "90"}
    request["context"]["somethingNew"] = "value"
    request["prefetch"]["notAdvertised"] = {"resourceType": "Bundle", "type": "searchset"}
    assert cds.call(request).get_json() == {"cards": []}  # checklist 8, 9, 44, 61, 146


def test_fhir_authorization_without_fhir_server_is_400(cds: CdsCaller) -> None:
    request = minimal(
        fhirAuthorization={
            "access_token": "secret-token-1",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds",
        }
    )
    body = assert_outcome(cds.call(request), 400, "fhirAuthorization: given without fhirServer")  # checklist 45
    assert "secret-token-1" not in json.dumps(body)


def test_fhir_authorization_for_another_patient_is_400(cds: CdsCaller) -> None:
    request = minimal(
        fhirServer="http://127.0.0.1:1/fhir",
        fhirAuthorization={
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "s",
            "subject": "c",
            "patient": "other",
        },
    )
    assert_outcome(cds.call(request), 400, "names a different patient")  # checklist 48


def test_unknown_service_is_404(cds: CdsCaller) -> None:
    assert_outcome(cds.call(minimal(), service="no-such-service"), 404, "no-such-service")  # checklist 141


def test_get_on_a_service_is_405_and_feedback_get_is_405(cds: CdsCaller, client: FlaskClient) -> None:
    response = client.get(PATH, headers=cds.headers(PATH))
    assert_outcome(response, 405, "Method not allowed")  # checklist 144
    assert "POST" in response.headers["Allow"]
    feedback = f"{PATH}/feedback"
    assert_outcome(client.get(feedback, headers=cds.headers(feedback)), 405)  # checklist 144
    assert_outcome(client.put(PATH, headers=cds.headers(PATH)), 405)


def test_unknown_path_is_404_operation_outcome(client: FlaskClient) -> None:
    assert_outcome(client.get("/nothing-here"), 404, "Discovery is at GET /cds-services")


def test_a_body_over_the_limit_is_413(make_app: AppFactory, es384: SigningKey) -> None:
    caller = CdsCaller(make_app(max_request_bytes=2000).test_client(), es384)
    request = minimal()
    assert len(json.dumps(request)) > 2000
    assert_outcome(caller.call(request), 413, "larger than the configured limit")


def test_pre_1_0_request_shape_is_400(cds: CdsCaller) -> None:
    request = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "user": "Practitioner/x",
        "patient": "p1",
        "context": {"patientId": "p1"},
    }
    assert_outcome(cds.call(request), 400, "context.userId")  # checklist 147


def test_a_1_0_style_request_without_authorization_is_handled_with_auth_off(make_app: AppFactory) -> None:
    client = make_app(auth={"mode": "off"}).test_client()
    request = fixture_request("eligible-icd10-loinc")  # no fhirAuthorization, no user-id prefetch tokens
    response = client.post(PATH, json=request)  # and no Authorization header
    assert response.status_code == 200 and len(response.get_json()["cards"]) == 1  # checklist 145


def test_a_3_0_ballot_client_with_smart_v2_scopes_is_handled(cds: CdsCaller) -> None:
    request = minimal(
        fhirServer="http://127.0.0.1:9/fhir",
        fhirAuthorization={
            "access_token": "t-3",
            "token_type": "Bearer",
            "expires_in": 300,
            "subject": "client",
            "scope": "patient/Observation.rs patient/Condition.rs launch/patient",
            "patient": "p-na-icc",
        },
    )
    request["extension"] = {"org.hl7.cds.version": {"hookVersion": "1.0"}}
    assert cds.call(request).status_code == 200  # checklist 146: prefetch complete, nothing fetched


def test_calls_stay_far_inside_the_spec_s_time_target(cds: CdsCaller) -> None:
    # checklist 12: about 500 ms per call. The figures come from scripts/bench.py (about 8 ms median); this only
    # guards the spec's own bound, with a wide margin for a loaded test machine.
    import time

    samples = []
    for _ in range(20):
        request = fixture_request("eligible-icd10-loinc")
        started = time.perf_counter()
        assert cds.call(request).status_code == 200
        samples.append(time.perf_counter() - started)
    assert sorted(samples)[18] < 0.5  # p95 of 20 calls
