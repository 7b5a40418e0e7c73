"""Facts about the person: alive, age on the hook date, pregnancy (clinical notes 3.1, 4.1)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from cds.clinical.dates import age_range, parse_date
from cds.clinical.fhirview import reference_of
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import condition_active, condition_date, condition_readable
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


def pregnancy_fact(conditions: Sequence[Any], terms: Terminology) -> Fact:
    concept = terms.concept("pregnancy")
    evidence = []
    for condition in conditions:
        match = concept.match(condition.code)
        if match and not match.negated and condition_readable(condition) and condition_active(condition):
            evidence.append(Evidence(reference_of(condition), "code", match.detail, condition_date(condition)))
    return Fact("pregnancy", "yes" if evidence else "no", tuple(evidence))
