"""Stage of the recurrence: explicit BCLC/CNLC staging dated at or after the recurrence, overruled by
macrovascular invasion or extrahepatic spread found since then (clinical notes 2.3, 2.10, 3.2.3, 4.1).

A stage from before the recurrence (typically the first diagnosis, left on Condition.stage) is stale and does not
count; nor does one older than the configured age on the hook date. When several current stagings exist, the
most recent wins; disagreeing values on that date make the stage unknown. A portal vein thrombosis that is not
said to be tumour makes the stage unknown ("possible PVTT") unless the stage is already not B.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate, on_or_after, within_days
from cds.clinical.fhirview import observation_date, reference_of, texts
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import (
    condition_active,
    condition_date,
    condition_onset,
    condition_readable,
    observation_final,
    observation_parts,
    value_texts,
)
from cds.clinical.terminology import Terminology


@dataclass(frozen=True)
class Staging:
    value: str  # "B", or another BCLC letter, or "CNLC <stage>" mapped below
    evidence: Evidence
    date: FhirDate | None


def stage_fact(
    hcc_conditions: Sequence[Any],
    conditions: Sequence[Any],
    observations: Sequence[Any],
    since: FhirDate,
    today: date,
    terms: Terminology,
    criteria: Criteria,
) -> Fact:
    """``B`` (eligible stage), another stage (``A``, ``C``...), or unknown; ``since`` is the recurrence date."""
    spread = _spread(conditions, observations, since, terms)
    if spread:
        return Fact(
            "stage", "C", tuple(spread), note="macrovascular invasion or extrahepatic spread since the recurrence"
        )
    stagings = _condition_stagings(hcc_conditions, observations, terms, criteria) + _observation_stagings(
        observations, terms, criteria
    )
    current = [
        s
        for s in stagings
        if s.date and on_or_after(s.date, since) and within_days(s.date, today, criteria.staging_max_age_days)
    ]
    stale = [s for s in stagings if s not in current]
    if not current:
        note = "no BCLC/CNLC staging dated at or after the recurrence"
        if stale:
            note += " (stale: " + "; ".join(s.evidence.describe() for s in stale) + ")"
        return Fact("stage", None, note=note)
    latest_day = max(s.date.start for s in current if s.date)
    latest = [s for s in current if s.date and s.date.start == latest_day]
    values = {s.value for s in latest}
    evidence = tuple(s.evidence for s in latest)
    if len(values) > 1:
        return Fact("stage", None, evidence, note="conflicting stagings on the same date")
    value = values.pop()
    possible_pvtt = _possible_pvtt(conditions, since, terms)
    if value == "B" and possible_pvtt:
        return Fact(
            "stage",
            None,
            evidence + tuple(possible_pvtt),
            note="possible portal vein tumour thrombus needs confirmation",
        )
    return Fact("stage", value, evidence, date=latest[0].date)


def _condition_stagings(
    hcc_conditions: Sequence[Any], observations: Sequence[Any], terms: Terminology, criteria: Criteria
) -> list[Staging]:
    by_id = {obs.id: obs for obs in observations if obs.id}
    out: list[Staging] = []
    for condition in hcc_conditions:
        for stage in condition.stage or ():
            strings = texts(stage.summary) + texts(stage.type)
            system = _system(strings)
            value = _classify(system, stage.summary, texts(stage.summary), terms, criteria)
            if value is None:
                continue
            # Condition.stage has no date of its own: take the assessment's date, else the Condition's onset
            # (right for a Condition created for the recurrence, stale for the first diagnosis).
            assessed = [by_id.get(ref.reference.split("/")[-1]) for ref in stage.assessment or () if ref.reference]
            dates = [observation_date(obs) for obs in assessed if obs is not None]
            when = next((d for d in dates if d), None) or condition_onset(condition)
            detail = f"stage {', '.join(texts(stage.summary))}"
            out.append(Staging(value, Evidence(reference_of(condition), "stage.summary", detail, when), when))
    return out


def _observation_stagings(observations: Sequence[Any], terms: Terminology, criteria: Criteria) -> list[Staging]:
    staging = terms.concept("staging_observation")
    out: list[Staging] = []
    for obs in observations:
        if not observation_final(obs):
            continue
        code_match = staging.match(obs.code) or staging.match(obs.method)
        if not code_match:
            continue
        system = _system(texts(obs.code) + texts(obs.method))
        value = _classify(system, obs.valueCodeableConcept, value_texts(obs), terms, criteria)
        if value is None:
            continue
        when = observation_date(obs)
        shown = ", ".join(value_texts(obs))
        detail = shown if system.upper() in shown.upper() else f"{system} {shown}"
        out.append(Staging(value, Evidence(reference_of(obs), "value", detail, when), when))
    return out


def _system(strings: list[str]) -> str:
    joined = " ".join(strings).upper()
    if "CNLC" in joined or "中国肝癌分期" in joined or "CHINA LIVER" in joined:
        return "CNLC"
    return "BCLC"


def _classify(system: str, concept: Any, strings: list[str], terms: Terminology, criteria: Criteria) -> str | None:
    prefixed = [f"{system} {s}" for s in strings]
    if system == "CNLC":
        found = terms.classifier("cnlc").classify(None, prefixed)
        labels = {label for label, _ in found}
        if len(labels) != 1:
            return None
        label = labels.pop()
        return "B" if label in criteria.cnlc_as_bclc_b else f"CNLC {label}"
    found = terms.classifier("bclc").classify(concept, prefixed)
    labels = {label for label, _ in found}
    return labels.pop() if len(labels) == 1 else None


def _spread(
    conditions: Sequence[Any], observations: Sequence[Any], since: FhirDate, terms: Terminology
) -> list[Evidence]:
    out: list[Evidence] = []
    macro, secondary = terms.concept("macrovascular_invasion"), terms.concept("secondary_malignancy")
    for condition in conditions:
        if not condition_readable(condition) or not condition_active(condition):
            continue
        when = condition_date(condition)
        for concept, what in ((macro, "macrovascular invasion"), (secondary, "extrahepatic spread")):
            match = concept.match(condition.code)
            # Extrahepatic spread counts whenever active; vascular invasion only since the recurrence.
            recent = what == "extrahepatic spread" or when is None or on_or_after(when, since)
            if match and not match.negated and recent:
                out.append(Evidence(reference_of(condition), "code", f"{what}: {match.detail}", when))
    presence = terms.classifier("presence")
    for obs in observations:
        when = observation_date(obs)
        if not observation_final(obs) or when is None or not on_or_after(when, since):
            continue
        for code, holder in observation_parts(obs):
            for concept, what in ((macro, "macrovascular invasion"), (secondary, "extrahepatic spread")):
                if concept.match(code) is not None:
                    # A coded finding ("large vessel invasion: present"): read its answer.
                    answer = presence.first(getattr(holder, "valueCodeableConcept", None), value_texts(holder))
                    if answer and answer[0] == "positive":
                        out.append(Evidence(reference_of(obs), "value", f"{what}: {answer[1].detail}", when))
                    continue
                # A finding written in the value ("PVTT in the right portal vein").
                match = concept.match_text(value_texts(holder))
                if match and not match.negated:
                    out.append(Evidence(reference_of(obs), "value", f"{what}: {match.detail}", when))
    return out


def _possible_pvtt(conditions: Sequence[Any], since: FhirDate, terms: Terminology) -> list[Evidence]:
    concept = terms.concept("portal_vein_thrombosis")
    out = []
    for condition in conditions:
        when = condition_date(condition)
        match = concept.match(condition.code)
        if (
            match
            and not match.negated
            and condition_readable(condition)
            and condition_active(condition)
            and (when is None or on_or_after(when, since))
        ):
            out.append(Evidence(reference_of(condition), "code", f"portal vein thrombosis: {match.detail}", when))
    return out
