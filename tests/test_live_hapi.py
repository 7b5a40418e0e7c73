"""Opt-in: the fixture patients against a live HAPI FHIR server (the public sandbox or your own HAPI).

    .venv/bin/pytest -m live_hapi --fhir-server http://hapi.fhir.org/baseR4

Skipped unless ``--fhir-server`` is given. It uploads the fixture patients (dates moved to today, client ids),
then runs the hook without prefetch, the service fetching everything through HAPI's paging, searches re-read with
``Cache-Control: no-cache``.
"""

from __future__ import annotations

import json

import pytest
import requests

from cds.fixtures import transaction
from tests.conftest import AppFactory
from tests.support import EHR_ISSUER, SigningKey, fixture_bundle, fixture_expectation, fixture_request

pytestmark = pytest.mark.live_hapi
NAMES = ["eligible-icd10-loinc", "eligible-chinese-text", "info-many-missing", "na-pvtt", "na-hcc-entered-in-error"]


@pytest.fixture(scope="module")
def hapi(request: pytest.FixtureRequest) -> str:
    base = request.config.getoption("--fhir-server")
    if not base:
        pytest.skip("live HAPI tests need --fhir-server URL")
    base = str(base).rstrip("/")
    for name in NAMES:
        response = requests.post(
            base,
            data=json.dumps(transaction(fixture_bundle(name))),
            timeout=120,
            headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
        )
        assert response.status_code == 200, response.text[:500]
    requests.get(f"{base}/Observation?_count=1", headers={"Cache-Control": "no-cache"}, timeout=60)
    return base


@pytest.mark.parametrize("name", NAMES)
def test_fixture_outcome_through_hapi_without_prefetch(
    hapi: str, make_app: AppFactory, es384: SigningKey, name: str
) -> None:
    from tests.conftest import CdsCaller

    app = make_app(
        auth={"issuers": [{"iss": EHR_ISSUER, "jwks": es384.jwks(), "fhir_servers": [hapi]}]},
        fhir={"deadline_seconds": 20.0, "connect_timeout_seconds": 5.0},
    )
    response = CdsCaller(app.test_client(), es384).call(fixture_request(name, prefetch="none", fhir_server=hapi))
    assert response.status_code == 200, response.get_data(as_text=True)
    expect = fixture_expectation(name)
    cards = response.get_json()["cards"]
    assert len(cards) == (0 if expect["outcome"] == "not-applicable" else 1)
