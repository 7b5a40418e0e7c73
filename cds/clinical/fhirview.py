"""Small readers over ``fhir.resources.R4B`` models: codings, texts, statuses and dates, with no clinical logic."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cds.clinical.dates import FhirDate, parse_date

SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://www.cms.gov/Medicare/Coding/ICD10": "ICD-10-PCS",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD-9-CM",
    "http://terminology.hl7.org/CodeSystem/icd-o-3": "ICD-O-3",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl": "NCIt",
}


def codings(concept: Any) -> Iterator[tuple[str, str, str]]:
    """``(system, code, display)`` of every coding of a CodeableConcept (or a Coding); blanks for missing parts."""
    if concept is None:
        return
    items = getattr(concept, "coding", None)
    if items is None and getattr(concept, "code", None) is not None:
        items = [concept]
    for coding in items or ():
        code = getattr(coding, "code", None)
        if code:
            yield (getattr(coding, "system", None) or "", str(code), getattr(coding, "display", None) or "")


def texts(concept: Any) -> list[str]:
    """The human text of a CodeableConcept: its ``text`` and every coding's ``display``."""
    if concept is None:
        return []
    out = [concept.text] if getattr(concept, "text", None) else []
    out.extend(display for _, _, display in codings(concept) if display)
    return out


def describe_coding(system: str, code: str, display: str = "") -> str:
    name = SYSTEM_NAMES.get(system, system or "local code")
    return f"{name} {code}" + (f" '{display}'" if display else "")


def status_code(concept: Any) -> str | None:
    """The first code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    return next((code for _, code, _ in codings(concept)), None)


def reference_of(resource: Any) -> str:
    return f"{resource.get_resource_type()}/{resource.id or '(no id)'}"


def first_date(*values: Any) -> FhirDate | None:
    """The first readable date among ``values`` (dates, date strings or Periods, in order of preference)."""
    for value in values:
        if value is None:
            continue
        parsed = (
            parse_date(getattr(value, "start", None) or getattr(value, "end", None))
            if _is_period(value)
            else (parse_date(value))
        )
        if parsed:
            return parsed
    return None


def _is_period(value: Any) -> bool:
    return hasattr(value, "start") and hasattr(value, "end") and not isinstance(value, str)


def note_texts(notes: Iterable[Any] | None) -> list[str]:
    return [n.text for n in notes or () if getattr(n, "text", None)]


def observation_date(obs: Any) -> FhirDate | None:
    """When the observation applies (``effective[x]``). ``issued`` is when it was entered, which for back-entered
    results is much later: it would make old staging or an old ECOG look current."""
    return first_date(obs.effectiveDateTime, obs.effectivePeriod, obs.effectiveInstant)
