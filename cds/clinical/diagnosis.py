"""HCC diagnosis and its recurrence after the hepatectomy (clinical notes 2.1, 2.2, 3.2.1, 4.1).

HCC: a readable Condition coded or worded as HCC (text counts only where no standard code says otherwise);
unspecified liver cancer (C22.8, C22.9...) counts with HCC words or HCC histology. A histology Observation can
confirm HCC only from pathology, and never against a refuted HCC diagnosis.

Recurrence is recognised in three of the four ways real records show it:
(a) the HCC Condition's clinicalStatus is ``recurrence`` or ``relapse`` (not within the residual-disease interval
    after surgery);
(b) a new HCC Condition with onset at least the configured interval after the hepatectomy, the earlier episode
    being resolved, in remission or inactive;
(d) an mCODE cancer disease status (LOINC 97509-4) of "worsened" after the hepatectomy, about the HCC.
(c), a ``Z85.05`` history code with an imaging note, is deliberately not enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate, at_least_days_after, before
from cds.clinical.fhirview import observation_date, reference_of, status_code, texts
from cds.clinical.model import Evidence, Fact
from cds.clinical.records import (
    condition_active,
    condition_confirmed,
    condition_onset,
    condition_readable,
    observation_final,
    value_texts,
)
from cds.clinical.terminology import Match, Terminology

HISTOLOGY_EXTENSION = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"


@dataclass(frozen=True)
class HccCondition:
    condition: Any
    evidence: Evidence
    confirmed: bool
    fibrolamellar: bool

    @property
    def reference(self) -> str:
        return reference_of(self.condition)


def hcc_diagnosis(
    conditions: Sequence[Any], observations: Sequence[Any], terms: Terminology
) -> tuple[list[HccCondition], Fact]:
    """Every readable Condition that records HCC, and whether HCC is confirmed (by a confirmed Condition, or by
    HCC histology on pathology that no refuted diagnosis contradicts)."""
    histology_obs = _hcc_histology_observation(observations, terms)
    found: list[HccCondition] = []
    for condition in conditions:
        if not condition_readable(condition) or terms.concept("not_hcc").affirms(condition.code):
            continue
        match, element = _hcc_match(condition, histology_obs, terms)
        if match is None:
            continue
        evidence = Evidence(reference_of(condition), element, match.detail, condition_onset(condition))
        fibrolamellar = terms.concept("fibrolamellar_hcc").affirms(condition.code) is not None
        found.append(HccCondition(condition, evidence, condition_confirmed(condition), fibrolamellar))
    return found, _hcc_fact(found, histology_obs, conditions, terms)


def _hcc_fact(
    hcc: Sequence[HccCondition], histology: Evidence | None, conditions: Sequence[Any], terms: Terminology
) -> Fact:
    confirmed = [h for h in hcc if h.confirmed]
    if confirmed:
        return Fact("hcc", "confirmed", tuple(h.evidence for h in confirmed))
    if histology and not _refuted_hcc(conditions, terms):
        return Fact("hcc", "confirmed", (histology,))
    if hcc:
        unconfirmed = tuple(h.evidence for h in hcc)
        statuses = sorted({status_code(h.condition.verificationStatus) or "" for h in hcc})
        return Fact("hcc", "unconfirmed", unconfirmed, note=f"only {'/'.join(statuses)} HCC records")
    return Fact("hcc", "absent", note="no HCC diagnosis in the record")


def other_liver_cancer(conditions: Sequence[Any], observations: Sequence[Any], terms: Terminology) -> Fact:
    """An active, confirmed intrahepatic cholangiocarcinoma or combined tumour, in the problem list or on
    pathology: not the trial's population."""
    concept, pathology = terms.concept("not_hcc"), terms.concept("histology_observation")
    evidence = [
        Evidence(reference_of(c), "code", match.detail, condition_onset(c))
        for c in conditions
        if condition_readable(c) and condition_confirmed(c) and condition_active(c)
        for match in [concept.affirms(c.code) or _histology_says(c, concept)]
        if match is not None
    ]
    for obs in observations:
        if observation_final(obs) and pathology.affirms(obs.code) is not None:
            match = concept.affirms(obs.valueCodeableConcept, [obs.valueString] if obs.valueString else [])
            if match is not None:
                evidence.append(
                    Evidence(reference_of(obs), "value", f"pathology {match.detail}", observation_date(obs))
                )
    return Fact("other_liver_cancer", "yes" if evidence else "no", tuple(evidence))


def _histology_says(condition: Any, concept: Any) -> Match | None:
    for extension in condition.extension or ():
        if extension.url == HISTOLOGY_EXTENSION:
            match = concept.affirms(extension.valueCodeableConcept)
            if match is not None:
                return Match(f"histology {match.detail}")
    return None


def recurrence_fact(
    hcc: Sequence[HccCondition],
    observations: Sequence[Any],
    resection_date: FhirDate,
    terms: Terminology,
    criteria: Criteria,
) -> tuple[Fact, str | None]:
    """Recurrence after the hepatectomy, its date when recorded, and the Condition to cite as its reason."""
    gap = criteria.recurrence_minimum_days
    dated, undated, unconfirmed = _recurrence_in_conditions(hcc, resection_date, gap)
    dated += _recurrence_in_disease_status(observations, hcc, resection_date, gap, terms)
    if dated:
        dated.sort(key=lambda item: item[0].start)
        when, _, _ = dated[0]
        reason = next((ref for _, _, ref in dated if ref), None) or next((ref for _, ref in undated), None)
        found = tuple(item[1] for item in dated) + tuple(item[0] for item in undated)
        return Fact("recurrence", "confirmed", found, date=when), reason or _latest_reference(hcc)
    if undated:
        note = "recurrence recorded as a clinical status; its date is not recorded"
        return Fact("recurrence", "confirmed", tuple(e for e, _ in undated), note=note), undated[0][1]
    if unconfirmed:
        return Fact(
            "recurrence", "unconfirmed", tuple(unconfirmed), note="recurrence recorded only as unconfirmed"
        ), None
    return Fact(
        "recurrence", "absent", note=f"no HCC recurrence recorded after the hepatectomy of {resection_date}"
    ), None


Dated = list[tuple[FhirDate, Evidence, str | None]]


def _recurrence_in_conditions(
    hcc: Sequence[HccCondition], resection_date: FhirDate, gap: int
) -> tuple[Dated, list[tuple[Evidence, str]], list[Evidence]]:
    dated: Dated = []
    undated: list[tuple[Evidence, str]] = []
    unconfirmed: list[Evidence] = []
    resolved_episode = any(
        not condition_active(h.condition)
        and (onset := condition_onset(h.condition)) is not None
        and before(onset, resection_date)
        for h in hcc
    )
    for item in hcc:
        condition = item.condition
        if not condition_active(condition):
            continue
        status = status_code(condition.clinicalStatus)
        onset = condition_onset(condition)
        late_enough = onset is not None and at_least_days_after(onset, resection_date, gap)
        if onset is not None and not before(onset, resection_date) and not late_enough:
            continue  # within the interval after surgery: residual disease, not recurrence
        if not (status in ("recurrence", "relapse") or (late_enough and resolved_episode)):
            continue  # pattern (b) needs the first episode resolved: an old "active" record proves nothing
        kind = "onset" if late_enough else "clinicalStatus"
        evidence = Evidence(item.reference, kind, _describe(status, onset, late_enough), onset)
        if not item.confirmed:
            unconfirmed.append(evidence)
        elif late_enough and onset is not None:
            dated.append((onset, evidence, item.reference))
        else:
            undated.append((evidence, item.reference))
    return dated, undated, unconfirmed


def _recurrence_in_disease_status(
    observations: Sequence[Any], hcc: Sequence[HccCondition], resection_date: FhirDate, gap: int, terms: Terminology
) -> Dated:
    hcc_references = {h.reference for h in hcc}
    out: Dated = []
    for obs in observations:
        worsened = _disease_worsened(obs, hcc_references, terms)
        when = observation_date(obs)
        if worsened and when and at_least_days_after(when, resection_date, gap):
            out.append((when, Evidence(reference_of(obs), "value", f"disease status {worsened.detail}", when), None))
    return out


def _hcc_match(condition: Any, histology_obs: Evidence | None, terms: Terminology) -> tuple[Match | None, str]:
    if _histology_says(condition, terms.concept("not_hcc")) is not None:
        return None, "code"  # the morphology says cholangiocarcinoma or combined, whatever the code
    match = terms.concept("hcc").affirms(condition.code)
    if match is not None:
        return match, "code"
    unspecified = terms.concept("liver_cancer_unspecified").affirms(condition.code)
    if unspecified is None:
        return None, "code"
    worded = terms.concept("hcc").match_text(texts(condition.code))
    if worded is not None and worded.affirmed:
        return Match(f"{unspecified.detail} worded as HCC {worded.detail}"), "code"
    histology = _histology_says(condition, terms.concept("hcc_histology"))
    if histology is not None:
        return Match(f"{unspecified.detail} with {histology.detail}"), "extension[histology]"
    if histology_obs is not None:
        return Match(f"{unspecified.detail} with HCC histology in {histology_obs.reference}"), "code"
    return None, "code"


def _describe(status: str | None, onset: FhirDate | None, after: bool) -> str:
    state = f"clinicalStatus {status}" if status else "no clinicalStatus"
    if onset is None:
        return state
    return f"new HCC record with onset {onset} ({state})" if after else f"{state} (first diagnosed {onset})"


def _latest_reference(hcc: Sequence[HccCondition]) -> str | None:
    confirmed = [h for h in hcc if h.confirmed]
    if not confirmed:
        return None
    return max(confirmed, key=lambda h: h.evidence.date.start.toordinal() if h.evidence.date else 0).reference


def _disease_worsened(obs: Any, hcc_references: set[str], terms: Terminology) -> Match | None:
    if not observation_final(obs) or not terms.concept("disease_status_observation").match(obs.code):
        return None
    focus = [ref.reference for ref in obs.focus or () if ref.reference]
    if focus and not any(ref in hcc_references for ref in focus):
        return None  # the status of another condition (a second cancer)
    found = terms.classifier("disease_status").first(obs.valueCodeableConcept, value_texts(obs))
    return found[1] if found else None


def _hcc_histology_observation(observations: Sequence[Any], terms: Terminology) -> Evidence | None:
    histology, pathology = terms.concept("hcc_histology"), terms.concept("histology_observation")
    for obs in observations:
        if not observation_final(obs) or pathology.affirms(obs.code) is None:
            continue
        match = histology.affirms(obs.valueCodeableConcept, [obs.valueString] if obs.valueString else [])
        if match is not None:
            return Evidence(reference_of(obs), "value", f"histology {match.detail}", observation_date(obs))
    return None


def _refuted_hcc(conditions: Sequence[Any], terms: Terminology) -> bool:
    hcc = terms.concept("hcc")
    return any(not condition_readable(c) and hcc.match(c.code) is not None for c in conditions)
