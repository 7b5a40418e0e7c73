"""Fitness for treatment: liver function (Child-Pugh) and performance status (ECOG), recent values only
(clinical notes 2.8, 2.9).

Child-Pugh and ECOG have no confirmed standard code besides LOINC 89247-1 for ECOG, so both are also read from
local codes and text. A decompensation diagnosis (ascites, encephalopathy, variceal bleeding...) within the
look-back window overrides any Child-Pugh class. Child-Pugh "B" without a score is unknown: B7 and B8-9 lead to
different answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate, before, latest, within_days
from cds.clinical.fhirview import observation_date, reference_of, status_code
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import (
    condition_date,
    condition_mention,
    finding_in,
    observation_final,
    observation_parts,
    value_number,
    value_texts,
)
from cds.clinical.terminology import Terminology

_CLASS = re.compile(
    r"(?<![A-Za-z])([ABC])(?![A-Za-z])\s*级?\s*(?:[(（]?\s*(\d{1,2})\s*(?:points?|分)?\s*[)）]?)?", re.I
)
_SCORE = re.compile(r"(?<![0-9])(\d{1,2})\s*(?:points?|分)?(?![0-9])", re.I)
_ECOG_DIGIT = re.compile(r"(?<![0-9])([0-5])(?![0-9])")


def child_pugh_fact(
    conditions: Sequence[Any], observations: Sequence[Any], today: date, terms: Terminology, criteria: Criteria
) -> Fact:
    """``A5``/``A6``/``A``/``B7``/``B8``/``C``/``decompensated``... or unknown."""
    decompensation = _decompensation(conditions, today, terms, criteria)
    decompensation += _decompensation_observed(observations, today, terms, criteria)
    if any(e.detail.startswith("decompensation") for e in decompensation):
        return Fact("child_pugh", "decompensated", tuple(decompensation))
    if decompensation:
        return Fact("child_pugh", None, tuple(decompensation), note="possible decompensation needs confirmation")
    readings = latest(
        (
            (value, Evidence(reference_of(obs), "value", detail, when), when)
            for obs, holder in _observations(observations, terms.concept("child_pugh_observation").match)
            for value, detail in [_child_pugh_value(holder)]
            for when in [observation_date(obs)]
            if value is not None and when is not None and when.start <= today  # a future date is an error
        ),
        _reading_date,
    )
    return _recent("child_pugh", readings, today, criteria.child_pugh_max_age_days, "Child-Pugh class")


def ecog_fact(observations: Sequence[Any], today: date, terms: Terminology, criteria: Criteria) -> Fact:
    """The most recent ECOG performance status (``0``-``5``) within the allowed age, or unknown."""
    readings = latest(
        (
            (value, Evidence(reference_of(obs), "value", f"ECOG {value}", when), when)
            for obs, holder in _observations(observations, terms.concept("ecog_observation").match)
            for value in [_ecog_value(holder, terms)]
            for when in [observation_date(obs)]
            if value is not None and when is not None and when.start <= today  # a future date is an error
        ),
        _reading_date,
    )
    ecog = _recent("ecog", readings, today, criteria.ecog_max_age_days, "ECOG performance status")
    poor = _poor_karnofsky(observations, today, terms, criteria)
    if poor is not None and poor.date is not None and (ecog.date is None or not before(poor.date, ecog.date)):
        note = "Karnofsky 60 or less (ECOG 2 or worse by the usual conversion)"
        return Fact("ecog", "2", (poor,), note=note, date=poor.date)
    return ecog


def child_pugh_score(value: str) -> int | None:
    """The score in a Child-Pugh value (``B7`` -> 7); None for a class without a score (``A``, ``B``)."""
    digits = re.sub(r"\D", "", value)
    return int(digits) if digits else None


def _observations(observations: Sequence[Any], matches: Any) -> list[tuple[Any, Any]]:
    out = []
    for obs in observations:
        if not observation_final(obs):
            continue
        for code, holder in observation_parts(obs):
            match = matches(code)
            if match and not match.negated:
                out.append((obs, holder))
    return out


def _reading_date(reading: tuple[str, Evidence, FhirDate]) -> FhirDate:
    return reading[2]


def _recent(name: str, readings: list[tuple[str, Evidence, FhirDate]], today: date, max_days: int, label: str) -> Fact:
    if not readings:
        return Fact(name, None, note=f"no {label} recorded")
    values = {value for value, _, _ in readings}
    evidence = tuple(e for _, e, _ in readings)
    when = readings[0][2]
    if len(values) > 1:
        return Fact(name, None, evidence, note=f"conflicting {label} values on {when}")
    if not within_days(when, today, max_days):
        return Fact(name, None, evidence, note=f"latest {label} ({values.pop()}, {when}) is older than {max_days} days")
    return Fact(name, values.pop(), evidence, date=when)


def _child_pugh_value(holder: Any) -> tuple[str | None, str]:
    number = value_number(holder)
    strings = value_texts(holder)
    score = int(number) if number is not None else None
    letter = None
    for text in strings:
        match = _CLASS.search(text)
        if match:
            letter = match.group(1).upper()
            score = score or (int(match.group(2)) if match.group(2) else None)
            break
        found = _SCORE.search(text)
        if found and score is None:
            score = int(found.group(1))
    if score is not None and not 5 <= score <= 15:
        return None, ""
    implied = None if score is None else ("A" if score <= 6 else "B" if score <= 9 else "C")
    if letter and implied and letter != implied:
        return None, ""
    letter = letter or implied
    if letter is None:
        return None, ""
    shown = ", ".join(strings) or str(score)
    return f"{letter}{score if score is not None else ''}", f"Child-Pugh {shown}"


def _ecog_value(holder: Any, terms: Terminology) -> str | None:
    number = value_number(holder)
    if number is not None:
        return str(int(number)) if number == int(number) and 0 <= number <= 5 else None
    answer = terms.classifier("ecog_answer").first(getattr(holder, "valueCodeableConcept", None), ())
    if answer:
        return answer[0]
    digits = [int(d) for text in value_texts(holder) for d in _ECOG_DIGIT.findall(text)]
    return str(max(digits)) if digits else None  # "ECOG 1-2" counts as 2: the worse reading decides


def _poor_karnofsky(
    observations: Sequence[Any], today: date, terms: Terminology, criteria: Criteria
) -> Evidence | None:
    """The latest recent Karnofsky score of 60 or less, if any."""
    kps = terms.concept("karnofsky_observation")
    found: list[tuple[FhirDate, float, Evidence]] = []
    for obs in observations:
        score, when = value_number(obs), observation_date(obs)
        if not observation_final(obs) or kps.affirms(obs.code) is None or score is None or when is None:
            continue
        if when.start <= today and within_days(when, today, criteria.ecog_max_age_days):
            found.append((when, score, Evidence(reference_of(obs), "value", f"Karnofsky {score:g}", when)))
    if not found:
        return None
    _, score, evidence = max(found, key=lambda item: item[0].start)
    return evidence if score <= 60 else None


def _decompensation_observed(
    observations: Sequence[Any], today: date, terms: Terminology, criteria: Criteria
) -> list[Evidence]:
    """Ascites, encephalopathy... reported in an Observation (exam, imaging) within the look-back."""
    concept, presence = terms.concept("decompensation"), terms.classifier("presence")
    out = []
    for obs in observations:
        when = observation_date(obs)
        if (
            not observation_final(obs)
            or when is None
            or not within_days(when, today, criteria.decompensation_lookback_days)
        ):
            continue
        strings = value_texts(obs)
        found = finding_in(concept, presence, obs.code, obs, strings)
        if found is not None:
            match, coded = found
            label = "decompensation" if coded or match.affirmed else "possible decompensation"
            detail = ", ".join(strings) if coded else match.detail  # a coded finding: quote its answer
            out.append(Evidence(reference_of(obs), "value", f"{label}: {detail}", when))
    return out


def _decompensation(conditions: Sequence[Any], today: date, terms: Terminology, criteria: Criteria) -> list[Evidence]:
    concept = terms.concept("decompensation")
    out = []
    for condition in conditions:
        match = condition_mention(condition, concept)
        when = condition_date(condition)
        # An explicitly active problem counts however old; one without a status only within the look-back.
        explicit = status_code(condition.clinicalStatus) is not None
        recent = explicit or when is None or within_days(when, today, criteria.decompensation_lookback_days)
        if match is not None and recent:
            label = "decompensation" if match.affirmed else "possible decompensation"
            out.append(Evidence(reference_of(condition), "code", f"{label}: {match.detail}", when))
    return out
