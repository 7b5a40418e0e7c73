"""Facts about the person: alive, age on the hook date, pregnancy (clinical notes 3.1, 4.1)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from cds.clinical.dates import age_range, parse_date, within_days
from cds.clinical.fhirview import observation_date, reference_of
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import condition_date, condition_mention, observation_final, value_texts
from cds.clinical.terminology import Terminology


def deceased_fact(patient: Any) -> Fact:
    if patient is None:
        return Fact("deceased", None, note="no Patient resource")
    if patient.deceasedBoolean or patient.deceasedDateTime:
        detail = f"deceased {patient.deceasedDateTime or 'true'}"
        return Fact("deceased", "yes", (Evidence(reference_of(patient), "deceased", detail),))
    return Fact("deceased", "no")


def age_fact(patient: Any, today: date, minimum: int) -> Fact:
    """Age in years on ``today``; unknown when the birth date is missing or too vague to compare with ``minimum``."""
    birth = parse_date(patient.birthDate) if patient is not None else None
    if birth is None:
        return Fact("age", None, note="birth date not recorded")
    youngest, oldest = age_range(birth, today)
    evidence = (Evidence(reference_of(patient), "birthDate", str(birth)),)
    if youngest < minimum <= oldest:
        return Fact("age", None, evidence, note=f"birth date {birth} too imprecise to tell whether {minimum} or older")
    value = str(youngest) if youngest == oldest else f"{youngest}-{oldest}"
    return Fact("age", value, evidence)


def pregnancy_fact(conditions: Sequence[Any], observations: Sequence[Any], today: date, terms: Terminology) -> Fact:
    """Pregnancy from an active Condition, or from a positive pregnancy status or test in the last 300 days."""
    concept = terms.concept("pregnancy")
    evidence = []
    for condition in conditions:
        match = condition_mention(condition, concept)
        # A possible pregnancy counts too: sorafenib is never proposed when pregnancy is in doubt.
        if match is not None:
            evidence.append(Evidence(reference_of(condition), "code", match.detail, condition_date(condition)))
    test = terms.concept("pregnancy_observation")
    presence = terms.classifier("presence")
    for obs in observations:
        when = observation_date(obs)
        recent = when is None or within_days(when, today, 300)  # an undated positive result counts: ask, never guess
        if not observation_final(obs) or not recent or not test.match(obs.code):
            continue
        strings = value_texts(obs)
        answer = presence.first(obs.valueCodeableConcept, strings)
        pregnant = concept.match(obs.valueCodeableConcept, strings)
        if (
            obs.valueBoolean is True
            or (answer is not None and answer[0] == "positive")
            or (pregnant is not None and not pregnant.negated and answer is None)
        ):
            evidence.append(Evidence(reference_of(obs), "value", ", ".join(strings) or "positive", when))
    return Fact("pregnancy", "yes" if evidence else "no", tuple(evidence))


def other_cancer_fact(conditions: Sequence[Any], terms: Terminology) -> Fact:
    """Another active primary cancer (coded in ICD-10 chapter II outside the liver): a caution, not an exclusion."""
    concept = terms.concept("other_primary_cancer")
    evidence = [
        Evidence(reference_of(c), "code", match.detail, condition_date(c))
        for c in conditions
        for match in [condition_mention(c, concept)]
        if match is not None and match.affirmed
    ]
    return Fact("other_cancer", "yes" if evidence else "no", tuple(evidence))
