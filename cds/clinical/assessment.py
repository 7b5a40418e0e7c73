"""The decision policy: one patient's FHIR resources and the hook date in, an ``Assessment`` out. Pure.

Evaluated in order (issue #3, clinical notes 4.2); the first step that decides wins:
1. not applicable: no confirmed HCC, no dated partial hepatectomy, no recurrence after it, deceased, transplant,
   an active cholangiocarcinoma or combined tumour;
2. not applicable: outside the trial population or unsafe (MVI negative, margin involved, stage not B,
   Child-Pugh C / decompensated / above the caution score, ECOG above the caution value, sorafenib now or before,
   other systemic therapy, pregnant, too young);
3. information needed: a fact the decision needs is unknown, stale or unreadable, or part of the record could not
   be read (including medications without a name: earlier systemic therapy cannot be ruled out);
4. eligible, with cautions (age above the trial's range, Child-Pugh B7, ECOG 1, TACE already given, MVI read from
   a lymphatic-only result, fibrolamellar HCC).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate
from cds.clinical.diagnosis import HccCondition, hcc_diagnosis, other_liver_cancer, recurrence_fact
from cds.clinical.fitness import child_pugh_fact, child_pugh_score, ecog_fact
from cds.clinical.medications import medication_exposure
from cds.clinical.model import Assessment, Fact, Finding, Outcome, PatientData
from cds.clinical.pathology import LYMPHATIC_ONLY, margin_fact, mvi_fact
from cds.clinical.patient import age_fact, deceased_fact, other_cancer_fact, pregnancy_fact
from cds.clinical.staging import stage_fact
from cds.clinical.surgery import find_resection, tace_since, transplant_fact
from cds.clinical.terminology import Terminology

# Facts the eligible card needs; each unknown one is named in the information-needed card.
NEEDED = ("mvi", "margin", "stage", "child_pugh", "ecog", "age")
# Resource types whose absence hides an exclusion, and the missing-item code that says so.
DATA_NEEDED = {
    "Condition": "data-conditions",
    "Procedure": "data-procedures",
    "Observation": "data-observations",
    "MedicationRequest": "data-medications",
    "MedicationStatement": "data-medications",
}


def assess(data: PatientData, today: date, terms: Terminology, criteria: Criteria) -> Assessment:
    """Decide whether the SOR-TACE evidence applies to this patient, with the facts and records behind it."""
    facts: dict[str, Fact] = {}
    hcc, facts["hcc"] = hcc_diagnosis(data.conditions, data.observations, terms)
    facts["other_liver_cancer"] = other_liver_cancer(data.conditions, data.observations, terms)
    resection, facts["resection"] = find_resection(data.procedures, terms)
    facts["deceased"] = deceased_fact(data.patient)
    facts["transplant"] = transplant_fact(data.conditions, data.procedures, terms)
    recurrence_reference = None
    if resection is not None:
        facts["recurrence"], recurrence_reference = recurrence_fact(
            hcc, data.observations, resection.date, terms, criteria
        )

    def finish(outcome: Outcome, **kwargs: Any) -> Assessment:
        return Assessment(outcome, today, facts, notes=data.notes, recurrence_reference=recurrence_reference, **kwargs)

    population = _population_exclusions(facts)
    if population:
        return finish(Outcome.NOT_APPLICABLE, exclusions=tuple(population))

    assert resection is not None  # population check guarantees it
    recurrence = facts["recurrence"]
    after_surgery = _plus_days(resection.date, criteria.recurrence_minimum_days)
    since = recurrence.date or after_surgery
    confirmed_hcc = [h.condition for h in hcc if h.confirmed]
    facts["mvi"] = mvi_fact(resection, data.observations, confirmed_hcc, terms, criteria)
    facts["margin"] = margin_fact(resection, data.observations, terms, criteria)
    facts["stage"] = stage_fact(
        confirmed_hcc, data.conditions, data.observations, since, after_surgery, today, terms, criteria
    )
    facts["child_pugh"] = child_pugh_fact(data.conditions, data.observations, today, terms, criteria)
    facts["ecog"] = ecog_fact(data.observations, today, terms, criteria)
    facts["age"] = age_fact(data.patient, today, criteria.age_minimum_years)
    facts["pregnancy"] = pregnancy_fact(data.conditions, data.observations, today, terms)
    facts["other_cancer"] = other_cancer_fact(data.conditions, terms)
    exposure = medication_exposure(data.medication_requests, data.medication_statements, terms)
    facts["sorafenib"], facts["other_systemic"] = exposure.sorafenib, exposure.other_systemic
    facts["tace_since_recurrence"] = tace_since(data.procedures, since, terms)

    exclusions = _trial_exclusions(facts, criteria)
    if exclusions:
        return finish(Outcome.NOT_APPLICABLE, exclusions=tuple(exclusions))
    missing = _missing(facts, data, exposure.unidentified)
    if missing:
        return finish(Outcome.INFORMATION_NEEDED, missing=tuple(missing))
    cautions = _cautions(facts, criteria, hcc)
    return finish(Outcome.ELIGIBLE, cautions=tuple(cautions), own_proposal=exposure.own_proposal)


def _population_exclusions(facts: dict[str, Fact]) -> list[Finding]:
    out = []
    hcc = facts["hcc"]
    if hcc.value != "confirmed":
        out.append(Finding("no-confirmed-hcc", hcc.note or "no confirmed HCC", hcc.evidence))
    resection = facts["resection"]
    if resection.value != "completed":
        out.append(Finding("no-hepatectomy", resection.note or "no dated partial hepatectomy", resection.evidence))
    recurrence = facts.get("recurrence")
    if recurrence is not None and recurrence.value != "confirmed":
        out.append(
            Finding("no-recurrence", recurrence.note or "no recurrence after the hepatectomy", recurrence.evidence)
        )
    if facts["deceased"].value == "yes":
        out.append(Finding("deceased", "patient is deceased", facts["deceased"].evidence))
    if facts["transplant"].value == "yes":
        out.append(Finding("transplant", "liver transplant or whole-liver resection", facts["transplant"].evidence))
    other = facts["other_liver_cancer"]
    if other.value == "yes":
        out.append(Finding("other-liver-cancer", "cholangiocarcinoma or a combined tumour recorded", other.evidence))
    return out


def _trial_exclusions(facts: dict[str, Fact], criteria: Criteria) -> list[Finding]:  # noqa: C901 - one rule per line
    out = []

    def exclude(code: str, fact: Fact, detail: str) -> None:
        out.append(Finding(code, detail, fact.evidence))

    if facts["mvi"].value == "negative":
        exclude("mvi-negative", facts["mvi"], "MVI negative on the hepatectomy specimen")
    if facts["margin"].value == "involved":
        exclude("margin-involved", facts["margin"], "resection margin involved (R1/R2)")
    stage = facts["stage"]
    if stage.value is not None and stage.value not in criteria.eligible_bclc:
        exclude(
            "stage-not-b",
            stage,
            f"stage at recurrence {stage.value}, not BCLC B" + (f" ({stage.note})" if stage.note else ""),
        )
    cp = facts["child_pugh"]
    if cp.value == "decompensated":
        exclude("decompensated", cp, "decompensated liver disease")
    elif cp.value is not None and (
        cp.value.startswith("C") or (child_pugh_score(cp.value) or 0) > criteria.child_pugh_caution_max
    ):
        exclude("child-pugh", cp, f"Child-Pugh {cp.value}")
    ecog = facts["ecog"]
    if ecog.value is not None and int(ecog.value) > criteria.ecog_caution_max:
        exclude("ecog", ecog, f"ECOG {ecog.value}")
    sorafenib = facts["sorafenib"]
    if sorafenib.value == "current" and criteria.exclude_current_sorafenib:
        exclude("sorafenib-current", sorafenib, "already taking sorafenib")
    if sorafenib.value == "earlier" and criteria.exclude_prior_sorafenib:
        exclude("sorafenib-earlier", sorafenib, "earlier sorafenib")
    if facts["other_systemic"].value == "yes" and criteria.exclude_other_systemic:
        exclude("other-systemic", facts["other_systemic"], "earlier or current systemic therapy for HCC")
    if facts["pregnancy"].value == "yes":
        exclude("pregnant", facts["pregnancy"], "pregnancy recorded")
    age = facts["age"]
    if age.value is not None and _youngest(age.value) < criteria.age_minimum_years:
        exclude("under-age", age, f"age {age.value}")
    return out


def _missing(facts: dict[str, Fact], data: PatientData, unidentified: tuple[str, ...]) -> list[Finding]:
    out = [
        Finding(name, facts[name].note or "unknown", facts[name].evidence) for name in NEEDED if not facts[name].known
    ]
    cp = facts["child_pugh"]
    if cp.value is not None and cp.value.startswith("B") and child_pugh_score(cp.value) is None:
        out.append(Finding("child_pugh", "Child-Pugh B recorded without a score (B7 or B8-9?)", cp.evidence))
    for resource_type in sorted(data.unavailable | data.incomplete):
        code = DATA_NEEDED.get(resource_type)
        state = "could not be read" if resource_type in data.unavailable else "was only partly read"
        if code and all(f.code != code for f in out):
            out.append(Finding(code, f"the {resource_type} list {state}"))
    if unidentified and all(f.code != "data-medications" for f in out):
        shown = ", ".join(unidentified[:5]) + (f" and {len(unidentified) - 5} more" if len(unidentified) > 5 else "")
        out.append(Finding("data-medications", f"{len(unidentified)} medication record(s) without a name: {shown}"))
    return out


def _cautions(facts: dict[str, Fact], criteria: Criteria, hcc: Sequence[HccCondition]) -> list[Finding]:
    out = []
    age = facts["age"]
    if age.value is not None and _oldest(age.value) > criteria.age_caution_above_years:
        out.append(Finding("age-over-range", f"age {age.value}", age.evidence))
    cp = facts["child_pugh"]
    score = child_pugh_score(cp.value or "")
    if cp.value and cp.value.startswith("B") and score is not None and score > criteria.child_pugh_eligible_max:
        out.append(Finding("child-pugh-b", f"Child-Pugh {cp.value}", cp.evidence))
    ecog = facts["ecog"]
    if ecog.value is not None and int(ecog.value) > criteria.ecog_eligible_max:
        out.append(Finding("ecog-1", f"ECOG {ecog.value}", ecog.evidence))
    tace = facts["tace_since_recurrence"]
    if tace.value == "yes" and criteria.caution_tace_since_recurrence:
        out.append(Finding("tace-given", f"{len(tace.evidence)} TACE procedure(s) since the recurrence", tace.evidence))
    if facts["mvi"].note == LYMPHATIC_ONLY:
        out.append(Finding("mvi-lymphatic", "lymphatic small-vessel invasion (LOINC 33739-4)", facts["mvi"].evidence))
    other = facts["other_cancer"]
    if other.value == "yes":
        out.append(Finding("other-cancer", "; ".join(e.detail for e in other.evidence), other.evidence))
    fibrolamellar = [h.evidence for h in hcc if h.confirmed and h.fibrolamellar]
    if fibrolamellar:
        out.append(Finding("fibrolamellar", "fibrolamellar HCC (SNOMED CT 253018005)", tuple(fibrolamellar)))
    return out


def _plus_days(when: FhirDate, days: int) -> FhirDate:
    start = when.start + timedelta(days=days)
    return FhirDate(start, start, "day")


def _youngest(value: str) -> int:
    return int(value.split("-")[0])


def _oldest(value: str) -> int:
    return int(value.split("-")[-1])
