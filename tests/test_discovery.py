"""Discovery endpoint (checklist B)."""

from __future__ import annotations

import re

from tests.conftest import CdsCaller
from tests.support import SERVICE_ID

ALLOWED_TOKENS = {
    "context.userId",
    "context.patientId",
    "context.encounterId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


def test_discovery_lists_the_patient_view_service(cds: CdsCaller) -> None:
    response = cds.discover()
    assert response.status_code == 200  # checklist 13, 14
    assert response.mimetype == "application/json"  # checklist 6
    body = response.get_json()
    assert list(body) == ["services"]  # checklist 15
    (service,) = body["services"]
    assert service["hook"] == "patient-view"  # checklist 17, 23
    assert service["id"] == SERVICE_ID  # checklist 19
    assert service["description"].strip()  # checklist 18
    assert service["title"].strip()  # checklist 20
    assert "name" not in service and "version" not in service and "hookVersion" not in service  # checklist 24
    assert service.get("usageRequirements", "x")  # checklist 22: absent, never empty
    ids = [s["id"] for s in body["services"]]
    assert len(ids) == len(set(ids))  # checklist 30: one entry per id (no per-hook dispatch needed)


def test_discovery_prefetch_templates_use_only_2_0_tokens_and_plain_fhir_search(cds: CdsCaller) -> None:
    prefetch = cds.discover().get_json()["services"][0]["prefetch"]
    assert prefetch and all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in prefetch.items()
    )  # checklist 21
    for template in prefetch.values():
        tokens = re.findall(r"\{\{([^}]*)\}\}", template)
        assert tokens and set(tokens) <= ALLOWED_TOKENS  # checklist 25, 26
        assert "sort:desc" not in template  # checklist 28: _sort=-date, not the spec example's form
        resource, _, query = template.partition("?")
        assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", resource)  # checklist 27
        for parameter in filter(None, query.split("&")):
            name = parameter.split("=")[0]
            assert name in {"patient", "_count", "_sort"}  # checklist 27: only allowed search parameters
    assert {"patient", "conditions", "procedures", "observations", "medicationRequests", "medicationStatements"} <= set(
        prefetch
    )


def test_service_id_from_discovery_is_routable(cds: CdsCaller) -> None:
    service_id = cds.discover().get_json()["services"][0]["id"]
    response = cds.call({"hook": "patient-view"}, service=service_id)
    assert response.status_code == 400  # routed to the service (a bad body), not 404: checklist 19, 31


def test_zero_services_is_an_empty_services_array() -> None:
    from cds.response import discovery_response

    assert discovery_response([]) == {"services": []}  # checklist 16
