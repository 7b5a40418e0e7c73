"""Which records may be read at all, and which may support a recommendation (clinical notes 3.2.2).

- Conditions ``entered-in-error`` or ``refuted`` are ignored; ``unconfirmed``, ``provisional`` and
  ``differential`` are *not confirmed* (they may prompt a question, never a recommendation). A Condition
  without a verificationStatus is read as recorded (most EHRs omit it for problem-list entries).
- Observations count when ``final``, ``amended`` or ``corrected``; ``preliminary`` results are reported as
  unverified and never used as fact; other statuses are ignored.
- Procedures count only when ``completed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from cds.clinical.dates import FhirDate
from cds.clinical.fhirview import first_date, status_code
from cds.clinical.terminology import Classifier, Concept, Match

IGNORED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
UNCONFIRMED_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})


def condition_readable(condition: Any) -> bool:
    return status_code(condition.verificationStatus) not in IGNORED_VERIFICATION


def condition_confirmed(condition: Any) -> bool:
    return status_code(condition.verificationStatus) not in UNCONFIRMED_VERIFICATION


def condition_active(condition: Any) -> bool:
    """Active, recurrence or relapse; a condition with an abatement is never active, whatever its status says."""
    if condition.abatementDateTime or condition.abatementPeriod or condition.abatementString or condition.abatementAge:
        return False
    status = status_code(condition.clinicalStatus)
    return status is None or status in ACTIVE_CLINICAL


def condition_mention(condition: Any, concept: Concept) -> Match | None:
    """How an active, readable Condition's code names ``concept``; None when it does not or says it is absent.

    Doubtful mentions ("suspected PVTT") are returned: callers decide whether they count or prompt a question.
    """
    if not condition_readable(condition) or not condition_active(condition):
        return None
    match = concept.match(condition.code)
    return None if match is None or match.negated else match


def condition_onset(condition: Any) -> FhirDate | None:
    return first_date(condition.onsetDateTime, condition.onsetPeriod, condition.onsetString)


def condition_date(condition: Any) -> FhirDate | None:
    """Onset when recorded, else the date it was recorded."""
    return condition_onset(condition) or first_date(condition.recordedDate)


def observation_final(obs: Any) -> bool:
    return obs.status in FINAL_OBSERVATION


def observation_preliminary(obs: Any) -> bool:
    return bool(obs.status == "preliminary")


def procedure_completed(procedure: Any) -> bool:
    return bool(procedure.status == "completed")


def procedure_date(procedure: Any) -> FhirDate | None:
    return first_date(procedure.performedDateTime, procedure.performedPeriod, procedure.performedString)


def observation_parts(obs: Any) -> Iterator[tuple[Any, Any]]:
    """``(code, holder)`` for the Observation and each component; ``holder`` carries the ``value[x]``."""
    yield obs.code, obs
    for component in obs.component or ():
        yield component.code, component


def value_texts(holder: Any) -> list[str]:
    """The textual forms of a ``value[x]``: string, CodeableConcept text and displays (not a boolean)."""
    out: list[str] = []
    if getattr(holder, "valueString", None):
        out.append(holder.valueString)
    concept = getattr(holder, "valueCodeableConcept", None)
    if concept is not None:
        if concept.text:
            out.append(concept.text)
        out.extend(c.display for c in concept.coding or () if c.display)
    return out


def finding_in(
    concept: Concept, presence: Classifier, code: Any, holder: Any, strings: Sequence[str]
) -> tuple[Match, bool] | None:
    """A finding in one Observation part, and whether it was coded.

    Coded ("ascites: present"): ``(the positive answer, True)``. Written in the value ("PVTT in the right portal
    vein"): ``(the mention, False)`` unless negated; a doubtful mention is returned for the caller to weigh.
    """
    if concept.affirms(code) is not None:
        answer = presence.first(getattr(holder, "valueCodeableConcept", None), strings)
        return (answer[1], True) if answer is not None and answer[0] == "positive" else None
    mention = concept.match_text(strings)
    return (mention, False) if mention is not None and not mention.negated else None


def value_number(holder: Any) -> float | None:
    if getattr(holder, "valueInteger", None) is not None:
        return float(holder.valueInteger)
    quantity = getattr(holder, "valueQuantity", None)
    if quantity is not None and quantity.value is not None:
        return float(quantity.value)
    return None
