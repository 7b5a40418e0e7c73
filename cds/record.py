"""From raw FHIR JSON to the clinical core's ``PatientData``: pre-select on the raw JSON, then parse what matters.

Parsing a resource into ``fhir.resources`` models costs about 70-140 µs; most of a real record (vital signs,
routine labs, unrelated problems) can never match a value set. A cheap pre-selection on the raw JSON (the union
of every code and text pattern the recognizer uses, over the elements it reads) keeps the parse cost
proportional to the relevant part of the record. It errs only towards keeping: anything the core could match
passes. A resource that is not valid R4 is left out and named in the assessment's notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

from cds.clinical.model import PatientData
from cds.clinical.terminology import MAX_TEXT, Terminology, normalize_code

MODELS: dict[str, Any] = {
    "Patient": Patient,
    "Condition": Condition,
    "Procedure": Procedure,
    "Observation": Observation,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
}

# The elements of each resource type the recognizer reads codes or words from.
_READ_ELEMENTS = {
    "Condition": ("code", "stage", "evidence", "extension"),
    "Procedure": ("code",),
    "Observation": ("code", "component", "method", "valueCodeableConcept", "valueString"),
    "MedicationRequest": ("medicationCodeableConcept", "medicationReference", "contained", "meta"),
    "MedicationStatement": ("medicationCodeableConcept", "medicationReference", "contained", "meta"),
}


class PatientUnreadable(ValueError):
    """The Patient resource is missing or not valid FHIR R4: nothing can be decided safely."""


@dataclass(frozen=True)
class GatheredData:
    """Raw resources of one patient by type, and what could not be obtained (from prefetch completion)."""

    resources: Mapping[str, Sequence[dict[str, Any]]]
    unavailable: frozenset[str] = frozenset()
    incomplete: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


class Preselector:
    """Decides on raw JSON whether a resource could match any value set (a superset of the core's matches)."""

    def __init__(self, terms: Terminology) -> None:
        self._codes: dict[str, set[str]] = {}
        self._prefixes: dict[str, set[str]] = {}
        patterns: list[str] = []
        concepts = list(terms.concepts.values())
        for concept in concepts:
            for system, codes in concept.codes.items():
                self._codes.setdefault(system, set()).update(codes)
            for system, prefixes in concept.prefixes.items():
                self._prefixes.setdefault(system, set()).update(prefixes)
            patterns.extend(p.pattern for p in concept.text)
        self._text = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.UNICODE)
        self._own_tag = terms.own_tag
        # Lab and vital-sign names repeat across a record (every bilirubin has the same display): remember answers.
        self._seen_text: dict[str, bool] = {}

    def relevant(self, resource: Mapping[str, Any]) -> bool:
        resource_type = resource.get("resourceType")
        if resource_type == "Patient":
            return True
        elements = _READ_ELEMENTS.get(str(resource_type))
        if elements is None:
            return False
        if resource_type in ("MedicationRequest", "MedicationStatement") and _unnamed_medication(resource):
            return True  # counted as "unidentified medication"
        for element in elements:
            value = resource.get(element)
            if value is None:
                continue
            for system, code, text in _walk(value):
                if code is not None and self._code_matches(system or "", code):
                    return True
                if text is not None and self._text_matches(text):
                    return True
        return False

    def _text_matches(self, text: str) -> bool:
        if len(text) > MAX_TEXT:
            return True  # too long to scan here: parse it, the core reads its first MAX_TEXT characters
        known = self._seen_text.get(text)
        if known is None:
            known = self._text.search(text) is not None
            if len(self._seen_text) < 100_000 and len(text) < 1_000:
                self._seen_text[text] = known
        return known

    def _code_matches(self, system: str, code: str) -> bool:
        if (system, code) == self._own_tag:
            return True
        norm = normalize_code(code)
        if norm in self._codes.get(system, ()):
            return True
        return any(norm.startswith(p) for p in self._prefixes.get(system, ()))


def to_patient_data(gathered: GatheredData, preselector: Preselector) -> PatientData:
    """Parse the relevant resources into R4B models.

    :raise PatientUnreadable: the Patient resource is absent or invalid.
    """
    notes = list(gathered.notes)
    patients = list(gathered.resources.get("Patient", ()))
    if not patients:
        raise PatientUnreadable("the Patient resource is missing")
    patient = _parse(patients[0], notes)
    if patient is None:
        raise PatientUnreadable(notes[-1])
    parsed: dict[str, tuple[Any, ...]] = {}
    for resource_type in ("Condition", "Procedure", "Observation", "MedicationRequest", "MedicationStatement"):
        items = (_parse(raw, notes) for raw in gathered.resources.get(resource_type, ()) if preselector.relevant(raw))
        parsed[resource_type] = tuple(item for item in items if item is not None)
    return PatientData(
        patient=patient,
        conditions=parsed["Condition"],
        procedures=parsed["Procedure"],
        observations=parsed["Observation"],
        medication_requests=parsed["MedicationRequest"],
        medication_statements=parsed["MedicationStatement"],
        unavailable=gathered.unavailable,
        incomplete=gathered.incomplete,
        notes=tuple(notes),
    )


def _parse(raw: Mapping[str, Any], notes: list[str]) -> Any:
    model = MODELS[str(raw.get("resourceType"))]
    try:
        return model.model_validate(raw)
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        # fhir.resources raises more than ValidationError for some malformed input (an unknown contained type).
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (type(exc).__name__,)}
        where = ".".join(str(part) for part in first.get("loc", ()))
        notes.append(
            f"{raw.get('resourceType')}/{raw.get('id', '(no id)')} is not valid FHIR R4 and was ignored ({where})"
        )
        return None


def _walk(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """Every (system, code, text) reachable in a JSON value: codings, ``text`` and ``display`` strings."""
    if isinstance(value, dict):
        code = value.get("code")
        if isinstance(code, str):
            yield value.get("system"), code, None
        for key in ("text", "display", "valueString"):
            text = value.get(key)
            if isinstance(text, str):
                yield None, None, text
        for child in value.values():
            if isinstance(child, dict | list):
                yield from _walk(child)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, str):
        yield None, None, value


def _unnamed_medication(resource: Mapping[str, Any]) -> bool:
    """A medication with no human-readable name: a bare reference, or a concept with codes but no text/display."""
    reference = resource.get("medicationReference")
    if isinstance(reference, dict):
        return not reference.get("display") and not str(reference.get("reference", "")).startswith("#")
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return True
    listed = concept.get("coding")
    codings = listed if isinstance(listed, list) else []
    return not concept.get("text") and not any(isinstance(c, dict) and c.get("display") for c in codings)
