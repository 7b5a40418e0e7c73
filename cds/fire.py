"""``sortace-cds fire``: play the EHR. Build a patient-view request for a patient on a FHIR server, call the service
and show the cards as a clinician would read them.

``--prefetch full`` resolves every discovery template against the FHIR server (following every page), as an EHR
that supports prefetch does; ``partial`` sends only the Patient and Conditions, like the CDS Hooks Sandbox when
some searches fail; ``none`` leaves everything to the service. Calls are signed with the development key pair
(ES384) unless ``--no-sign``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from cds.bundles import prefetch_value
from cds.devkeys import sign_dev
from cds.fhirclient import FhirClient, FhirError, new_session
from cds.hookrequest import HookRequest
from cds.prefetch import expand, token_values
from cds.services import ServiceDefinition
from cds.settings import FhirSettings, Secret

PARTIAL_KEYS = ("patient", "conditions")


def build_prefetch(
    service: ServiceDefinition, fhir_server: str, patient: str, user_id: str, mode: str, access_token: str | None
) -> dict[str, Any] | None:
    """Resolve the service's templates against the FHIR server as an EHR would."""
    if mode == "none":
        return None
    settings = FhirSettings(deadline_seconds=60, connect_timeout_seconds=5, max_pages=100, max_entries=10_000)
    client = FhirClient(
        new_session(settings),
        settings,
        fhir_server,
        Secret(access_token) if access_token else None,
        time.monotonic() + 60,
    )
    values = token_values(HookRequest("patient-view", "fire", patient, user_id))
    prefetch: dict[str, Any] = {}
    for key in service.prefetch:
        if mode == "partial" and key.name not in PARTIAL_KEYS:
            continue
        query = expand(key.template, values)
        if query is None:
            continue
        try:
            result = client.fetch(query)
        except FhirError:
            continue  # like the Sandbox: a key it cannot fill is left out
        prefetch[key.name] = prefetch_value(query, result.resources)
    return prefetch


def call(service_url: str, request: dict[str, Any], data_dir: Path | None) -> requests.Response:
    """POST the request to the service, signed with the development key when ``data_dir`` is given."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if data_dir is not None:
        headers["Authorization"] = f"Bearer {sign_dev(data_dir, service_url)}"
    return requests.post(service_url, data=json.dumps(request), headers=headers, timeout=30)


def render_cards(response: dict[str, Any]) -> str:
    """The cards as readable text: summary, indicator, detail, suggestions and links."""
    cards = response.get("cards") or []
    if not cards:
        return "No cards: the service found nothing to show for this patient."
    blocks = []
    for number, card in enumerate(cards, 1):
        lines = [
            f"Card {number} [{card.get('indicator')}] {card.get('summary')}",
            f"Source: {card['source']['label']}",
            "",
        ]
        lines.append(card.get("detail", "").strip())
        for suggestion in card.get("suggestions") or ():
            lines += ["", f"Suggestion: {suggestion['label']}"]
            lines += [
                f"  - {action['type']} {action.get('resource', {}).get('resourceType', '')}: {action['description']}"
                for action in suggestion.get("actions") or ()
            ]
        if card.get("overrideReasons"):
            lines += ["", "Override reasons: " + "; ".join(r["display"] for r in card["overrideReasons"])]
        lines += ["", "Links: " + " | ".join(f"{link['label']} <{link['url']}>" for link in card.get("links") or ())]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
