"""No credential or JWT in logs, error bodies or the database (issue #5 item 5; checklist 67, 135).

The whole run is scanned at the end (``pytest_sessionfinish`` in conftest): every JWT the tests signed and every
EHR access token they sent is looked for in every log line and in the logs of served processes. These tests show
that the scan can fail, and exercise the paths where a credential is most likely to slip into a log.
"""

from __future__ import annotations

import json
import logging

import pytest

from cds.logs import JsonFormatter, redact
from tests.conftest import CAPTURED_LOGS, CdsCaller
from tests.support import EHR_ISSUER, PUBLIC_BASE, SigningKey, fixture_request, leaked, secret


def test_the_scan_finds_a_planted_credential() -> None:
    token = secret("planted-credential-7731")
    assert leaked([f"some line with {token} in it"]) == [token]
    assert leaked(["a clean line"]) == []


def test_rejected_tokens_are_not_logged(cds: CdsCaller, es384: SigningKey) -> None:
    stranger = SigningKey("ES384")
    bad = [
        stranger.token(PUBLIC_BASE + "/cds-services", EHR_ISSUER),
        es384.token(PUBLIC_BASE + "/elsewhere", EHR_ISSUER),
        es384.token(PUBLIC_BASE + "/cds-services", EHR_ISSUER, lifetime=-600),
    ]
    before = len(CAPTURED_LOGS)
    for token in bad:
        assert cds.client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    lines = CAPTURED_LOGS[before:]
    assert len([line for line in lines if "authentication failed" in line]) == 3
    assert leaked(lines) == []


def test_fhir_access_token_is_not_logged_or_echoed(cds: CdsCaller) -> None:
    token = secret("access-token-that-must-stay-secret")
    request = fixture_request(
        "eligible-icd10-loinc", prefetch="none", fhir_server="http://127.0.0.1:9/fhir", access_token=token
    )
    before = len(CAPTURED_LOGS)
    response = cds.call(request)
    assert response.status_code == 412
    assert token not in response.get_data(as_text=True)
    assert leaked(CAPTURED_LOGS[before:]) == []


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer abc.def.ghi",
        "token eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl here",
    ],
)
def test_the_formatter_masks_credentials_that_reach_it(line: str) -> None:
    record = logging.LogRecord("cds.test", logging.INFO, __file__, 1, line, None, None)
    formatted = json.loads(JsonFormatter().format(record))["msg"]
    assert "abc.def.ghi" not in formatted and "c2lnbmF0dXJl" not in formatted
    assert redact(line) != line
