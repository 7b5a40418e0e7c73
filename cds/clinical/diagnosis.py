"""HCC diagnosis and its recurrence after the hepatectomy (clinical notes 2.1, 2.2, 3.2.1, 4.1).

Recurrence is recognised in three of the four ways real records show it:
(a) the HCC Condition's clinicalStatus is ``recurrence`` or ``relapse``;
(b) an HCC Condition with onset at least the configured interval after the hepatectomy (the earlier episode
    resolved or in remission);
(d) an mCODE cancer disease status (LOINC 97509-4) of "worsened" dated after the hepatectomy.
(c), a ``Z85.05`` history code with an imaging note, is deliberately not enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.dates import FhirDate, at_least_days_after
from cds.clinical.fhirview import observation_date, reference_of, status_code
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

    @property
    def reference(self) -> str:
        return reference_of(self.condition)


def find_hcc(conditions: Sequence[Any], observations: Sequence[Any], terms: Terminology) -> list[HccCondition]:
    """Every readable Condition that records HCC: by code or text, or as unspecified liver cancer backed by HCC
    histology (the Condition's histology extension or a final histology Observation)."""
    histology_obs = _hcc_histology_observation(observations, terms)
    found: list[HccCondition] = []
    for condition in conditions:
        if not condition_readable(condition) or terms.concept("not_hcc").match(condition.code):
            continue
        match = terms.concept("hcc").match(condition.code)
        element = "code"
        if match is None or match.negated:
            match, element = _unspecified_with_histology(condition, histology_obs, terms)
        if match is None or match.negated:
            continue
        evidence = Evidence(reference_of(condition), element, match.detail, condition_onset(condition))
        found.append(HccCondition(condition, evidence, condition_confirmed(condition)))
    return found


def hcc_fact(hcc: Sequence[HccCondition], observations: Sequence[Any], terms: Terminology) -> Fact:
    confirmed = [h for h in hcc if h.confirmed]
    if confirmed:
        return Fact("hcc", "confirmed", tuple(h.evidence for h in confirmed))
    histology = _hcc_histology_observation(observations, terms)
    if histology:
        return Fact("hcc", "confirmed", (histology,))
    if hcc:
        unconfirmed = tuple(h.evidence for h in hcc)
        statuses = sorted({status_code(h.condition.verificationStatus) or "" for h in hcc})
        return Fact("hcc", "unconfirmed", unconfirmed, note=f"only {'/'.join(statuses)} HCC records")
    return Fact("hcc", "absent", note="no HCC diagnosis in the record")


def recurrence_fact(
    hcc: Sequence[HccCondition],
    observations: Sequence[Any],
    resection_date: FhirDate,
    terms: Terminology,
    criteria: Criteria,
) -> tuple[Fact, str | None]:
    """Recurrence after the hepatectomy, its date when recorded, and the Condition to cite as its reason."""
    gap = criteria.recurrence_minimum_days
    dated: list[tuple[FhirDate, Evidence, str | None]] = []
    undated: list[tuple[Evidence, str]] = []
    unconfirmed: list[Evidence] = []
    for item in hcc:
        condition = item.condition
        status = status_code(condition.clinicalStatus)
        onset = condition_onset(condition)
        after = onset is not None and at_least_days_after(onset, resection_date, gap)
        if not condition_active(condition):
            continue
        if status in ("recurrence", "relapse") or after:
            evidence = Evidence(
                item.reference, "clinicalStatus" if not after else "onset", _describe(status, onset, after), onset
            )
            if not item.confirmed:
                unconfirmed.append(evidence)
            elif after and onset is not None:
                dated.append((onset, evidence, item.reference))
            else:
                undated.append((evidence, item.reference))
    for obs in observations:
        worsened = _disease_worsened(obs, terms)
        when = observation_date(obs)
        if worsened and when and at_least_days_after(when, resection_date, gap):
            dated.append((when, Evidence(reference_of(obs), "value", f"disease status {worsened.detail}", when), None))
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


def _disease_worsened(obs: Any, terms: Terminology) -> Match | None:
    if not observation_final(obs) or not terms.concept("disease_status_observation").match(obs.code):
        return None
    found = terms.classifier("disease_status").first(obs.valueCodeableConcept, value_texts(obs))
    return found[1] if found else None


def _hcc_histology_observation(observations: Sequence[Any], terms: Terminology) -> Evidence | None:
    histology = terms.concept("hcc_histology")
    for obs in observations:
        if not observation_final(obs):
            continue
        match = histology.match(obs.valueCodeableConcept, [obs.valueString] if obs.valueString else [])
        if match and not match.negated:
            return Evidence(reference_of(obs), "value", f"histology {match.detail}", observation_date(obs))
    return None


def _unspecified_with_histology(
    condition: Any, histology_obs: Evidence | None, terms: Terminology
) -> tuple[Match | None, str]:
    unspecified = terms.concept("liver_cancer_unspecified").match(condition.code)
    if unspecified is None or unspecified.negated:
        return None, "code"
    for extension in condition.extension or ():
        if extension.url == HISTOLOGY_EXTENSION:
            histology = terms.concept("hcc_histology").match(extension.valueCodeableConcept)
            if histology and not histology.negated:
                return Match("code", f"{unspecified.detail} with histology {histology.detail}"), "extension[histology]"
    if histology_obs:
        detail = f"{unspecified.detail} with HCC histology in {histology_obs.reference}"
        return Match("code", detail), "code"
    return None, "code"
