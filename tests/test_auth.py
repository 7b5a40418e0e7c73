"""JWT client authentication on discovery, service and feedback (checklist G 115-137)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from tests.conftest import AppFactory, CdsCaller
from tests.support import EHR_ISSUER, EPIC_ISSUER, PUBLIC_BASE, SERVICE_ID, SigningKey, fixture_request

DISCOVERY = "/cds-services"
SERVICE = f"/cds-services/{SERVICE_ID}"
FEEDBACK = f"{SERVICE}/feedback"
ENDPOINTS = [DISCOVERY, SERVICE, FEEDBACK]
SPEC = json.loads((Path(__file__).parent / "data" / "spec-jwt-example.json").read_text())


def body_for(path: str) -> Any:
    if path == SERVICE:
        return fixture_request("na-cholangiocarcinoma")
    if path == FEEDBACK:
        return {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z"}]}
    return None


def call(client: FlaskClient, path: str, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if path == DISCOVERY:
        return client.get(path, headers=headers)
    return client.post(path, json=body_for(path), headers=headers)


def assert_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.get_json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "Authentication required"}],
    }  # checklist 116: the same minimal body for every failure
    assert response.headers["WWW-Authenticate"] == "Bearer"


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)])


def claims(path: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": EHR_ISSUER,
        "aud": PUBLIC_BASE + path,
        "iat": now,
        "exp": now + 300,
        "jti": f"j-{time.time_ns()}",
        **extra,
    }


@pytest.mark.parametrize("path", ENDPOINTS)
# Every test below runs on discovery (checklist 29), the service and feedback (checklist 114).
def test_es384_and_rs384_tokens_are_accepted_on_every_endpoint(
    client: FlaskClient, es384: SigningKey, rs384: SigningKey, path: str
) -> None:
    assert call(client, path, es384.token(PUBLIC_BASE + path, EHR_ISSUER)).status_code == 200  # checklist 119
    epic = rs384.token(
        PUBLIC_BASE + path,
        EPIC_ISSUER,
        nbf=int(time.time()) - 300,
        sub="client-id-123",
        lifetime=900,
        **{"com.epic.vendor": "x"},
    )
    assert call(client, path, epic).status_code == 200  # checklist 119, 133: nbf, sub, vendor claims accepted


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_token_is_401(client: FlaskClient, path: str) -> None:
    assert_401(call(client, path, None))  # checklist 115
    assert_401(
        client.open(
            path, method="GET" if path == DISCOVERY else "POST", headers={"Authorization": "Basic dXNlcjpwYXNz"}
        )
    )


@pytest.mark.parametrize("path", ENDPOINTS)
def test_alg_none_and_symmetric_algorithms_are_rejected(client: FlaskClient, es384: SigningKey, path: str) -> None:
    assert_401(
        call(client, path, unsigned({"alg": "none", "typ": "JWT", "kid": es384.kid}, claims(path)))
    )  # checklist 117
    # The classic confusion attack: HMAC keyed with the issuer's *public* key.
    secret = json.dumps(es384.public_jwk).encode()
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        head = {"alg": alg, "typ": "JWT", "kid": es384.kid}
        signing_input = unsigned(head, claims(path)).rsplit(".", 1)[0]
        signature = hmac.new(secret, signing_input.encode(), digest).digest()
        assert_401(call(client, path, unsigned(head, claims(path), signature)))  # checklist 118


@pytest.mark.parametrize("path", ENDPOINTS)
def test_kid_missing_or_unknown_is_rejected(client: FlaskClient, es384: SigningKey, path: str) -> None:
    no_kid = jwt.encode(claims(path), es384.pem, algorithm="ES384", headers={"typ": "JWT"})
    assert "kid" not in jwt.get_unverified_header(no_kid)
    assert_401(call(client, path, no_kid))  # checklist 120
    assert_401(call(client, path, es384.token(PUBLIC_BASE + path, EHR_ISSUER, headers={"kid": "other-kid"})))


@pytest.mark.parametrize("path", ENDPOINTS)
def test_typ_other_than_jwt_is_rejected_and_absent_typ_accepted(
    client: FlaskClient, es384: SigningKey, path: str
) -> None:
    assert_401(
        call(client, path, es384.token(PUBLIC_BASE + path, EHR_ISSUER, headers={"typ": "at+jwt"}))
    )  # checklist 121
    without = jwt.encode(claims(path), es384.pem, algorithm="ES384", headers={"kid": es384.kid, "typ": None})
    assert "typ" not in jwt.get_unverified_header(without)
    assert call(client, path, without).status_code == 200


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_each_required_claim_is_required(client: FlaskClient, es384: SigningKey, path: str, claim: str) -> None:
    assert_401(call(client, path, es384.token(PUBLIC_BASE + path, EHR_ISSUER, drop=(claim,))))  # checklist 122


@pytest.mark.parametrize("path", ENDPOINTS)
def test_unknown_issuer_is_rejected(client: FlaskClient, path: str) -> None:
    stranger = SigningKey("ES384")
    assert_401(call(client, path, stranger.token(PUBLIC_BASE + path, "https://unknown.example.org")))  # checklist 123
    # A known issuer name does not help a key that issuer does not have.
    assert_401(call(client, path, stranger.token(PUBLIC_BASE + path, EHR_ISSUER, headers={"kid": "x"})))


@pytest.mark.parametrize("path", ENDPOINTS)
def test_aud_must_be_the_exact_public_url_of_the_endpoint(client: FlaskClient, es384: SigningKey, path: str) -> None:
    other = SERVICE if path != SERVICE else DISCOVERY
    assert_401(call(client, path, es384.token(PUBLIC_BASE + other, EHR_ISSUER)))  # checklist 125
    assert_401(call(client, path, es384.token("http://localhost" + path, EHR_ISSUER)))  # what Flask sees: not it
    assert_401(call(client, path, es384.token(PUBLIC_BASE + path + "/", EHR_ISSUER)))
    assert call(client, path, es384.token([PUBLIC_BASE + path], EHR_ISSUER)).status_code == 200  # checklist 126
    assert call(client, path, es384.token(["urn:x", PUBLIC_BASE + path], EHR_ISSUER)).status_code == 200


def test_configured_audience_alias_is_accepted_for_that_issuer_only(
    client: FlaskClient, es384: SigningKey, rs384: SigningKey
) -> None:
    assert (
        call(client, SERVICE, rs384.token("urn:epic:fixed-audience", EPIC_ISSUER)).status_code == 200
    )  # checklist 148
    assert_401(call(client, SERVICE, es384.token("urn:epic:fixed-audience", EHR_ISSUER)))


@pytest.mark.parametrize("path", ENDPOINTS)
def test_time_claims_with_leeway(client: FlaskClient, es384: SigningKey, path: str) -> None:
    now = int(time.time())
    aud = PUBLIC_BASE + path
    assert_401(call(client, path, es384.token(aud, EHR_ISSUER, iat=now - 400, exp=now - 100)))  # checklist 127
    assert call(client, path, es384.token(aud, EHR_ISSUER, iat=now - 300, exp=now - 10)).status_code == 200  # leeway
    assert_401(call(client, path, es384.token(aud, EHR_ISSUER, nbf=now + 600)))  # checklist 128
    assert_401(call(client, path, es384.token(aud, EHR_ISSUER, iat=now + 600, exp=now + 900)))  # checklist 129
    assert_401(call(client, path, es384.token(aud, EHR_ISSUER, exp=now + 7200)))  # 129: lifetime over one hour


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_replayed_token_is_rejected(client: FlaskClient, es384: SigningKey, path: str) -> None:
    token = es384.token(PUBLIC_BASE + path, EHR_ISSUER)
    assert call(client, path, token).status_code == 200
    assert_401(call(client, path, token))  # checklist 130


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_tampered_token_is_rejected(client: FlaskClient, es384: SigningKey, path: str) -> None:
    header, payload, signature = es384.token(PUBLIC_BASE + path, EHR_ISSUER).split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["iss"] = EHR_ISSUER
    forged["sub"] = "admin"
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert_401(call(client, path, f"{header}.{body}.{signature}"))  # checklist 132


def test_tenant_allowlist(make_app: AppFactory, es384: SigningKey) -> None:
    app = make_app(
        auth={
            "issuers": [
                {
                    "iss": EHR_ISSUER,
                    "jwks": es384.jwks(),
                    "tenants": ["tenant-a"],
                    "fhir_servers": ["http://127.0.0.1:*"],
                }
            ]
        }
    )
    client = app.test_client()
    aud = PUBLIC_BASE + DISCOVERY
    assert call(client, DISCOVERY, es384.token(aud, EHR_ISSUER, tenant="tenant-a")).status_code == 200
    assert_401(call(client, DISCOVERY, es384.token(aud, EHR_ISSUER, tenant="tenant-b")))  # checklist 131
    assert_401(call(client, DISCOVERY, es384.token(aud, EHR_ISSUER)))


def test_spec_example_token_verifies_with_the_spec_jwks_but_is_expired(
    make_app: AppFactory,
) -> None:
    key = jwt.PyJWK(SPEC["jwks"]["keys"][0])  # the same key handling the service uses
    decoded = jwt.decode(
        SPEC["token"],
        key.key,
        algorithms=["ES384"],
        options={"verify_exp": False},
        audience="https://cds.example.org/cds-services/some-service",
    )
    assert decoded["iss"] == "https://fhir-ehr.example.com/"  # checklist 137: the signature verifies
    app = make_app(
        auth={
            "issuers": [{"iss": "https://fhir-ehr.example.com/", "jwks": SPEC["jwks"], "audiences": [decoded["aud"]]}]
        }
    )
    assert_401(app.test_client().get(DISCOVERY, headers={"Authorization": f"Bearer {SPEC['token']}"}))  # expired


class KeyServer:
    """A real HTTP server publishing JWK Sets, recording every request it gets."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, Any]] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                body = json.dumps(server.sets.get(self.path, {"keys": []})).encode()
                self.send_response(200 if self.path in server.sets else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


def test_unlisted_jku_is_rejected_before_any_fetch(
    client: FlaskClient, es384: SigningKey, key_server: KeyServer
) -> None:
    key_server.sets["/evil.json"] = es384.jwks()
    token = es384.token(PUBLIC_BASE + DISCOVERY, EHR_ISSUER, headers={"jku": key_server.url + "/evil.json"})
    assert_401(call(client, DISCOVERY, token))  # checklist 124
    assert key_server.hits == []  # never fetched


def test_allowlisted_jku_keys_are_fetched_cached_and_rotated(make_app: AppFactory, key_server: KeyServer) -> None:
    first, second = SigningKey("ES384", kid="k1"), SigningKey("RS384", kid="k2")
    jku = key_server.url + "/jwks.json"
    key_server.sets["/jwks.json"] = first.jwks()
    app = make_app(
        auth={
            "jwks_refresh_cooldown_seconds": 0,
            "issuers": [{"iss": EHR_ISSUER, "jku_allowlist": [jku], "fhir_servers": ["http://127.0.0.1:*"]}],
        }
    )
    client = app.test_client()
    aud = PUBLIC_BASE + DISCOVERY
    assert call(client, DISCOVERY, first.token(aud, EHR_ISSUER, headers={"jku": jku})).status_code == 200
    assert call(client, DISCOVERY, first.token(aud, EHR_ISSUER, headers={"jku": jku})).status_code == 200
    assert key_server.hits == ["/jwks.json"]  # checklist 134: cached
    key_server.sets["/jwks.json"] = {"keys": [first.public_jwk, second.public_jwk]}  # the client rotates keys
    assert call(client, DISCOVERY, second.token(aud, EHR_ISSUER, headers={"jku": jku})).status_code == 200
    assert key_server.hits == ["/jwks.json", "/jwks.json"]  # refetched once for the new kid


def test_unknown_kid_refetch_is_rate_limited(make_app: AppFactory, key_server: KeyServer) -> None:
    known = SigningKey("ES384", kid="k1")
    key_server.sets["/jwks.json"] = known.jwks()
    jwks_url = key_server.url + "/jwks.json"
    app = make_app(
        auth={
            "jwks_refresh_cooldown_seconds": 300,
            "issuers": [{"iss": EHR_ISSUER, "jwks_url": jwks_url, "fhir_servers": ["http://127.0.0.1:*"]}],
        }
    )
    client = app.test_client()
    aud = PUBLIC_BASE + DISCOVERY
    assert call(client, DISCOVERY, known.token(aud, EHR_ISSUER)).status_code == 200
    for n in range(5):
        assert_401(call(client, DISCOVERY, known.token(aud, EHR_ISSUER, headers={"kid": f"made-up-{n}"})))
    assert key_server.hits == ["/jwks.json"]  # checklist 134: no refetch flood within the cooldown


def test_sandbox_style_token_with_its_own_jwks_url_as_jku(make_app: AppFactory, key_server: KeyServer) -> None:
    sandbox = SigningKey("ES384", kid="44823f3d-0b01-4a6c-a80e-b9d3e8a7226f")
    key_server.sets["/.well-known/jwks.json"] = sandbox.jwks()
    jwks_url = key_server.url + "/.well-known/jwks.json"
    app = make_app(auth={"issuers": [{"iss": "https://sandbox.cds-hooks.org", "jwks_url": jwks_url}]})
    token = sandbox.token(PUBLIC_BASE + DISCOVERY, "https://sandbox.cds-hooks.org", headers={"jku": jwks_url})
    assert call(app.test_client(), DISCOVERY, token).status_code == 200


def test_cds_caller_helper_signs_for_the_exact_url(cds: CdsCaller) -> None:
    assert cds.discover().status_code == 200
