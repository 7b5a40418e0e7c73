"""Microvascular invasion and resection margin, read from the hepatectomy's pathology (clinical notes 2.4, 2.5).

A result belongs to the hepatectomy when it points at it (``partOf``) or is dated from the day of surgery to the
configured window after it; imaging never counts (MVI can only be seen on the resected specimen). Results are
read from an Observation's own value and from its components (pathology panels). "MVI" written alone is read as
*micro*vascular only on that pathology, because it also abbreviates *macro*vascular invasion (clinical notes
3.2.6), and a value that speaks of large-vessel invasion is never read as MVI. A result must say present or
absent (or give an M grade): a bare mention is not an answer. Conflicting results make the fact unknown.

The margin comes from pathology first (margin or residual-tumour results); the operation's own outcome or notes
are used only when pathology says nothing, and intent ("aimed for R0") or negation ("R0 not achieved") is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.fhirview import codings, note_texts, observation_date, reference_of, texts
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

LYMPHATIC_ONLY = "read only from a lymphatic small-vessel invasion result (LOINC 33739-4)"
LYMPHATIC_CODE = ("http://loinc.org", "33739-4")
_LARGE_VESSEL = re.compile(r"large\s+vessel|macro|major\s+(branch|vessel)|portal\s+vein|大血管|门静脉", re.I)
_CLAUSE = re.compile(r"[;；,，。\n]|(?<=\))\s")


def mvi_fact(
    resection: Resection,
    observations: Sequence[Any],
    hcc_conditions: Sequence[Any],
    terms: Terminology,
    criteria: Criteria,
) -> Fact:
    """MVI ``positive`` / ``negative`` on the resection specimen, or unknown (with the reason)."""
    found, notes, grades, lymphatic_only = _mvi_observations(resection, observations, terms, criteria)
    from_conditions = _mvi_from_condition_evidence(hcc_conditions, terms, criteria)
    lymphatic_only = lymphatic_only and not any(v == "positive" for v, _ in from_conditions)
    found.extend(from_conditions)
    fact = _combine("mvi", found, notes, "no MVI result on the hepatectomy pathology")
    if fact.value == "positive" and lymphatic_only:
        return Fact("mvi", "positive", fact.evidence, note=LYMPHATIC_ONLY)
    if fact.value == "positive" and grades:
        return Fact("mvi", "positive", fact.evidence, note="grade " + "/".join(sorted(grades)))
    return fact


def _mvi_observations(
    resection: Resection, observations: Sequence[Any], terms: Terminology, criteria: Criteria
) -> tuple[list[tuple[str, Evidence]], list[str], set[str], bool]:
    """MVI answers from pathology Observations, notes on those not used, M grades seen, lymphatic-only flag."""
    found: list[tuple[str, Evidence]] = []
    notes: list[str] = []
    grades: set[str] = set()
    lymphatic_only = True
    micro, abbreviation = terms.concept("mvi_observation"), terms.concept("mvi_abbreviation")
    for obs in observations:
        if _is_imaging(obs):
            continue
        for code, holder in observation_parts(obs):
            named = micro.affirms(code)
            matched = named or abbreviation.affirms(code)
            if matched is None:
                continue
            if not _belongs_to(obs, resection, criteria):
                if named is not None:
                    notes.append(f"{reference_of(obs)} is not from the hepatectomy of {resection.date}")
                continue  # a bare "MVI" away from the resection pathology may mean macrovascular invasion
            if observation_preliminary(obs):
                notes.append(f"{reference_of(obs)} is preliminary (not verified)")
                continue
            value, grade = _mvi_value(holder, terms, criteria) if observation_final(obs) else (None, None)
            if value is None:
                continue
            grades.update([grade] if grade else [])
            if value == "positive":
                lymphatic_only = lymphatic_only and LYMPHATIC_CODE in {(s, c) for s, c, _ in codings(code)}
            detail = f"{matched.detail} = {', '.join(value_texts(holder)) or _bool_text(holder)}"
            found.append((value, Evidence(reference_of(obs), "value", detail, observation_date(obs))))
    return found, notes, grades, lymphatic_only and bool(found)


def margin_fact(resection: Resection, observations: Sequence[Any], terms: Terminology, criteria: Criteria) -> Fact:
    """Resection margin ``R0`` or ``involved`` (R1/R2): pathology first, else the operation's outcome or notes."""
    found: list[tuple[str, Evidence]] = []
    notes: list[str] = []
    margin_codes, distance_codes = terms.concept("margin_observation"), terms.concept("margin_distance")
    for obs in observations:
        if _is_imaging(obs):
            continue
        for code, holder in observation_parts(obs):
            is_distance = distance_codes.match(code) is not None
            if not (is_distance or margin_codes.affirms(code)):
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
    if not found:
        procedure = resection.procedure
        for label, match in terms.classifier("margin").classify(procedure.outcome, note_texts(procedure.note)):
            found.append((label, Evidence(resection.reference, "outcome", match.detail, resection.date)))
    return _combine("margin", found, notes, "no margin (R) status for the hepatectomy")


def _is_imaging(obs: Any) -> bool:
    return any(code == "imaging" for category in obs.category or () for _, code, _ in codings(category))


def _belongs_to(obs: Any, resection: Resection, criteria: Criteria) -> bool:
    if any(ref.reference == resection.reference for ref in obs.partOf or ()):
        return True
    when = observation_date(obs)
    if when is None:
        return False
    # From the day of surgery (the specimen) to the window after it, at the dates' own precision.
    return when.end >= resection.date.start and (when.start - resection.date.end).days <= criteria.pathology_window_days


def _mvi_value(holder: Any, terms: Terminology, criteria: Criteria) -> tuple[str | None, str | None]:
    """``(positive/negative/None, M grade)`` from a ``value[x]``: a boolean, a grade, or present/absent words."""
    if getattr(holder, "valueBoolean", None) is not None:
        return ("positive" if holder.valueBoolean else "negative"), None
    return _mvi_answer(getattr(holder, "valueCodeableConcept", None), value_texts(holder), terms, criteria)


def _mvi_answer(
    concept: Any, strings: Sequence[str], terms: Terminology, criteria: Criteria
) -> tuple[str | None, str | None]:
    answers: set[str] = set()
    grade_found: str | None = None
    if concept is not None and list(codings(concept)):
        coded = terms.classifier("presence").first(concept, ())
        if coded is not None:
            answers.add(coded[0])
    for clause in (c for text in strings for c in _CLAUSE.split(text) if c.strip()):
        if _LARGE_VESSEL.search(clause):
            continue  # "no large vessel invasion" says nothing about microvascular invasion
        if terms.qualifiers.is_uncertain(clause):
            return None, None  # "possibly present", "可疑阳性": not an answer
        grade = terms.classifier("mvi_grade").first(None, [clause])
        if grade is not None:
            grade_found = grade[0]
            answers.add("positive" if grade[0] in criteria.mvi_positive_grades else "negative")
            continue
        presence = terms.classifier("presence").first(None, [clause])
        if presence is not None:
            answers.add(presence[0])
    if len(answers) != 1 or "indeterminate" in answers:
        return None, None
    return answers.pop(), grade_found


def _bool_text(holder: Any) -> str:
    value = getattr(holder, "valueBoolean", None)
    return "" if value is None else str(value).lower()


def _mvi_from_condition_evidence(
    hcc_conditions: Sequence[Any], terms: Terminology, criteria: Criteria
) -> list[tuple[str, Evidence]]:
    """MVI written in Condition.evidence ("Microvascular invasion: present (M2)"): an explicit answer only."""
    out: list[tuple[str, Evidence]] = []
    micro = terms.concept("mvi_observation")
    for condition in hcc_conditions:
        for item in condition.evidence or ():
            for concept in item.code or ():
                strings = texts(concept)
                match = micro.match_text(strings)
                if match is None or match.uncertain:
                    continue
                if match.negated:
                    out.append(("negative", Evidence(reference_of(condition), "evidence.code", match.detail)))
                    continue
                value, _ = _mvi_answer(None, strings, terms, criteria)
                if value is not None:
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
