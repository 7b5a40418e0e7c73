"""Fixture patients as an EHR would hold them: shift their dates to today, upload them, turn them into requests.

The Bundles in ``fhir_fixtures/`` are written relative to the manifest's ``as_of`` date. Everything that sends
them somewhere (a FHIR server, the service) first moves every date by ``today - as_of`` days, so that "recent"
stays recent whenever the fixtures are used.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from cds.bundles import entries, prefetch_value
from cds.clinical.dates import parse_date
from cds.services import ServiceDefinition

DATE_KEYS = frozenset(
    {
        "birthDate",
        "deceasedDateTime",
        "onsetDateTime",
        "abatementDateTime",
        "recordedDate",
        "performedDateTime",
        "effectiveDateTime",
        "effectiveInstant",
        "issued",
        "authoredOn",
        "dateAsserted",
        "start",
        "end",
        "timestamp",
    }
)


def load_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a fixture directory.

    :raise FileNotFoundError: with a hint when run outside a checkout.
    """
    path = directory / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the project checkout or pass --dir")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_bundle(directory: Path, name: str) -> dict[str, Any]:
    file = name if name.endswith(".json") else f"{name}.json"
    bundle: dict[str, Any] = json.loads((directory / file).read_text(encoding="utf-8"))
    return bundle


def shift_dates(value: Any, days: int) -> Any:
    """A copy of a FHIR JSON value with every date moved by ``days`` (precision kept: a year stays a year)."""
    if isinstance(value, list):
        return [shift_dates(item, days) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in DATE_KEYS and isinstance(item, str):
            out[key] = _shift(item, days)
        else:
            out[key] = shift_dates(item, days)
    return out


def _shift(text: str, days: int) -> str:
    parsed = parse_date(text)
    if parsed is None or days == 0:
        return text
    if parsed.precision == "day":
        moved = parsed.start + timedelta(days=days)
        if "T" in text:
            return moved.isoformat() + text[10:]
        return moved.isoformat()
    middle = parsed.start + (parsed.end - parsed.start) / 2 + timedelta(days=days)
    return f"{middle.year:04d}-{middle.month:02d}" if parsed.precision == "month" else f"{middle.year:04d}"


def as_of(bundle: Mapping[str, Any]) -> date | None:
    """The date a fixture Bundle was written for (its ``timestamp``)."""
    parsed = parse_date(bundle.get("timestamp"))
    return parsed.start if parsed else None


def current(bundle: dict[str, Any], today: date) -> dict[str, Any]:
    """The Bundle with its dates moved so that its ``as_of`` becomes ``today``."""
    written = as_of(bundle)
    return shift_dates(bundle, (today - written).days) if written else copy.deepcopy(bundle)


def resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in entries(bundle) if isinstance(e.get("resource"), dict)]


def patient_id(bundle: Mapping[str, Any]) -> str:
    patient = next((r for r in resources(bundle) if r.get("resourceType") == "Patient"), None)
    if patient is None or not patient.get("id"):
        raise ValueError("the Bundle holds no Patient with an id")
    return str(patient["id"])


def prefetch_from(
    bundle: Mapping[str, Any], service: ServiceDefinition, keys: set[str] | None = None
) -> dict[str, Any]:
    """Prefetch values for the service's keys, from one patient's Bundle (searchset Bundles, the Patient itself)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources(bundle):
        by_type.setdefault(resource["resourceType"], []).append(resource)
    out: dict[str, Any] = {}
    for key in service.prefetch:
        if keys is not None and key.name not in keys:
            continue
        out[key.name] = prefetch_value(key.template, by_type.get(key.resource_type, []))
    return out


def hook_request(
    patient: str,
    user_id: str,
    prefetch: Mapping[str, Any] | None = None,
    fhir_server: str | None = None,
    access_token: str | None = None,
) -> dict[str, Any]:
    """A patient-view request as an EHR sends it."""
    request: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": user_id, "patientId": patient},
    }
    if fhir_server:
        request["fhirServer"] = fhir_server
    if fhir_server and access_token:
        request["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "sortace-cds",
            "patient": patient,
        }
    if prefetch is not None:
        request["prefetch"] = dict(prefetch)
    return request


def transaction(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """A transaction Bundle that PUTs every resource (client-assigned ids, safe for HAPI: never purely numeric)."""
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources(bundle)
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": datetime.now().astimezone().isoformat(),
        "entry": entries,
    }
