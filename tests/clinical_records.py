"""Builders for the clinical unit tests: a minimal eligible record, changed one fact at a time.

The record is written as raw FHIR JSON (as an EHR would send it), parsed with ``fhir.resources.R4B`` and handed to
the pure core. Dates are days before ``TODAY``.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from cds.clinical.assessment import assess
from cds.clinical.model import Assessment, PatientData
from cds.knowledge import Knowledge, load_knowledge
from cds.record import MODELS
from cds.settings import ClinicalSettings

# The date, code systems and builders as the fixture patients use them; the tests import them from here.
from fhir_fixtures.generate import (  # noqa: F401
    AS_OF,
    CPT,
    ICD9CM,
    ICD10CM,
    ICD10PCS,
    ICDO3,
    LOCAL,
    LOINC,
    NCIT,
    RXNORM,
    SNOMED,
    ago,
    concept,
)

TODAY = AS_OF
PID = "p1"
ICD10 = "http://hl7.org/fhir/sid/icd-10"  # WHO ICD-10: the fixtures use only the US edition
_KNOWLEDGE: Knowledge | None = None


def knowledge() -> Knowledge:
    global _KNOWLEDGE
    if _KNOWLEDGE is None:
        _KNOWLEDGE = load_knowledge(ClinicalSettings())
    return _KNOWLEDGE


def cc(system: str | None = None, code: str | None = None, text: str | None = None, display: str | None = None) -> dict:
    """A CodeableConcept, text before display (the tests mostly write text)."""
    return concept(system, code, display, text)


def status(system: str, code: str) -> dict:
    return {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/{system}", "code": code}]}


def condition(
    rid: str,
    code: dict,
    onset: int | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    **extra: Any,
) -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": f"Patient/{PID}"},
        "code": code,
    }
    if clinical:
        resource["clinicalStatus"] = status("condition-clinical", clinical)
    if verification:
        resource["verificationStatus"] = status("condition-ver-status", verification)
    if onset is not None:
        resource["onsetDateTime"] = ago(onset)
    resource.update(extra)
    return resource


def procedure(rid: str, code: dict, performed: int | None, state: str = "completed", **extra: Any) -> dict:
    resource = {
        "resourceType": "Procedure",
        "id": rid,
        "status": state,
        "subject": {"reference": f"Patient/{PID}"},
        "code": code,
        **extra,
    }
    if performed is not None:
        resource["performedDateTime"] = ago(performed)
    return resource


def observation(rid: str, code: dict, effective: int | None, state: str = "final", **value: Any) -> dict:
    resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": state,
        "code": code,
        "subject": {"reference": f"Patient/{PID}"},
        **value,
    }
    if effective is not None:
        resource["effectiveDateTime"] = ago(effective)
    return resource


def med_request(rid: str, medication: dict, state: str, intent: str = "order", **extra: Any) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": state,
        "intent": intent,
        "medicationCodeableConcept": medication,
        "subject": {"reference": f"Patient/{PID}"},
        **extra,
    }


def med_statement(rid: str, medication: dict, state: str, **extra: Any) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": state,
        "medicationCodeableConcept": medication,
        "subject": {"reference": f"Patient/{PID}"},
        **extra,
    }


RESECTION_DAYS = 900


def eligible() -> dict[str, dict]:
    """The smallest eligible record, keyed by resource id."""
    resources = [
        {"resourceType": "Patient", "id": PID, "birthDate": "1966-03-14", "gender": "male"},
        condition("hcc", cc(ICD10CM, "C22.0", "Hepatocellular carcinoma"), onset=950, clinical="recurrence"),
        procedure("hepatectomy", cc(CPT, "47120"), RESECTION_DAYS, outcome=cc(text="R0 resection")),
        observation("mvi", cc(LOINC, "33761-8"), RESECTION_DAYS - 3, valueCodeableConcept=cc(SNOMED, "52101004")),
        observation("progression", cc(LOINC, "97509-4"), 60, valueCodeableConcept=cc(SNOMED, "271299001")),
        observation("bclc", cc(NCIT, "C115134"), 40, valueString="BCLC B"),
        observation("cp", cc(LOCAL, "CP", "Child-Pugh class"), 10, valueString="A (5 points)"),
        observation("ecog", cc(LOINC, "89247-1"), 10, valueInteger=0),
    ]
    return {r["id"]: r for r in resources}


def run(
    record: dict[str, dict],
    today: date = TODAY,
    unavailable: frozenset[str] = frozenset(),
    incomplete: frozenset[str] = frozenset(),
    know: Knowledge | None = None,
) -> Assessment:
    """Parse every resource with the R4B models and assess."""
    parsed: dict[str, list[Any]] = {}
    for raw in copy.deepcopy(list(record.values())):
        parsed.setdefault(raw["resourceType"], []).append(MODELS[raw["resourceType"]].model_validate(raw))
    data = PatientData(
        patient=(parsed.get("Patient") or [None])[0],
        conditions=tuple(parsed.get("Condition", ())),
        procedures=tuple(parsed.get("Procedure", ())),
        observations=tuple(parsed.get("Observation", ())),
        medication_requests=tuple(parsed.get("MedicationRequest", ())),
        medication_statements=tuple(parsed.get("MedicationStatement", ())),
        unavailable=unavailable,
        incomplete=incomplete,
    )
    k = know or knowledge()
    return assess(data, today, k.terminology, k.criteria)


def with_(record: dict[str, dict], *resources: dict, drop: tuple[str, ...] = ()) -> dict[str, dict]:
    out = {k: v for k, v in record.items() if k not in drop}
    for resource in resources:
        out[resource["id"]] = resource
    return out


def codes(assessment: Assessment) -> tuple[str, list[str]]:
    """The outcome and the codes that explain it (exclusions, missing facts or cautions)."""
    findings = assessment.exclusions or assessment.missing or assessment.cautions
    return assessment.outcome.value, [f.code for f in findings]
