"""The command line as a new user runs it: evaluate, fixtures, fire, token (README walk-throughs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import FIXTURES, ROOT, FhirTestServer, LiveService, free_port


def cds(
    *args: str, cwd: Path = ROOT, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cds", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=check, env=env
    )


def test_help_lists_every_command() -> None:
    out = cds("--help").stdout
    for command in ("serve", "evaluate", "fire", "fixtures", "token", "feedback"):
        assert command in out


def test_evaluate_a_request_file_and_bad_files(tmp_path: Path) -> None:
    result = cds("evaluate", str(FIXTURES / "requests" / "eligible.json"), "--today", "2026-11-24")
    assert json.loads(result.stdout)["cards"][0]["summary"].startswith("Consider sorafenib")
    assert "outcome: eligible as of 2026-11-24" in result.stderr
    (tmp_path / "bad.json").write_text("{not json")
    bad = cds("evaluate", str(tmp_path / "bad.json"), check=False)
    assert bad.returncode == 2 and "sortace-cds:" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "invalid.json").write_text(json.dumps({"hook": "patient-view", "context": {}}))
    invalid = cds("evaluate", str(tmp_path / "invalid.json"), check=False)
    assert invalid.returncode == 1 and json.loads(invalid.stdout)["resourceType"] == "OperationOutcome"
    missing = cds("evaluate", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_output_piped_into_a_reader_that_stops_early_is_not_a_traceback() -> None:
    # README: "$cds fixtures list" is the kind of output a user pipes into head.
    with subprocess.Popen(
        [sys.executable, "-m", "cds", "fixtures", "list"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as listing:
        assert listing.stdout is not None and listing.stderr is not None
        listing.stdout.close()  # the reader is gone before the first line is written
        stderr = listing.stderr.read().decode()
        assert listing.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_fixtures_list_and_request() -> None:
    listing = cds("fixtures", "list").stdout
    assert "eligible-icd10-loinc" in listing and "not-applicable" in listing
    request = json.loads(cds("fixtures", "request", "eligible-icd10-loinc").stdout)
    assert request["hook"] == "patient-view" and request["context"]["patientId"] == "p-elig-icd10"
    assert set(request["prefetch"]) >= {"patient", "conditions", "observations"}


@pytest.fixture
def dev_service(tmp_path: Path) -> Iterator[tuple[LiveService, Path]]:
    """The service as ./scripts/serve runs it: development profile, dev key pair, no issuers configured."""
    port = free_port()
    config = tmp_path / "sortace.toml"
    config.write_text(f'profile = "development"\ndata_dir = "{tmp_path / "data"}"\n[server]\nport = {port}\n')
    service = LiveService(config, tmp_path / "data", port, tmp_path / "serve.log")
    service.start()
    yield service, config
    service.stop()


def test_upload_then_fire_as_in_the_readme(dev_service: tuple[LiveService, Path], fhir: FhirTestServer) -> None:
    service, config = dev_service
    upload = cds(
        "fixtures",
        "upload",
        "--fhir-server",
        fhir.base,
        "--only",
        "eligible-icd10-loinc",
        "info-many-missing",
        "na-pvtt",
    )
    assert upload.stdout.count("uploaded") == 3
    assert any(r["method"] == "GET" and r["path"].startswith("/fhir/Patient?_count=1") for r in fhir.requests_seen())
    eligible = cds("fire", "--config", str(config), "--fhir-server", fhir.base, "--patient", "p-elig-icd10").stdout
    assert "Card 1 [info] Consider sorafenib + on-demand TACE" in eligible
    assert "Why you are seeing this" in eligible and "Suggestion: Draft orders" in eligible
    info = cds(
        "fire", "--config", str(config), "--fhir-server", fhir.base, "--patient", "p-info-many", "--prefetch", "none"
    ).stdout
    assert "5 items needed to assess SOR-TACE eligibility" in info
    partial = cds(
        "fire",
        "--config",
        str(config),
        "--fhir-server",
        fhir.base,
        "--patient",
        "p-na-pvtt",
        "--prefetch",
        "partial",
        "--json",
    ).stdout
    assert json.loads(partial) == {"cards": []}


def test_fire_reports_a_failing_service_call(dev_service: tuple[LiveService, Path], fhir: FhirTestServer) -> None:
    _, config = dev_service
    result = cds(
        "fire",
        "--config",
        str(config),
        "--fhir-server",
        fhir.base,
        "--patient",
        "nobody",
        "--prefetch",
        "none",
        check=False,
    )
    assert result.returncode == 1 and "HTTP 412" in result.stderr
    assert json.loads(result.stdout)["resourceType"] == "OperationOutcome"


def test_token_command_signs_for_one_endpoint(dev_service: tuple[LiveService, Path]) -> None:
    service, config = dev_service
    token = cds("token", "--config", str(config), "/cds-services").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(service.base + "/cds-services", headers=headers, timeout=10).status_code == 200
    assert requests.get(service.base + "/cds-services", headers=headers, timeout=10).status_code == 401  # used once
