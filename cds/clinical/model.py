"""The clinical core's input (one patient's parsed FHIR resources) and output (an assessment with provenance).

Nothing here does I/O. ``Fact.value is None`` always means *unknown*; the reason is in ``Fact.note``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure

from cds.clinical.dates import FhirDate


class Outcome(StrEnum):
    ELIGIBLE = "eligible"
    INFORMATION_NEEDED = "information-needed"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class PatientData:
    """What the shell could gather about one patient, already checked to belong to that patient.

    ``unavailable`` names resource types that could not be read at all and ``incomplete`` those read only in
    part: facts that depend on them are unknown, so the outcome can never be ``eligible``.
    """

    patient: Patient | None
    conditions: tuple[Condition, ...] = ()
    procedures: tuple[Procedure, ...] = ()
    observations: tuple[Observation, ...] = ()
    medication_requests: tuple[MedicationRequest, ...] = ()
    medication_statements: tuple[MedicationStatement, ...] = ()
    unavailable: frozenset[str] = frozenset()
    incomplete: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """Where a fact came from: the record, the element read and what it said."""

    reference: str
    element: str
    detail: str
    date: FhirDate | None = None

    def describe(self) -> str:
        when = f", {self.date}" if self.date and str(self.date) not in self.detail else ""
        return f"{self.reference} {self.element}: {self.detail}{when}"


@dataclass(frozen=True)
class Fact:
    """One derived fact. ``value`` None means unknown; ``date`` is the date the fact is about."""

    name: str
    value: str | None
    evidence: tuple[Evidence, ...] = ()
    note: str | None = None
    date: FhirDate | None = None

    @property
    def known(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Finding:
    """An exclusion, a missing fact or a caution: a stable ``code`` plus what the record showed."""

    code: str
    detail: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Assessment:
    outcome: Outcome
    today: date
    facts: Mapping[str, Fact] = field(default_factory=dict)
    exclusions: tuple[Finding, ...] = ()
    missing: tuple[Finding, ...] = ()
    cautions: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    # The Condition the recurrence was read from, for the orders' reasonReference.
    recurrence_reference: str | None = None
    # A SOR-TACE proposal of ours is already in the record (accepted earlier).
    own_proposal: Evidence | None = None

    def digest(self) -> str:
        """A fingerprint of the facts behind the outcome: equal digests mean nothing relevant changed."""
        payload = {
            "outcome": self.outcome.value,
            "facts": {
                name: [fact.value, sorted(e.reference + "|" + e.detail for e in fact.evidence)]
                for name, fact in sorted(self.facts.items())
            },
            "exclusions": sorted(f.code for f in self.exclusions),
            "missing": sorted(f.code for f in self.missing),
            "cautions": sorted(f.code for f in self.cautions),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
