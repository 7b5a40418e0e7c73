"""Regression tests for the defects a security review found: each one reproduced, each one fixed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds.server import check_bind
from cds.settings import SettingsError, load_settings
from cds.urls import server_allowed
from tests.conftest import AppFactory, CdsCaller, SettingsFactory
from tests.support import (
    EHR_ISSUER,
    PUBLIC_BASE,
    FhirTestServer,
    SigningKey,
    StubServer,
    fixture_bundle,
    fixture_request,
)
from tests.test_service_requests import assert_outcome

ELIGIBLE = "eligible-icd10-loinc"
JSON = {"Content-Type": "application/fhir+json"}


def bundle(resources: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        }
    ).encode()


@pytest.fixture
def record_server() -> Iterator[StubServer]:
    """Serves the eligible fixture patient, setting a session cookie on every answer."""
    record = fixture_bundle(ELIGIBLE)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in record["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])

    def answer(path: str) -> tuple[int, dict[str, str], list[bytes], float]:
        resource_type = path.split("/fhir/")[1].split("?")[0].split("/")[0]
        headers = {**JSON, "Set-Cookie": "JSESSIONID=first-callers-session; Path=/"}
        if "?" not in path:
            return 200, headers, [json.dumps(by_type[resource_type][0]).encode()], 0
        return 200, headers, [bundle(by_type.get(resource_type, []))], 0

    server = StubServer(answer)
    yield server
    server.close()


def test_a_token_cannot_be_replayed_inside_the_leeway(client: FlaskClient, es384: SigningKey) -> None:
    now = int(time.time())
    token = es384.token(PUBLIC_BASE + "/cds-services", EHR_ISSUER, iat=now - 290, exp=now - 10)  # within leeway
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/cds-services", headers=headers).status_code == 200
    assert client.get("/cds-services", headers=headers).status_code == 401


@pytest.mark.parametrize("header", [{"alg": ["ES384"]}, {"alg": {"x": 1}}, {"alg": "RS384"}])
def test_odd_or_mismatched_alg_is_401_not_500(client: FlaskClient, es384: SigningKey, header: dict[str, Any]) -> None:
    import base64

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": EHR_ISSUER, "aud": PUBLIC_BASE + "/cds-services", "iat": now, "exp": now + 60, "jti": "j"}
    token = f"{b64({**header, 'kid': es384.kid, 'typ': 'JWT'})}.{b64(claims)}.c2ln"
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_cookies_from_a_fhir_server_are_never_sent_back(cds: CdsCaller, record_server: StubServer) -> None:
    for token in ("token-of-user-a", "token-of-user-b"):
        request = fixture_request(ELIGIBLE, prefetch="none", fhir_server=record_server.base, access_token=token)
        assert cds.call(request).status_code == 200
    assert record_server.requests and not any("Cookie" in r["headers"] for r in record_server.requests)


def test_pathological_text_costs_bounded_time(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE)
    request["prefetch"]["conditions"]["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "id": "x",
                "subject": {"reference": "Patient/p-elig-icd10"},
                "code": {"text": "metasta" * 40_000},
            }
        }
    )
    started = time.monotonic()
    assert cds.call(request).status_code == 200
    assert time.monotonic() - started < 3


def test_a_server_dripping_bytes_is_cut_off_and_frees_the_threads(
    make_app: AppFactory, es384: SigningKey, fhir: FhirTestServer
) -> None:
    drip = StubServer(lambda path: (200, JSON, [b"{"] + [b" "] * 200 + [b"}"], 0.05))  # 10 s for one body
    try:
        app = make_app(fhir={"deadline_seconds": 0.5, "pool_size": 4})
        caller = CdsCaller(app.test_client(), es384)
        for _ in range(3):
            started = time.monotonic()
            response = caller.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=drip.base))
            assert_outcome(response, 412, "deadline")
            assert time.monotonic() - started < 1.5
        fhir.load(fixture_bundle(ELIGIBLE))  # another call, another server: the pool must be free again
        time.sleep(0.3)
        started = time.monotonic()
        assert caller.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=fhir.base)).status_code == 200
        assert time.monotonic() - started < 1.5
    finally:
        drip.close()


def test_an_oversized_answer_is_refused(make_app: AppFactory, es384: SigningKey) -> None:
    big = StubServer(lambda path: (200, JSON, [b'{"resourceType": "Bundle", "x": "' + b"a" * 5000 + b'"}'], 0))
    try:
        app = make_app(fhir={"max_response_bytes": 1000})
        response = CdsCaller(app.test_client(), es384).call(
            fixture_request(ELIGIBLE, prefetch="none", fhir_server=big.base)
        )
        assert_outcome(response, 412, "larger than 1000 bytes")
    finally:
        big.close()


def test_a_server_answering_absurd_json_is_412(cds: CdsCaller) -> None:
    deep = StubServer(lambda path: (200, JSON, [b"[" * 100_000], 0))
    try:
        assert_outcome(cds.call(fixture_request(ELIGIBLE, prefetch="none", fhir_server=deep.base)), 412, "invalid JSON")
    finally:
        deep.close()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[" * 100_000, "nesting too deep"),
        ('{"hook": "patient-view", "n": ' + "9" * 5000 + "}", "non-standard number"),
        ('{"hook": "patient-view", "n": NaN}', "non-standard number"),
    ],
)
def test_absurd_json_bodies_are_400(cds: CdsCaller, body: str, fragment: str) -> None:
    assert_outcome(cds.post_raw("/cds-services/sor-tace-recurrent-hcc", body), 400, fragment)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("fhirServer", "http://[::1/fhir", "not allowed"),
        ("fhirServer", "http://127.0.0.1:9/fhir/../admin", "not allowed"),
        ("fhirServer", "http://127.0.0.1:9/fhir/%2e%2e/admin", "not allowed"),
        ("fhirServer", "http://user:pw@127.0.0.1:9/fhir", "not allowed"),
    ],
)
def test_odd_fhir_server_urls_are_refused_without_a_call(cds: CdsCaller, field: str, value: str, fragment: str) -> None:
    request = fixture_request(ELIGIBLE, prefetch="none")
    request[field] = value
    assert_outcome(cds.call(request), 412, fragment)


def test_fhir_server_with_a_query_is_400(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE, prefetch="none")
    request["fhirServer"] = "http://127.0.0.1:9/fhir?tenant=x"
    assert_outcome(cds.call(request), 400, "fhirServer")


@pytest.mark.parametrize("patient", ["..", "."])
def test_dot_ids_are_400(cds: CdsCaller, patient: str) -> None:
    request = fixture_request(ELIGIBLE)
    request["context"]["patientId"] = patient
    assert_outcome(cds.call(request), 400, "context.patientId")


def test_allowlist_rules() -> None:
    allowed = ("https://ehr.example.org/fhir", "http://127.0.0.1:*")
    assert server_allowed("https://ehr.example.org/fhir", allowed)
    assert server_allowed("https://ehr.example.org/fhir/", allowed)
    assert server_allowed("https://EHR.example.org:443/fhir", allowed)
    assert server_allowed("http://127.0.0.1:8081/fhir", allowed)
    for bad in (
        "https://ehr.example.org/fhirx",
        "https://ehr.example.org/",
        "https://ehr.example.org:8443/fhir",
        "http://ehr.example.org/fhir",
        "https://ehr.example.org.evil.net/fhir",
        "http://[::1",
        "ftp://x/",
        "https://ehr.example.org/fhir/../admin",
        "https://u@ehr.example.org/fhir",
        "http://127.0.0.1:99999/",
    ):
        assert not server_allowed(bad, allowed), bad
    assert not server_allowed("http://127.0.0.1:8081/fhir?x=1", allowed)
    assert server_allowed("http://127.0.0.1:8081/fhir?_getpages=1", allowed, allow_query=True)


def test_next_link_to_another_path_on_the_same_host_is_not_followed(cds: CdsCaller, record_server: StubServer) -> None:
    request = fixture_request(ELIGIBLE, fhir_server=record_server.base, access_token="token-x")
    host = record_server.base.rsplit("/fhir", 1)[0]
    request["prefetch"]["medicationRequests"]["link"] = [{"relation": "next", "url": f"{host}/admin/export?page=2"}]
    response = cds.call(request)
    assert response.status_code == 200 and "Medication history" in response.get_json()["cards"][0]["detail"]
    assert record_server.requests == []


@pytest.mark.parametrize(("field", "value"), [("access_token", '"t€"'), ("expires_in", "1e400")])
def test_unusable_tokens_are_not_sent(cds: CdsCaller, record_server: StubServer, field: str, value: str) -> None:
    request = fixture_request(ELIGIBLE, prefetch="none", fhir_server=record_server.base, access_token="token-y")
    request["fhirAuthorization"][field] = "PLACEHOLDER"
    body = json.dumps(request, ensure_ascii=False).replace('"PLACEHOLDER"', value)  # 1e400 parses as infinity
    assert cds.post_raw("/cds-services/sor-tace-recurrent-hcc", body.encode()).status_code == 412
    assert record_server.requests == []


def test_resources_without_ids_are_all_kept(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE)
    subject = {"reference": "Patient/p-elig-icd10"}
    for code in ("Z94.4", "R18.8"):
        request["prefetch"]["conditions"]["entry"].append(
            {
                "resource": {
                    "resourceType": "Condition",
                    "subject": subject,
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
                }
            }
        )
    assert cds.call(request).get_json() == {"cards": []}  # transplant status kept, not collapsed with ascites


def test_a_resource_with_an_unknown_contained_type_is_left_out(cds: CdsCaller) -> None:
    request = fixture_request(ELIGIBLE)
    request["prefetch"]["medicationRequests"]["entry"].append(
        {
            "resource": {
                "resourceType": "MedicationRequest",
                "id": "odd",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/p-elig-icd10"},
                "medicationReference": {"reference": "#m"},
                "contained": [{"resourceType": "Foo", "id": "m"}],
            }
        }
    )
    assert cds.call(request).status_code == 200


@pytest.mark.parametrize(
    "item",
    [
        {"card": "a" * 300, "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"},
        {"card": "a\u0000b", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"},
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "9999-12-31T23:59:59-23:59"},
        {
            "card": "c",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-24T10:00:00Z",
            "overrideReason": {"reason": {"code": "x" * 300}},
        },
    ],
)
def test_feedback_values_a_database_cannot_hold_are_400(cds: CdsCaller, item: dict[str, Any]) -> None:
    assert cds.feedback({"feedback": [item]}).status_code == 400


def test_feedback_batches_are_limited(cds: CdsCaller) -> None:
    items = [{"card": f"c{i}", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"} for i in range(501)]
    assert_outcome(cds.feedback({"feedback": items}), 400, "at most 500 items")


@pytest.mark.parametrize("jti", ["j" * 300, "a\u0000b"])
def test_unusable_jti_is_401(client: FlaskClient, es384: SigningKey, jti: str) -> None:
    token = es384.token(PUBLIC_BASE + "/cds-services", EHR_ISSUER, jti=jti)
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_jwks_without_a_key_list_means_no_keys(make_app: AppFactory, es384: SigningKey) -> None:
    app = make_app(auth={"issuers": [{"iss": EHR_ISSUER, "jwks": {"keys": None}}]})
    token = es384.token(PUBLIC_BASE + "/cds-services", EHR_ISSUER)
    assert app.test_client().get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_production_requires_https_key_sets_and_a_shared_ledger_key(settings_factory: SettingsFactory) -> None:
    production: dict[str, Any] = {
        "profile": "production",
        "cors": {"allowed_origins": []},
        "fhir": {"allow_plain_http_token": False, "allow_unauthenticated": False},
    }
    with pytest.raises(SettingsError, match="must be https in production"):
        settings_factory(
            **production,
            auth={
                "trust_dev_issuer": False,
                "issuers": [{"iss": "https://ehr.example.org", "jwks_url": "http://ehr.example.org/jwks.json"}],
            },
        )
    with pytest.raises(SettingsError, match="patient_hash_key"):
        settings_factory(
            **production, auth={"trust_dev_issuer": False}, feedback={"database_url": "postgresql://cds@db/cds"}
        )
    settings_factory(
        **production,
        auth={"trust_dev_issuer": False},
        feedback={"database_url": "postgresql://cds@db/cds", "patient_hash_key": "k"},
    )


@pytest.mark.parametrize(
    "issuer",
    [
        {"iss": "https://sandbox.cds-hooks.org/", "jwks_url": "https://sandbox.cds-hooks.org/.well-known/jwks.json"},
        {"iss": "urn:my-sandbox", "jwks_url": "https://sandbox.cds-hooks.org/.well-known/jwks.json"},
    ],
)
def test_the_sandbox_key_is_recognised_however_it_is_named(issuer: dict[str, str]) -> None:
    settings = load_settings(environ={}, overrides={"server": {"host": "0.0.0.0"}, "auth": {"issuers": [issuer]}})
    with pytest.raises(SettingsError, match="Sandbox's private key is public"):
        check_bind(settings)
