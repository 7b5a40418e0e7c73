"""What the oncologist reads: the trial's numbers exactly as in the abstract, nothing unverified, sound Markdown,
and clinical content a deployment can extend (issue #3 items 2, 3, 6)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cds.knowledge import load_knowledge
from cds.settings import ClinicalSettings
from cds.validation import schema_issues
from tests.clinical_records import LOCAL, cc, condition, eligible, observation, run, with_
from tests.conftest import AppFactory, CdsCaller
from tests.support import FIXTURES, ROOT, fixture_request
from tests.test_response_rules import eligible_response
from tests.test_service_requests import assert_outcome

ABSTRACT_FACTS = [
    "phase 3",
    "open-label",
    "5 hospitals in China",
    "October 2019 to December 2021",
    "n = 162",
    "n = 81",
    "22.2 months",
    "15.1 months",
    "HR 0.55",
    "16.2 months",
    "11.8 months",
    "HR 0.54",
    "P < .001",
    "80.2%",
    "58.0%",
    "P = .002",
    "median age 55 (range 28-75)",
    "93.2% male",
    "Sorafenib 400 mg twice daily",
    "doxorubicin 50 mg",
    "lipiodol",
    "gelatin sponge particles (150-350 μm)",
    "doxorubicin 75 mg",
    "100-300 μm or 300-500 μm",
    "after R0 hepatectomy with positive MVI",
]
# Facts the clinical notes mark UNVERIFIED or that the abstract does not give: never shown as fact.
NEVER_SHOWN = [
    "95% CI",
    "hand-foot",
    "weekly",
    "BCLC 2022",
    "AASLD",
    "EASL",
    "NCCN",
    "HBV",
    "without food",
    "Zhenwei",
    "Kuang",
    "TACE-2",
    "{{",
    "${",
    "<!--",
    "fill",
]


def test_the_eligible_card_states_the_abstract_exactly_and_nothing_unverified(cds: CdsCaller) -> None:
    detail = eligible_response(cds)["cards"][0]["detail"]
    for fact in ABSTRACT_FACTS:
        assert fact in detail, fact
    for phrase in NEVER_SHOWN:
        assert phrase not in detail, phrase


def markdown_problems(detail: str) -> list[str]:
    problems = []
    if detail.count("**") % 2:
        problems.append("unbalanced bold markers")
    table = [line for line in detail.splitlines() if line.startswith("|")]
    if table and len({line.count("|") for line in table}) != 1:
        problems.append("table rows with different column counts")
    if table and not re.match(r"^\|(-+\|)+$", table[1].replace(" ", "")):
        problems.append("table without a header separator")
    if re.search(r"\n\n\n", detail):
        problems.append("empty paragraphs")
    return problems


@pytest.mark.parametrize(
    "name",
    [
        "eligible-icd10-loinc",
        "eligible-chinese-text",
        "eligible-icdo3-cautions",
        "info-many-missing",
        "info-stale-stage",
        "info-possible-pvtt",
    ],
)
def test_every_card_is_sound_markdown_and_says_why(cds: CdsCaller, name: str) -> None:
    (card,) = cds.call(fixture_request(name)).get_json()["cards"]
    detail = card["detail"]
    assert markdown_problems(detail) == []
    assert re.search(r"(Condition|Observation|Procedure|Patient)/[\w.-]+", detail)  # the records it came from
    assert re.search(r"\d{4}-\d{2}-\d{2}", detail)  # with their dates


def test_cautions_appear_as_lines_and_the_card_stays_info(cds: CdsCaller) -> None:
    (card,) = cds.call(fixture_request("eligible-icdo3-cautions")).get_json()["cards"]
    assert card["indicator"] == "info"
    cautions = card["detail"].split("**Cautions**")[1].split("**Evidence")[0]
    assert "Age above the range of the patients in the trial (28-75 years): age 78" in cautions
    assert "Child-Pugh B7 is accepted with caution" in cautions and "TACE has already been given" in cautions
    assert "confirm vascular (venous) microvascular invasion" in cautions


def test_the_information_card_names_what_is_missing_and_where_it_is_recorded(cds: CdsCaller) -> None:
    (card,) = cds.call(fixture_request("info-stale-stage")).get_json()["cards"]
    assert card["summary"] == (
        "Recurrent HCC after hepatectomy: BCLC stage at recurrence and ECOG needed to assess SOR-TACE eligibility"
    )
    assert "stale: Condition/p-info-stale-hcc stage.summary: stage BCLC A" in card["detail"]
    assert "Where to look: imaging or tumour-board staging done at or after the recurrence" in card["detail"]
    assert "older than 60 days" in card["detail"]
    assert "**Found**" in card["detail"] and "Microvascular invasion" in card["detail"]


def test_record_text_cannot_inject_markdown_or_links(cds: CdsCaller) -> None:
    request = fixture_request("eligible-icd10-loinc")
    entry = request["prefetch"]["observations"]["entry"]
    bclc = next(e["resource"] for e in entry if e["resource"]["id"].endswith("-bclc"))
    bclc["valueCodeableConcept"] = {"text": "BCLC B [click](https://evil.example) <img src=x> **urgent**"}
    detail = cds.call(request).get_json()["cards"][0]["detail"]
    for raw in (r"\[click\]\(", r"<img", r"\*\*urgent"):
        assert not re.search(r"(?<!\\)" + raw, detail), raw  # only in escaped form, shown as literal text
    assert r"\[click\]" in detail and r"\<img" in detail


@pytest.mark.parametrize("path", sorted((FIXTURES / "requests").glob("*.json")), ids=lambda p: p.stem)
def test_evaluate_prints_a_valid_response_for_every_request_example(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cds", "evaluate", str(path), "--today", "2026-11-24"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    body: dict[str, Any] = json.loads(result.stdout)
    assert schema_issues("service-response", body) == []  # a valid CDS Hooks response
    expected = {"eligible": "eligible", "not": "not-applicable", "information": "information-needed"}
    assert f"outcome: {expected[path.stem.split('-')[0]]} as of 2026-11-24" in result.stderr


def test_a_deployment_extends_the_value_sets(tmp_path: Path) -> None:
    local = condition("hcc", cc(LOCAL, "HOSP-HCC-7", text="Tumour code 7"), onset=950, clinical="recurrence")
    record = with_(eligible(), local)
    assert run(record).outcome.value == "not-applicable"  # a local code nobody told us about
    extension = tmp_path / "local-terms.toml"
    extension.write_text(
        f'[systems]\nhospital = ["{LOCAL}"]\n[concepts.hcc.codes]\nhospital = ["HOSP-HCC-7"]\n'
        '[concepts.ecog_observation]\ntext = ["体能评分"]\n'
    )
    knowledge = load_knowledge(ClinicalSettings(terminology_extensions=(str(extension),)))
    assert run(record, know=knowledge).outcome.value == "eligible"
    local_ecog = with_(eligible(), observation("ecog", cc(LOCAL, "PS", text="体能评分"), 10, valueString="1"))
    assert run(local_ecog, know=knowledge).facts["ecog"].value == "1"


def test_a_deployment_replaces_the_criteria(tmp_path: Path) -> None:
    text = (
        (ROOT / "cards" / "criteria.toml").read_text().replace("caution_above_years = 75", "caution_above_years = 55")
    )
    criteria = tmp_path / "criteria.toml"
    criteria.write_text(text)
    knowledge = load_knowledge(ClinicalSettings(criteria_file=str(criteria)))
    assert [c.code for c in run(eligible(), know=knowledge).cautions] == ["age-over-range"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[age]\nminimum_years = 18\n")
    with pytest.raises(ValueError, match="missing key"):
        load_knowledge(ClinicalSettings(criteria_file=str(broken)))


def test_broken_clinical_content_stops_start_up(make_app: AppFactory, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[concepts.hcc]\ntext = ['(unclosed']\n")
    with pytest.raises(ValueError, match="bad text pattern"):
        make_app(clinical={"terminology_extensions": [str(bad)]})


def test_a_missing_fact_on_the_wire_is_a_412_not_a_guess(cds: CdsCaller) -> None:
    request = fixture_request("eligible-icd10-loinc", prefetch={"conditions", "procedures"})
    assert_outcome(cds.call(request), 412, "patient")
