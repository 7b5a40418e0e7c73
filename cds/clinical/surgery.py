"""Hepatectomy, liver transplant and TACE from Procedures (and transplant status from Conditions).

Only *completed* procedures count. A partial hepatectomy needs a date, because recurrence, MVI and margin are
all read relative to it; an undated one is reported, not used. Whole-liver resection and transplant describe a
different population (clinical notes 3.2.8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cds.clinical.dates import FhirDate, on_or_after
from cds.clinical.fhirview import reference_of
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import (
    condition_date,
    condition_mention,
    procedure_completed,
    procedure_date,
)
from cds.clinical.terminology import Terminology


@dataclass(frozen=True)
class Resection:
    procedure: Any
    date: FhirDate
    evidence: Evidence

    @property
    def reference(self) -> str:
        return reference_of(self.procedure)


def find_resection(procedures: Sequence[Any], terms: Terminology) -> tuple[Resection | None, Fact]:
    """The most recent completed, dated partial hepatectomy."""
    hepatectomy = terms.concept("partial_hepatectomy")
    transplant = terms.concept("liver_transplant_procedure")
    dated: list[Resection] = []
    undated: list[Evidence] = []
    for procedure in procedures:
        if not procedure_completed(procedure) or transplant.affirms(procedure.code):
            continue
        match = hepatectomy.affirms(procedure.code)
        if match is None:
            continue
        when = procedure_date(procedure)
        evidence = Evidence(reference_of(procedure), "code", match.detail, when)
        if when is None:
            undated.append(evidence)
        else:
            dated.append(Resection(procedure, when, evidence))
    if dated:
        latest = max(dated, key=lambda r: r.date.start)
        return latest, Fact("resection", "completed", (latest.evidence,), date=latest.date)
    if undated:
        return None, Fact("resection", "undated", tuple(undated), note="hepatectomy recorded without a date")
    return None, Fact("resection", "absent", note="no completed partial hepatectomy in the record")


def transplant_fact(conditions: Sequence[Any], procedures: Sequence[Any], terms: Terminology) -> Fact:
    """Liver transplant (or whole-liver resection) done, or transplant status recorded."""
    evidence: list[Evidence] = []
    procedure_concept = terms.concept("liver_transplant_procedure")
    for procedure in procedures:
        match = procedure_concept.affirms(procedure.code)
        if procedure_completed(procedure) and match:
            evidence.append(Evidence(reference_of(procedure), "code", match.detail, procedure_date(procedure)))
    status_concept = terms.concept("liver_transplant_status")
    for condition in conditions:
        match = condition_mention(condition, status_concept)
        if match is not None and match.affirmed:
            evidence.append(Evidence(reference_of(condition), "code", match.detail, condition_date(condition)))
    return Fact("transplant", "yes" if evidence else "no", tuple(evidence))


def tace_since(procedures: Sequence[Any], since: FhirDate | None, terms: Terminology) -> Fact:
    """TACE completed on or after ``since`` (the recurrence); unknown when there is no date to compare with."""
    tace = terms.concept("tace")
    evidence: list[Evidence] = []
    for procedure in procedures:
        match = tace.affirms(procedure.code)
        when = procedure_date(procedure)
        if not procedure_completed(procedure) or match is None or when is None:
            continue
        if since is not None and on_or_after(when, since):
            evidence.append(Evidence(reference_of(procedure), "code", match.detail, when))
    return Fact("tace_since_recurrence", "yes" if evidence else "no", tuple(evidence))
