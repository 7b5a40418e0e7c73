"""``sortace-cds serve`` as a real process: gunicorn workers, real HTTP, shutdown, and durability under SIGKILL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cds.store.sql import SqlStore
from tests.support import (
    EHR_ISSUER,
    SERVICE_ID,
    LiveService,
    SigningKey,
    fixture_request,
    free_port,
    signed,
    write_config,
)


@pytest.fixture
def live(tmp_path: Path, es384: SigningKey) -> Iterator[LiveService]:
    port = free_port()
    service = LiveService(write_config(tmp_path, port, es384), tmp_path / "data", port, tmp_path / "serve.log")
    service.start()
    yield service
    service.stop()


def test_the_service_answers_over_real_http(live: LiveService, es384: SigningKey) -> None:
    base, service = live.base, f"/cds-services/{SERVICE_ID}"
    discovery = requests.get(base + "/cds-services", headers=signed(es384, base, "/cds-services"), timeout=10)
    assert discovery.status_code == 200 and discovery.headers["Content-Type"].startswith("application/json")
    assert discovery.json()["services"][0]["id"] == SERVICE_ID  # checklist 13, 14, 19
    response = requests.post(
        base + service,
        data=json.dumps(fixture_request("eligible-icd10-loinc")),
        headers=signed(es384, base, service),
        timeout=10,
    )
    assert response.status_code == 200
    card = response.json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-24T10:00:00Z",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            }
        ]
    }
    stored = requests.post(
        base + service + "/feedback",
        data=json.dumps(feedback),
        headers=signed(es384, base, service + "/feedback"),
        timeout=10,
    )
    assert stored.status_code == 200 and stored.json() == {"stored": 1, "duplicates": 0}
    bad = requests.post(base + service, data="{", headers=signed(es384, base, service), timeout=10)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok"}


def test_a_token_replayed_to_another_worker_is_rejected(live: LiveService, es384: SigningKey) -> None:
    path = "/cds-services"
    headers = signed(es384, live.base, path)
    statuses = []
    for _ in range(6):  # new connections: the two workers share the calls
        with requests.Session() as session:
            statuses.append(session.get(live.base + path, headers=headers, timeout=10).status_code)
    assert statuses == [200, 401, 401, 401, 401, 401]  # checklist 130 across processes


def test_logs_are_json_lines_without_the_jwt(live: LiveService, es384: SigningKey) -> None:
    headers = signed(es384, live.base, "/cds-services")
    token = headers["Authorization"].split()[1]
    requests.get(live.base + "/cds-services", headers=headers, timeout=10)
    requests.get(live.base + "/cds-services", headers=headers, timeout=10)  # replayed: logged as a failure
    live.stop()
    lines = [line for line in live.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r.get("logger") == "access" and r.get("status") == "200" for r in records)
    assert any(r.get("reason") == "replayed jti" and r.get("issuer") == EHR_ISSUER for r in records)
    assert token not in live.log.read_text()  # checklist 135


def test_sigterm_shuts_down_gracefully(live: LiveService) -> None:
    started = time.monotonic()
    assert live.stop() == 0
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("SORTACE_AUTH__MODE=off", "auth is off: refusing to listen on 0.0.0.0"),
        (
            'SORTACE_AUTH__ISSUERS=[{iss = "https://sandbox.cds-hooks.org", jwks_url = '
            '"https://sandbox.cds-hooks.org/.well-known/jwks.json"}]',
            "Sandbox's private key is public",
        ),
    ],
)
def test_unsafe_exposure_is_refused(tmp_path: Path, setting: str, message: str) -> None:
    name, _, value = setting.partition("=")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SORTACE_DATA_DIR": str(tmp_path / "data"), name: value}
    result = subprocess.run(
        [sys.executable, "-m", "cds", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and message in result.stderr  # issue #5: loopback only unless forced


@pytest.mark.slow
def test_feedback_survives_sigkill_under_load(tmp_path: Path, es384: SigningKey, database_url: str) -> None:
    """2,000 feedback items from 8 threads; the service is SIGKILLed mid-run and restarted (issue #6)."""
    port = free_port()
    service = LiveService(
        write_config(tmp_path, port, es384, database_url), tmp_path / "data", port, tmp_path / "serve.log"
    )
    service.start()
    answered: set[str] = set()
    lock = threading.Lock()
    path = f"/cds-services/{SERVICE_ID}/feedback"

    def worker(number: int) -> None:
        pending = [f"t{number}-{i}-{uuid.uuid4().hex[:6]}" for i in range(250)]
        deadline = time.monotonic() + 180
        with requests.Session() as session:
            while pending and time.monotonic() < deadline:
                card = pending[0]
                body = {
                    "feedback": [
                        {
                            "card": card,
                            "outcome": "overridden",
                            "outcomeTimestamp": "2026-11-24T10:00:00Z",
                            "overrideReason": {"reason": {"code": "patient-declines"}},
                        }
                    ]
                }
                try:
                    response = session.post(
                        service.base + path,
                        data=json.dumps(body),
                        headers=signed(es384, service.base, path),
                        timeout=10,
                    )
                except requests.RequestException:
                    time.sleep(0.05)  # the service is down: try the same item again
                    continue
                if response.status_code == 200:
                    with lock:
                        answered.add(card)
                    pending.pop(0)
                else:
                    time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    while len(answered) < 1000:
        time.sleep(0.01)
    service.kill()  # SIGKILL master and workers, with requests in flight
    answered_before_kill = set(answered)
    service.start()
    for thread in threads:
        thread.join()
    service.stop()

    store = SqlStore.open(database_url)
    try:
        cards = [row["card_uuid"] for row in store.feedback_rows()]
    finally:
        store.close()
    assert len(answered_before_kill) >= 1000
    assert len(cards) == len(set(cards))  # no duplicates, though items in flight at the kill were sent again
    assert answered <= set(cards)  # nothing answered 200 was lost
    assert len(answered) == 2000
