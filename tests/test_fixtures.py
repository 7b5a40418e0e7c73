"""Every fixture patient gives its expected outcome: through ``evaluate``, through HTTP with full prefetch, and
through HTTP with no prefetch against the real FHIR server (issue #3 and #4 "done when")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cds.fixtures import current, load_bundle
from fhir_fixtures import generate
from tests.conftest import CdsCaller
from tests.support import (
    FIXTURES,
    ROOT,
    FhirTestServer,
    fixture_bundle,
    fixture_expectation,
    fixture_names,
    fixture_request,
)

NAMES = fixture_names()


def expected_card_count(expect: dict[str, Any]) -> int:
    return 0 if expect["outcome"] == "not-applicable" or expect.get("suppressed") else 1


def check_cards(body: dict[str, Any], expect: dict[str, Any]) -> None:
    cards = body["cards"]
    assert len(cards) == expected_card_count(expect), json.dumps(body)[:400]
    if not cards:
        return
    card = cards[0]
    if expect["outcome"] == "eligible":
        assert card["summary"].startswith("Consider sorafenib + on-demand TACE")
        assert len(card["suggestions"]) == 1
    else:
        assert "needed to assess SOR-TACE eligibility" in card["summary"]
        assert "suggestions" not in card


def test_committed_fixtures_are_what_the_generator_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "HERE", tmp_path)
    generate.write_all()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) > 30
    for path in written:
        relative = path.relative_to(tmp_path)
        assert path.read_text(encoding="utf-8") == (FIXTURES / relative).read_text(encoding="utf-8"), str(relative)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_resources_are_valid_r4(name: str) -> None:
    from cds.record import MODELS

    bundle = load_bundle(FIXTURES, name)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        MODELS[resource["resourceType"]].model_validate(resource)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_gives_the_expected_outcome(name: str, tmp_path: Path) -> None:
    expect = fixture_expectation(name)
    result = subprocess.run(
        [sys.executable, "-m", "cds", "evaluate", str(FIXTURES / f"{name}.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert f"outcome: {expect['outcome']}" in result.stderr
    for code in expect.get("exclusions", []) + expect.get("missing", []) + expect.get("cautions", []):
        assert code in result.stderr
    check_cards(json.loads(result.stdout), expect)


@pytest.mark.parametrize("name", NAMES)
def test_http_with_full_prefetch_gives_the_expected_outcome(name: str, cds: CdsCaller) -> None:
    response = cds.call(fixture_request(name))
    assert response.status_code == 200
    check_cards(response.get_json(), fixture_expectation(name))


@pytest.mark.parametrize("name", NAMES)
def test_http_without_prefetch_against_the_fhir_server_gives_the_same_outcome(
    name: str, cds: CdsCaller, fhir: FhirTestServer
) -> None:
    fhir.load(fixture_bundle(name))
    with_prefetch = cds.call(fixture_request(name)).get_json()
    without = cds.call(fixture_request(name, prefetch="none", fhir_server=fhir.base))
    assert without.status_code == 200, without.get_data(as_text=True)
    body = without.get_json()
    check_cards(body, fixture_expectation(name))
    strip = [(c["summary"], c.get("detail")) for c in with_prefetch["cards"]]
    assert [(c["summary"], c.get("detail")) for c in body["cards"]] == strip  # same card, same reasons
    searched = {r["path"].split("?")[0] for r in fhir.requests_seen()}
    assert {"/fhir/Condition", "/fhir/Procedure", "/fhir/Observation"} <= searched


def test_shifting_dates_keeps_the_scenario(tmp_path: Path) -> None:
    bundle = load_bundle(FIXTURES, "eligible-icd10-loinc")
    moved = current(bundle, generate.AS_OF.replace(year=generate.AS_OF.year + 3))
    assert moved["timestamp"].startswith(str(generate.AS_OF.year + 3))
    patient = next(e["resource"] for e in moved["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["birthDate"] != "1966-03-14"
    assert ROOT.exists()
