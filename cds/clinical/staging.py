"""Stage of the recurrence: explicit BCLC/CNLC staging dated at or after the recurrence, overruled by
macrovascular invasion or extrahepatic spread found after the hepatectomy (clinical notes 2.3, 2.10, 3.2.3, 4.1).

- A stage from before the recurrence (typically the first diagnosis, left on Condition.stage) is stale and does not
  count; nor does one older than the configured age on the hook date. The most recent staging wins; disagreeing
  or doubtful values ("BCLC B?", "not BCLC B") make the stage unknown. A stage whose system is not named BCLC or
  CNLC is not read (a "B" could be a Child-Pugh class).
- Vascular invasion or spread recorded after the hepatectomy makes the stage C (BCLC C: outside the trial). A
  possible one (portal vein thrombosis not said to be tumour, "suspected PVTT", "MVI" on imaging, which may mean
  macrovascular invasion) makes an otherwise B stage unknown: the card asks rather than guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate, latest, on_or_after, parse_date, within_days
from cds.clinical.fhirview import codings, observation_date, reference_of, texts
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import (
    condition_date,
    condition_mention,
    condition_onset,
    finding_in,
    observation_final,
    observation_parts,
    observation_preliminary,
    value_texts,
)
from cds.clinical.terminology import Concept, Terminology

NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
BCLC_CODES = {(NCIT, "C115134"), (NCIT, "C115132")}


@dataclass(frozen=True)
class Staging:
    value: str  # "B", another BCLC letter, or "CNLC <stage>"; a CNLC stage mapped to B keeps its origin in ``mapped``
    evidence: Evidence
    date: FhirDate | None
    mapped: str | None = None


def stage_fact(
    hcc_conditions: Sequence[Any],
    conditions: Sequence[Any],
    observations: Sequence[Any],
    since: FhirDate,
    after_surgery: FhirDate,
    today: date,
    terms: Terminology,
    criteria: Criteria,
) -> Fact:
    """``B`` (eligible stage), another stage, or unknown. ``since``: the recurrence; ``after_surgery``: the
    earliest date a finding belongs to the recurrent disease (the hepatectomy plus the residual interval)."""
    spread, possible = _spread(conditions, observations, after_surgery, terms)
    if spread:
        return Fact(
            "stage", "C", tuple(spread), note="macrovascular invasion or extrahepatic spread after the hepatectomy"
        )
    stagings = _condition_stagings(hcc_conditions, observations, terms, criteria)
    stagings += _observation_stagings(observations, terms, criteria)
    current = [
        s
        for s in stagings
        if s.date
        and on_or_after(s.date, since)
        and s.date.start <= today
        and within_days(s.date, today, criteria.staging_max_age_days)
    ]
    stale = [s for s in stagings if s not in current]
    if not current:
        note = "no BCLC/CNLC staging dated at or after the recurrence"
        if stale:
            note += " (stale: " + "; ".join(s.evidence.describe() for s in stale) + ")"
        return Fact("stage", None, note=note)
    newest = latest(current, lambda s: s.date)
    values = {s.value for s in newest}
    evidence = tuple(s.evidence for s in newest)
    if len(values) > 1 or "?" in values:
        return Fact("stage", None, evidence, note="conflicting or doubtful stagings on the same date")
    value = values.pop()
    earlier = [s for s in current if s.value != value]
    if value == "B" and earlier:
        # Staged beyond B since the recurrence, then B again: ask rather than take the last word.
        note = "stagings since the recurrence disagree: " + "; ".join(s.evidence.describe() for s in earlier)
        return Fact("stage", None, evidence + tuple(s.evidence for s in earlier), note=note)
    if value == "B" and possible:
        note = "possible portal vein tumour thrombus or spread needs confirmation"
        return Fact("stage", None, evidence + tuple(possible), note=note)
    mapped = next((s.mapped for s in newest if s.mapped), None)
    return Fact("stage", value, evidence, date=newest[0].date, note=f"mapped from {mapped}" if mapped else None)


def _condition_stagings(
    hcc_conditions: Sequence[Any], observations: Sequence[Any], terms: Terminology, criteria: Criteria
) -> list[Staging]:
    by_id = {obs.id: obs for obs in observations if obs.id}
    out: list[Staging] = []
    for condition in hcc_conditions:
        for stage in condition.stage or ():
            system = _system(texts(stage.summary) + texts(stage.type), stage.summary, stage.type)
            if system is None:
                continue
            staged = _classify(system, stage.summary, texts(stage.summary), terms, criteria)
            if staged is None:
                continue
            # Condition.stage has no date of its own: take the assessment's date, else the Condition's onset
            # (right for a Condition created for the recurrence, stale for the first diagnosis).
            assessed = [by_id.get(ref.reference.split("/")[-1]) for ref in stage.assessment or () if ref.reference]
            dates = [observation_date(obs) for obs in assessed if obs is not None]
            when = next((d for d in dates if d), None) or condition_onset(condition)
            detail = f"stage {', '.join(texts(stage.summary))}"
            evidence = Evidence(reference_of(condition), "stage.summary", detail, when)
            out.append(Staging(staged[0], evidence, when, staged[1]))
    return out


def _observation_stagings(observations: Sequence[Any], terms: Terminology, criteria: Criteria) -> list[Staging]:
    staging = terms.concept("staging_observation")
    out: list[Staging] = []
    for obs in observations:
        if not observation_final(obs) or not (staging.affirms(obs.code) or staging.affirms(obs.method)):
            continue
        system = _system(texts(obs.code) + texts(obs.method), obs.code, obs.method)
        if system is None:
            continue
        staged = _classify(system, obs.valueCodeableConcept, value_texts(obs), terms, criteria)
        if staged is None:
            continue
        when = observation_date(obs)
        shown = ", ".join(value_texts(obs))
        detail = shown if system.upper() in shown.upper() else f"{system} {shown}"
        out.append(Staging(staged[0], Evidence(reference_of(obs), "value", detail, when), when, staged[1]))
    return out


def _system(strings: list[str], *concepts: Any) -> str | None:
    joined = " ".join(strings).upper()
    if "CNLC" in joined or "中国肝癌分期" in joined or "CHINA LIVER" in joined:
        return "CNLC"
    coded = {(system, code) for concept in concepts for system, code, _ in codings(concept)}
    if "BCLC" in joined or "BARCELONA" in joined or "巴塞罗那" in joined or coded & BCLC_CODES:
        return "BCLC"
    return None


def _classify(
    system: str, concept: Any, strings: list[str], terms: Terminology, criteria: Criteria
) -> tuple[str, str | None] | None:
    """``(stage, CNLC stage it was mapped from)``; ``("?", None)`` when the value is doubtful or negated."""
    prefixed = [f"{system} {s}" for s in strings]
    classifier = terms.classifier("cnlc" if system == "CNLC" else "bclc")
    labels = {label for label, _ in classifier.classify(None if system == "CNLC" else concept, prefixed)}
    if classifier.doubtful(None, prefixed):
        return "?", None
    if len(labels) != 1:
        return None
    label = labels.pop()
    if system == "CNLC":
        return ("B", f"CNLC {label}") if label in criteria.cnlc_as_bclc_b else (f"CNLC {label}", None)
    return label, None


def _spread(
    conditions: Sequence[Any], observations: Sequence[Any], after_surgery: FhirDate, terms: Terminology
) -> tuple[list[Evidence], list[Evidence]]:
    """``(definite, possible)`` vascular invasion or extrahepatic spread after the hepatectomy."""
    definite: list[Evidence] = []
    possible: list[Evidence] = []
    findings = (
        (terms.concept("macrovascular_invasion"), "macrovascular invasion"),
        (terms.concept("secondary_malignancy"), "extrahepatic spread"),
    )
    for condition in conditions:
        when = condition_date(condition)
        for concept, what in findings:
            match = condition_mention(condition, concept)
            # Active spread counts whenever recorded; vascular invasion once the resected tumour is gone.
            recent = what == "extrahepatic spread" or when is None or on_or_after(when, after_surgery)
            if match is not None and recent:
                evidence = Evidence(reference_of(condition), "code", f"{what}: {match.detail}", when)
                (definite if match.affirmed else possible).append(evidence)
    for obs in observations:
        when = observation_date(obs)
        if observation_final(obs) and when is not None and on_or_after(when, after_surgery):
            _findings_in_observation(obs, when, findings, terms, definite, possible)
        elif (observation_final(obs) or observation_preliminary(obs)) and _maybe_after(obs, after_surgery):
            # A preliminary or undated report of spread is not proof, but it is reason to ask.
            found: list[Evidence] = []
            _findings_in_observation(obs, when or after_surgery, findings, terms, found, found)
            possible += found
    # Portal vein thrombosis not said to be tumour, and metastases without a site: reason to ask.
    for name, label in (("portal_vein_thrombosis", "portal vein thrombosis"), ("metastasis_unspecified", "metastasis")):
        possible += _mentions_since(terms.concept(name), label, conditions, observations, after_surgery)
    return definite, possible


def _mentions_since(
    concept: Concept, label: str, conditions: Sequence[Any], observations: Sequence[Any], after_surgery: FhirDate
) -> list[Evidence]:
    """Active Conditions and final Observations since the hepatectomy that mention ``concept`` without negating it."""
    out = []
    for condition in conditions:
        when = condition_date(condition)
        match = condition_mention(condition, concept)
        if match is not None and (when is None or on_or_after(when, after_surgery)):
            out.append(Evidence(reference_of(condition), "code", f"{label}: {match.detail}", when))
    for obs in observations:
        when = observation_date(obs)
        if observation_final(obs) and when is not None and on_or_after(when, after_surgery):
            match = concept.match_text(value_texts(obs))
            if match is not None and not match.negated:
                out.append(Evidence(reference_of(obs), "value", f"{label}: {match.detail}", when))
    return out


def _maybe_after(obs: Any, after_surgery: FhirDate) -> bool:
    when = observation_date(obs) or parse_date(obs.issued)
    return when is None or on_or_after(when, after_surgery)


def _findings_in_observation(
    obs: Any,
    when: FhirDate,
    findings: tuple[tuple[Concept, str], ...],
    terms: Terminology,
    definite: list[Evidence],
    possible: list[Evidence],
) -> None:
    presence, abbreviation = terms.classifier("presence"), terms.concept("mvi_abbreviation")
    for code, holder in observation_parts(obs):
        strings = value_texts(holder)
        for concept, what in findings:
            found = finding_in(concept, presence, code, holder, strings)
            if found is not None:
                match, coded = found
                evidence = Evidence(reference_of(obs), "value", f"{what}: {match.detail}", when)
                (definite if coded or match.affirmed else possible).append(evidence)
        # "MVI" after surgery (imaging, not the specimen) may well mean macrovascular invasion.
        found = finding_in(abbreviation, presence, code, holder, strings)
        if found is not None and (found[1] or found[0].affirmed):
            possible.append(Evidence(reference_of(obs), "value", f"'MVI' after surgery: {found[0].detail}", when))
