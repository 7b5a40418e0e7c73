"""Microvascular invasion and resection margin, read from the hepatectomy's pathology (clinical notes 2.4, 2.5).

A result belongs to the hepatectomy when it is dated within the configured window around it or points at it
(``partOf``). Results are read from an Observation's own value and from its components (pathology panels).
"MVI" written alone is read as *micro*vascular only on that pathology or together with an M grade, because it
also abbreviates *macro*vascular invasion (clinical notes 3.2.6). Conflicting results make the fact unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate
from cds.clinical.fhirview import note_texts, observation_date, reference_of, texts
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import (
    observation_final,
    observation_parts,
    observation_preliminary,
    value_number,
    value_texts,
)
from cds.clinical.surgery import Resection
from cds.clinical.terminology import Terminology


def mvi_fact(
    resection: Resection,
    observations: Sequence[Any],
    hcc_conditions: Sequence[Any],
    terms: Terminology,
    criteria: Criteria,
) -> Fact:
    """MVI ``positive`` / ``negative`` on the resection specimen, or unknown (with the reason)."""
    found: list[tuple[str, Evidence]] = []
    notes: list[str] = []
    micro, abbreviation = terms.concept("mvi_observation"), terms.concept("mvi_abbreviation")
    for obs in observations:
        for code, holder in observation_parts(obs):
            named = micro.match(code)
            matched = named or abbreviation.match(code)
            if matched is None:
                continue
            grade = terms.classifier("mvi_grade").first(None, value_texts(holder))
            in_window = _belongs_to(obs, resection, criteria)
            if named is None and not (in_window or grade):
                continue  # a bare "MVI" away from the resection pathology may mean macrovascular invasion
            if not in_window:
                notes.append(f"{reference_of(obs)} is not from the hepatectomy of {resection.date}")
                continue
            if observation_preliminary(obs):
                notes.append(f"{reference_of(obs)} is preliminary (not verified)")
                continue
            if not observation_final(obs):
                continue
            value = _mvi_value(holder, grade[0] if grade else None, terms, criteria)
            if value:
                detail = f"{matched.detail} = {', '.join(value_texts(holder)) or _bool_text(holder)}"
                found.append((value, Evidence(reference_of(obs), "value", detail, observation_date(obs))))
    found.extend(_mvi_from_condition_evidence(hcc_conditions, terms))
    return _combine("mvi", found, notes, "no MVI result on the hepatectomy pathology")


def margin_fact(resection: Resection, observations: Sequence[Any], terms: Terminology, criteria: Criteria) -> Fact:
    """Resection margin ``R0`` or ``involved`` (R1/R2), from the procedure's outcome/notes or a margin result."""
    found: list[tuple[str, Evidence]] = []
    notes: list[str] = []
    margin = terms.classifier("margin")
    procedure = resection.procedure
    for label, match in margin.classify(procedure.outcome, note_texts(procedure.note)):
        found.append((label, Evidence(resection.reference, "outcome", match.detail, resection.date)))
    margin_codes, distance_codes = terms.concept("margin_observation"), terms.concept("margin_distance")
    for obs in observations:
        for code, holder in observation_parts(obs):
            is_distance = distance_codes.match(code) is not None
            named = margin_codes.match(code)
            if not (is_distance or (named and not named.negated)):
                continue
            if not _belongs_to(obs, resection, criteria):
                notes.append(f"{reference_of(obs)} is not from the hepatectomy of {resection.date}")
                continue
            if not observation_final(obs):
                notes.append(f"{reference_of(obs)} is not final ({obs.status})")
                continue
            answer, detail = _margin_value(holder, is_distance, terms)
            if answer:
                found.append((answer, Evidence(reference_of(obs), "value", detail, observation_date(obs))))
    return _combine("margin", found, notes, "no margin (R) status for the hepatectomy")


def _belongs_to(obs: Any, resection: Resection, criteria: Criteria) -> bool:
    if any(ref.reference == resection.reference for ref in obs.partOf or ()):
        return True
    when: FhirDate | None = observation_date(obs)
    if when is None:
        return False
    window = criteria.pathology_window_days
    return -window <= (when.start - resection.date.start).days <= window + (when.end - when.start).days


def _mvi_value(holder: Any, grade: str | None, terms: Terminology, criteria: Criteria) -> str | None:
    if grade is not None:
        return "positive" if grade in criteria.mvi_positive_grades else "negative"
    if getattr(holder, "valueBoolean", None) is not None:
        return "positive" if holder.valueBoolean else "negative"
    presence = terms.classifier("presence").first(getattr(holder, "valueCodeableConcept", None), value_texts(holder))
    if presence is None or presence[0] == "indeterminate":
        return None
    return presence[0]


def _bool_text(holder: Any) -> str:
    value = getattr(holder, "valueBoolean", None)
    return "" if value is None else str(value).lower()


def _mvi_from_condition_evidence(hcc_conditions: Sequence[Any], terms: Terminology) -> list[tuple[str, Evidence]]:
    out: list[tuple[str, Evidence]] = []
    micro = terms.concept("mvi_observation")
    for condition in hcc_conditions:
        for item in condition.evidence or ():
            for concept in item.code or ():
                match = micro.match_text(texts(concept))
                if match:
                    value = "negative" if match.negated else "positive"
                    out.append((value, Evidence(reference_of(condition), "evidence.code", match.detail)))
    return out


def _margin_value(holder: Any, is_distance: bool, terms: Terminology) -> tuple[str | None, str]:
    if is_distance:
        distance = value_number(holder)
        if distance is None:
            return None, ""
        quantity = getattr(holder, "valueQuantity", None)
        unit = f" {quantity.unit or quantity.code or ''}".rstrip() if quantity is not None else ""
        return ("R0" if distance > 0 else "involved"), f"distance to closest margin {distance:g}{unit}"
    found = terms.classifier("margin").classify(getattr(holder, "valueCodeableConcept", None), value_texts(holder))
    labels = {label for label, _ in found}
    if len(labels) == 1:
        label, match = found[0]
        return ("R0" if label == "r0" else "involved"), f"margin {match.detail}"
    presence = terms.classifier("presence").first(getattr(holder, "valueCodeableConcept", None), value_texts(holder))
    if presence and presence[0] in ("negative", "positive"):
        # "Surgical margin involvement: negative/positive"
        return ("R0" if presence[0] == "negative" else "involved"), f"margin involvement {presence[1].detail}"
    return None, ""


def _combine(name: str, found: list[tuple[str, Evidence]], notes: list[str], none_note: str) -> Fact:
    values = {"R0" if v == "r0" else v for v, _ in found}
    evidence = tuple(e for _, e in found)
    if len(values) == 1:
        return Fact(name, values.pop(), evidence)
    if len(values) > 1:
        return Fact(name, None, evidence, note="conflicting results: " + "; ".join(e.describe() for e in evidence))
    return Fact(name, None, note="; ".join(notes) if notes else none_note)
