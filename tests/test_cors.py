"""CORS for browser clients such as the CDS Hooks Sandbox (checklist H 138-140)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import AppFactory, SettingsFactory
from tests.support import SERVICE_ID

PATHS = ["/cds-services", f"/cds-services/{SERVICE_ID}", f"/cds-services/{SERVICE_ID}/feedback"]
SANDBOX = "https://sandbox.cds-hooks.org"
PREFLIGHT = {
    "Origin": SANDBOX,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.mark.parametrize("path", PATHS)
def test_preflight_needs_no_jwt_and_allows_authorization_and_content_type(client: FlaskClient, path: str) -> None:
    response = client.options(path, headers=PREFLIGHT)
    assert response.status_code == 204  # checklist 138: no JWT required
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # development profile
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "OPTIONS"} <= methods  # checklist 139
    headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= headers  # checklist 139
    assert "Access-Control-Allow-Credentials" not in response.headers  # checklist 140


def test_actual_responses_carry_the_allowed_origin_even_401(client: FlaskClient) -> None:
    response = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # checklist 139: the browser can read the error
    assert "Access-Control-Allow-Credentials" not in response.headers  # checklist 140


def test_configured_origins_only(make_app: AppFactory) -> None:
    client = make_app(cors={"allowed_origins": [SANDBOX]}).test_client()
    allowed = client.options("/cds-services", headers=PREFLIGHT)
    assert allowed.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert "Origin" in allowed.headers["Vary"]
    other = client.options("/cds-services", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert other.status_code == 204
    assert "Access-Control-Allow-Origin" not in other.headers  # the browser blocks the call


def test_star_origin_is_refused_in_production(settings_factory: SettingsFactory) -> None:
    from cds.settings import SettingsError

    with pytest.raises(SettingsError, match="only in the development profile"):
        settings_factory(
            profile="production",
            cors={"allowed_origins": ["*"]},
            auth={"trust_dev_issuer": False},
            fhir={"allow_plain_http_token": False},
        )


def test_private_network_preflight_from_the_sandbox_to_localhost(client: FlaskClient) -> None:
    response = client.options("/cds-services", headers={**PREFLIGHT, "Access-Control-Request-Private-Network": "true"})
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"
    plain = client.options("/cds-services", headers=PREFLIGHT)
    assert "Access-Control-Allow-Private-Network" not in plain.headers
