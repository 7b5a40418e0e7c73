"""Prefetch completion against a real FHIR server, and every way it can fail (checklist D 49-69; issue #4)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from cds.hookrequest import HookRequest
from cds.prefetch import expand, token_values
from tests.conftest import AppFactory, CdsCaller
from tests.support import FhirTestServer, SigningKey, fixture_bundle, fixture_request, free_port, secret
from tests.test_auth import KeyServer
from tests.test_service_requests import assert_outcome

ELIGIBLE = "eligible-icd10-loinc"
TOKEN = secret("ehr-access-token-0f3c9b")


def summary(response: Any) -> list[str]:
    return [card["summary"] for card in response.get_json()["cards"]]


@pytest.fixture
def loaded(fhir: FhirTestServer) -> FhirTestServer:
    fhir.load(fixture_bundle(ELIGIBLE))
    return fhir


def with_token(request: dict[str, Any], token: str = TOKEN, expires_in: int = 300) -> dict[str, Any]:
    request["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "patient/*.read",
        "subject": "sortace-cds",
        "patient": request["context"]["patientId"],
    }
    return request


def test_usable_prefetch_means_no_call_to_the_fhir_server(cds: CdsCaller, loaded: FhirTestServer) -> None:
    response = cds.call(with_token(fixture_request(ELIGIBLE, fhir_server=loaded.base)))
    assert response.status_code == 200 and len(summary(response)) == 1
    assert loaded.requests_seen() == []  # checklist 49


def test_absent_keys_are_fetched_with_the_bearer_token(cds: CdsCaller, loaded: FhirTestServer) -> None:
    request = with_token(fixture_request(ELIGIBLE, prefetch={"patient", "procedures"}, fhir_server=loaded.base))
    response = cds.call(request)
    assert response.status_code == 200 and summary(response)[0].startswith("Consider sorafenib")
    seen = loaded.requests_seen()
    paths = sorted(r["path"].split("?")[0] for r in seen)
    assert paths == ["/fhir/Condition", "/fhir/MedicationRequest", "/fhir/MedicationStatement", "/fhir/Observation"]
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in seen)  # checklist 50, 51
    assert any("patient=p-elig-icd10" in r["path"] and "_sort=-date" in r["path"] for r in seen)


def test_without_fhir_authorization_no_authorization_header_is_sent(cds: CdsCaller, loaded: FhirTestServer) -> None:
    response = cds.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base))
    assert response.status_code == 200
    assert loaded.requests_seen() and not any(r["hasAuthorization"] for r in loaded.requests_seen())  # checklist 52


def test_without_fhir_authorization_production_does_not_fetch(
    make_app: AppFactory, es384: SigningKey, loaded: FhirTestServer
) -> None:
    app = make_app(fhir={"allow_unauthenticated": False})
    response = CdsCaller(app.test_client(), es384).call(
        fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)
    )
    assert_outcome(response, 412, "unauthenticated FHIR access is disabled")  # checklist 52
    assert loaded.requests_seen() == []


def test_absent_required_key_without_fhir_server_is_412_naming_the_keys(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE, prefetch={"patient", "observations"})
    body = assert_outcome(cds.call(request), 412, "conditions", "procedures", "no fhirServer")  # checklist 53
    assert {e for i in body["issue"] for e in i["expression"]} == {"prefetch.conditions", "prefetch.procedures"}


def test_absent_optional_keys_without_fhir_server_ask_for_information(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE, prefetch={"patient", "conditions", "procedures"})
    response = cds.call(request)
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    assert "needed to assess SOR-TACE eligibility" in card["summary"]
    assert "Pathology, staging and assessments" in card["detail"] and "Medication history" in card["detail"]


@pytest.mark.parametrize(
    "failure",
    [
        {
            "status": 500,
            "body": json.dumps(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "error", "code": "exception", "diagnostics": "HAPI-0001: database unavailable"}
                    ],
                }
            ),
            "contentType": "application/fhir+json",
        },
        {"status": 502, "body": "<html><body><h1>502 Bad Gateway</h1></body></html>", "contentType": "text/html"},
        {"status": 503, "body": "", "contentType": "text/plain"},
    ],
)
def test_failed_fetch_of_a_required_key_is_412(cds: CdsCaller, loaded: FhirTestServer, failure: dict[str, Any]) -> None:
    loaded.configure(failWith=failure)
    started = time.monotonic()
    body = assert_outcome(
        cds.call(with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base))),
        412,
        f"HTTP {failure['status']}",
    )  # checklist 54
    assert time.monotonic() - started < 5
    text = json.dumps(body)
    assert any(part in text for part in ("HAPI-0001: database unavailable", "HTML page", "empty body"))
    assert TOKEN not in text  # checklist 67


def test_server_requiring_a_bearer_token(cds: CdsCaller, loaded: FhirTestServer) -> None:
    loaded.configure(token=TOKEN)
    missing = cds.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base))
    assert_outcome(missing, 412, "HTTP 401")
    wrong = cds.call(with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base), "wrong-token"))
    assert_outcome(wrong, 412, "HTTP 401")
    right = cds.call(with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)))
    assert right.status_code == 200 and summary(right)[0].startswith("Consider sorafenib")


def test_server_down_is_412_within_the_deadline(make_app: AppFactory, es384: SigningKey) -> None:
    app = make_app(fhir={"deadline_seconds": 0.45, "connect_timeout_seconds": 0.2})
    caller = CdsCaller(app.test_client(), es384)
    down = f"http://127.0.0.1:{free_port()}/fhir"
    started = time.monotonic()
    assert_outcome(caller.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=down)), 412, "cannot connect")
    assert time.monotonic() - started < 1.5  # checklist 54, 64


def test_slow_server_is_412_within_the_deadline_and_the_worker_is_free(
    make_app: AppFactory, es384: SigningKey, loaded: FhirTestServer
) -> None:
    app = make_app(fhir={"deadline_seconds": 0.45, "connect_timeout_seconds": 0.2})
    caller = CdsCaller(app.test_client(), es384)
    loaded.configure(delayMs=3000)
    started = time.monotonic()
    assert_outcome(
        caller.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)), 412, "within the deadline"
    )
    elapsed = time.monotonic() - started
    assert elapsed < 1.2, elapsed  # checklist 54, 64: never hangs on a slow server
    loaded.configure(delayMs=0)
    started = time.monotonic()
    assert caller.call(fixture_request(ELIGIBLE)).status_code == 200  # the next call is served at once
    assert time.monotonic() - started < 1.0


def test_missing_keys_are_fetched_concurrently(make_app: AppFactory, es384: SigningKey, loaded: FhirTestServer) -> None:
    app = make_app(fhir={"deadline_seconds": 5.0})
    caller = CdsCaller(app.test_client(), es384)
    loaded.configure(delayMs=400)
    started = time.monotonic()
    assert caller.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)).status_code == 200
    elapsed = time.monotonic() - started
    assert elapsed < 1.6, elapsed  # six searches of 400 ms each: about one round trip, not 2.4 s (checklist 64)


def test_null_prefetch_means_no_data_and_no_fetch(cds: CdsCaller, loaded: FhirTestServer) -> None:
    request = fixture_request(ELIGIBLE, fhir_server=loaded.base)
    request["prefetch"]["medicationRequests"] = None
    request["prefetch"]["medicationStatements"] = None
    response = cds.call(request)
    assert response.status_code == 200 and summary(response)[0].startswith("Consider sorafenib")  # checklist 55
    assert loaded.requests_seen() == []


def test_empty_bundle_means_no_matches(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE)
    request["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert cds.call(request).get_json() == {"cards": []}  # checklist 56: no HCC, no card, no error


def test_operation_outcome_in_prefetch_is_not_used_nor_requeried(cds: CdsCaller, loaded: FhirTestServer) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    request = fixture_request(ELIGIBLE, fhir_server=loaded.base)
    request["prefetch"]["observations"] = outcome
    response = cds.call(request)
    assert response.status_code == 200  # checklist 57, 58: a degraded 200 for an optional key
    assert "needed to assess" in summary(response)[0]
    request = fixture_request(ELIGIBLE, fhir_server=loaded.base)
    request["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": outcome, "search": {"mode": "outcome"}}],
    }
    assert_outcome(cds.call(request), 412, "conditions", "error OperationOutcome")  # checklist 57, 58
    assert loaded.requests_seen() == []


@pytest.mark.parametrize("bad", ["Condition?patient=p1", ["x"], {"resourceType": "Patient", "id": "p-elig-icd10"}])
def test_wrong_shaped_prefetch_is_fetched_instead(cds: CdsCaller, loaded: FhirTestServer, bad: Any) -> None:
    request = with_token(fixture_request(ELIGIBLE, fhir_server=loaded.base))
    request["prefetch"]["conditions"] = bad
    response = cds.call(request)
    assert response.status_code == 200 and summary(response)[0].startswith("Consider sorafenib")  # checklist 60
    assert [r["path"].split("?")[0] for r in loaded.requests_seen()] == ["/fhir/Condition"]


def test_wrong_shaped_required_prefetch_without_server_is_412_not_500(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE)
    request["prefetch"]["procedures"] = "not a bundle"
    assert_outcome(cds.call(request), 412, "procedures")  # checklist 60


def test_resources_of_another_patient_are_discarded(cds: CdsCaller) -> None:
    request = fixture_request("na-cholangiocarcinoma")
    other = fixture_bundle(ELIGIBLE)["entry"]
    hcc = next(e["resource"] for e in other if e["resource"]["id"] == "p-elig-icd10-hcc")
    request["prefetch"]["conditions"]["entry"].append({"resource": hcc})
    assert cds.call(request).get_json() == {"cards": []}  # never a card from another patient's record
    request = fixture_request(ELIGIBLE)
    request["prefetch"]["patient"] = {"resourceType": "Patient", "id": "someone-else", "birthDate": "1950-01-01"}
    assert_outcome(cds.call(request), 412, "patient")


def test_template_expansion() -> None:
    request = HookRequest("patient-view", "h", "p-1", "PractitionerRole/role-9", encounter_id=None)
    values = token_values(request)
    assert values["userPractitionerRoleId"] == "role-9" and "userPractitionerId" not in values  # checklist 62
    assert expand("Observation?patient={{context.patientId}}&x={{ context.userId }}", values) == (
        "Observation?patient=p-1&x=PractitionerRole%2Frole-9"
    )  # checklist 62: values URL-encoded
    assert expand("Encounter/{{context.encounterId}}", values) is None  # checklist 63: skipped, never sent with braces
    assert expand("Practitioner/{{userPractitionerId}}", values) is None


def test_fhir_server_not_allowed_for_the_client_gets_no_outbound_call(
    make_app: AppFactory, es384: SigningKey, loaded: FhirTestServer
) -> None:
    from tests.support import EHR_ISSUER

    app = make_app(
        auth={
            "issuers": [{"iss": EHR_ISSUER, "jwks": es384.jwks(), "fhir_servers": ["https://fhir.ehr.example.org/R4"]}]
        }
    )
    caller = CdsCaller(app.test_client(), es384)
    response = caller.call(with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)))
    assert_outcome(response, 412, f"fhirServer {loaded.base} is not allowed for this client")
    assert loaded.requests_seen() == []  # issue #5: the service is not a proxy


def test_no_token_over_plain_http_in_production(
    make_app: AppFactory, es384: SigningKey, loaded: FhirTestServer
) -> None:
    app = make_app(
        profile="production",
        auth={"trust_dev_issuer": False},
        cors={"allowed_origins": []},
        fhir={"allow_plain_http_token": False},
    )
    caller = CdsCaller(app.test_client(), es384)
    response = caller.call(with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)))
    assert_outcome(response, 412, "plain http")  # checklist 65
    assert loaded.requests_seen() == []


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("expires_in", 0, "expired"),  # checklist 69
        ("token_type", "MAC", "not Bearer"),  # checklist 47
        ("subject", "", "lacks subject"),  # checklist 46
    ],
)
def test_unusable_fhir_authorization_is_not_used(
    cds: CdsCaller, loaded: FhirTestServer, field: str, value: Any, why: str
) -> None:
    request = with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base))
    request["fhirAuthorization"][field] = value
    assert_outcome(cds.call(request), 412, why)
    assert loaded.requests_seen() == []


def test_token_type_is_case_insensitive(cds: CdsCaller, loaded: FhirTestServer) -> None:
    request = with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base))
    request["fhirAuthorization"]["token_type"] = "bearer"
    assert cds.call(request).status_code == 200  # checklist 47
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in loaded.requests_seen())


def test_the_token_is_transient(cds: CdsCaller, loaded: FhirTestServer, app: Flask) -> None:
    assert cds.call(with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base))).status_code == 200
    loaded.clear_requests()
    assert cds.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=loaded.base)).status_code == 200
    assert not any(r["hasAuthorization"] for r in loaded.requests_seen())  # checklist 66: not reused
    data_dir = app.extensions["sortace.runtime"].settings.data_path
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path  # checklist 66: not persisted


@pytest.fixture
def paging_fhir() -> Iterator[FhirTestServer]:
    """A second server whose pages hold at most 5 entries, like a HAPI server clamping ``_count``."""
    server = FhirTestServer.start(max_count=5)
    yield server
    server.stop()


def test_several_pages_per_search_are_all_read(cds: CdsCaller, paging_fhir: FhirTestServer) -> None:
    paging_fhir.load(fixture_bundle(ELIGIBLE))
    request = with_token(fixture_request(ELIGIBLE, prefetch="none", fhir_server=paging_fhir.base))
    response = cds.call(request)
    assert response.status_code == 200 and summary(response)[0].startswith("Consider sorafenib")
    pages = [r for r in paging_fhir.requests_seen() if "_getpages=" in r["path"]]
    assert len(pages) >= 4 and all(r["authorization"] == f"Bearer {TOKEN}" for r in pages)


def test_prefetched_first_page_with_a_next_link_is_completed(cds: CdsCaller, paging_fhir: FhirTestServer) -> None:
    import requests

    paging_fhir.load(fixture_bundle(ELIGIBLE))
    first = requests.get(
        f"{paging_fhir.base}/Observation?patient=p-elig-icd10&_sort=-date&_count=200",
        headers={"Accept": "application/fhir+json"},
        timeout=10,
    ).json()
    assert any(link["relation"] == "next" for link in first["link"])
    paging_fhir.clear_requests()
    request = with_token(fixture_request(ELIGIBLE, fhir_server=paging_fhir.base))
    request["prefetch"]["observations"] = first  # what the CDS Hooks Sandbox sends: the first page only
    response = cds.call(request)
    assert response.status_code == 200 and summary(response)[0].startswith("Consider sorafenib")  # checklist 59
    assert all("_getpages=" in r["path"] for r in paging_fhir.requests_seen())


def test_expired_paging_state_restarts_the_search_once(cds: CdsCaller, paging_fhir: FhirTestServer) -> None:
    paging_fhir.load(fixture_bundle(ELIGIBLE))
    stale = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [],
        "link": [{"relation": "next", "url": f"{paging_fhir.base}?_getpages=expired-id&_getpagesoffset=5&_count=5"}],
    }
    request = with_token(fixture_request(ELIGIBLE, fhir_server=paging_fhir.base))
    request["prefetch"]["observations"] = stale
    response = cds.call(request)
    assert response.status_code == 200 and summary(response)[0].startswith("Consider sorafenib")
    paths = [r["path"] for r in paging_fhir.requests_seen()]
    assert "expired-id" in paths[0] and paths[1].startswith("/fhir/Observation?")  # 410, then the search again


def test_next_link_to_another_origin_is_not_followed(cds: CdsCaller) -> None:
    other = KeyServer()
    try:
        request = with_token(fixture_request(ELIGIBLE, fhir_server="http://127.0.0.1:9/fhir"))
        request["prefetch"]["medicationRequests"]["link"] = [
            {"relation": "next", "url": f"{other.url}/fhir?_getpages=abc&_getpagesoffset=20"}
        ]
        response = cds.call(request)
        assert other.hits == []  # checklist 68: not followed, the token never leaves the fhirServer origin
        assert response.status_code == 200
        assert "Medication history" in response.get_json()["cards"][0]["detail"]  # incomplete: asks, never eligible
    finally:
        other.close()
