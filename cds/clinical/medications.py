"""Sorafenib and other systemic therapy for HCC, current or earlier (clinical notes 2.7, 3.2.10).

Status decides current versus earlier exposure. Proposals are not exposure: a request whose intent is
``proposal`` or ``plan`` was never ordered, and the draft orders this service proposes (recognised by their
``meta.tag``) are reported separately, so an accepted SOR-TACE proposal suppresses the card instead of
excluding the patient. A medication that cannot be identified (a reference with neither a name nor a contained
Medication) or that carries only a code no value set knows is counted: the history is then incomplete, and the
card asks for it rather than assume there was no systemic therapy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cds.clinical.fhirview import first_date, reference_of, texts
from cds.clinical.model import Evidence, Fact
from cds.clinical.terminology import Terminology

CURRENT_REQUEST = frozenset({"active", "on-hold"})
CURRENT_STATEMENT = frozenset({"active", "intended", "on-hold"})
EARLIER = frozenset({"completed", "stopped", "unknown"})  # the same codes for requests and statements
NOT_ORDERED_INTENTS = frozenset({"proposal", "plan"})


@dataclass(frozen=True)
class Exposure:
    sorafenib: Fact  # "current" | "earlier" | "none"
    other_systemic: Fact  # "yes" | "none"
    own_proposal: Evidence | None
    unidentified: tuple[str, ...]


def medication_exposure(requests: Sequence[Any], statements: Sequence[Any], terms: Terminology) -> Exposure:
    sorafenib: dict[str, list[Evidence]] = {"current": [], "earlier": []}
    other: list[Evidence] = []
    unidentified: list[str] = []
    own: Evidence | None = None
    for resource, when_status in _exposures(requests, statements):
        if _is_own(resource, terms):
            if resource.status not in ("entered-in-error", "cancelled"):
                own = own or Evidence(reference_of(resource), "meta.tag", "SOR-TACE proposal from this service")
            continue
        concept, names = _medication(resource)
        match = terms.concept("sorafenib").match(concept, names)
        if not names and not texts(concept) and match is None:
            if when_status:
                unidentified.append(reference_of(resource))  # a code we cannot name, or a bare reference
            continue
        if when_status is None:
            continue
        when = first_date(
            getattr(resource, "authoredOn", None),
            getattr(resource, "effectiveDateTime", None),
            getattr(resource, "effectivePeriod", None),
            getattr(resource, "dateAsserted", None),
        )
        if match and not match.negated:  # a doubtful mention ("sorafenib?") still counts as possible exposure
            sorafenib[when_status].append(
                Evidence(reference_of(resource), "medication", f"{match.detail} ({resource.status})", when)
            )
            continue
        match = terms.concept("other_systemic_hcc").match(concept, names)
        if match and not match.negated:
            other.append(Evidence(reference_of(resource), "medication", f"{match.detail} ({resource.status})", when))
    if sorafenib["current"]:
        sorafenib_fact = Fact("sorafenib", "current", tuple(sorafenib["current"]))
    elif sorafenib["earlier"]:
        sorafenib_fact = Fact("sorafenib", "earlier", tuple(sorafenib["earlier"]))
    else:
        sorafenib_fact = Fact("sorafenib", "none")
    other_fact = Fact("other_systemic", "yes" if other else "none", tuple(other))
    return Exposure(sorafenib_fact, other_fact, own, tuple(unidentified))


def _exposures(requests: Sequence[Any], statements: Sequence[Any]) -> list[tuple[Any, str | None]]:
    """Each record with "current", "earlier" or None (not an exposure: draft, cancelled, not taken...)."""
    out: list[tuple[Any, str | None]] = []
    for request in requests:
        ordered = request.intent not in NOT_ORDERED_INTENTS
        out.append((request, _when(request.status, CURRENT_REQUEST) if ordered else None))
    out.extend((statement, _when(statement.status, CURRENT_STATEMENT)) for statement in statements)
    return out


def _when(status: str | None, current: frozenset[str]) -> str | None:
    return "current" if status in current else "earlier" if status in EARLIER else None


def _is_own(resource: Any, terms: Terminology) -> bool:
    system, code = terms.own_tag
    tags = resource.meta.tag if resource.meta and resource.meta.tag else ()
    return any(tag.system == system and tag.code == code for tag in tags)


def _medication(resource: Any) -> tuple[Any, list[str]]:
    """The medication's CodeableConcept (inline or from a contained Medication) and any names it carries."""
    if resource.medicationCodeableConcept is not None:
        return resource.medicationCodeableConcept, []
    reference = resource.medicationReference
    if reference is None:
        return None, []
    names = [reference.display] if reference.display else []
    if reference.reference and reference.reference.startswith("#"):
        for contained in resource.contained or ():
            if contained.id == reference.reference[1:] and getattr(contained, "code", None) is not None:
                return contained.code, names
    return None, names
