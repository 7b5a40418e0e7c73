"""Card rules enforced by the one response builder (checklist A 2-5, 10; E 70-101)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds.errors import ResponseContractError
from cds.response import Action, Card, Coding, Link, Suggestion, service_response
from tests.conftest import CdsCaller
from tests.support import fixture_request

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def eligible_response(cds: CdsCaller, name: str = "eligible-icd10-loinc") -> dict[str, Any]:
    response = cds.call(fixture_request(name))
    assert response.status_code == 200
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))  # checklist 2: valid JSON
    return body


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    out = [(path, value)]
    if isinstance(value, dict):
        for key, child in value.items():
            out += walk(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += walk(child, f"{path}[{i}]")
    return out


def test_eligible_card_meets_every_card_rule(cds: CdsCaller) -> None:
    body = eligible_response(cds)
    (card,) = body["cards"]  # checklist 70
    for path, value in walk(body):  # checklist 3, 4, 5: no null, "", [], {} anywhere
        assert value is not None and value != "" and value != [] and value != {}, path
    assert UUID.match(card["uuid"])  # checklist 80
    assert 0 < len(card["summary"]) < 140  # checklist 72
    assert card["summary"].count(". ") == 0  # checklist 73: a single sentence
    assert card["indicator"] == "info"  # checklist 74
    assert card["source"]["label"] and card["source"]["url"].startswith("https://")  # checklist 75, 77
    assert "topic" not in card["source"] and "icon" not in card["source"]  # checklist 78, 79: not used
    assert card["detail"].strip() and "**Why you are seeing this**" in card["detail"]  # checklist 76
    assert card["selectionBehavior"] == "at-most-one"  # checklist 81, 82, 83
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] and UUID.match(suggestion["uuid"])  # checklist 85, 86
    assert suggestion["isRecommended"] is False  # checklist 87: at most one recommended (none: an MDT decision)
    assert [a["type"] for a in suggestion["actions"]] == ["create", "create"]  # checklist 88
    for action in suggestion["actions"]:
        assert action["description"].strip()  # checklist 89
        assert action["resource"]["resourceType"] in ("MedicationRequest", "ServiceRequest")  # checklist 90
    for reason in card["overrideReasons"]:
        assert reason["code"] and reason["system"] and reason["display"]  # checklist 93
    for link in card["links"]:
        assert link["label"] and link["url"].startswith("https://") and link["type"] == "absolute"  # checklist 94
        assert "appContext" not in link and "autolaunchable" not in link  # checklist 95, 96, 97
    assert "systemActions" not in body  # checklist 98, 99, 100
    assert "actionSelectionBehavior" not in json.dumps(body)  # checklist 101
    assert "extension" not in card  # checklist 10, 11: none emitted


def test_card_links_are_the_trials_identifiers(cds: CdsCaller) -> None:
    card = eligible_response(cds)["cards"][0]
    urls = {link["url"] for link in card["links"]}
    assert urls == {
        "https://pubmed.ncbi.nlm.nih.gov/38900435/",
        "https://pmc.ncbi.nlm.nih.gov/articles/PMC11190833/",
        "https://doi.org/10.1001/jamaoncol.2024.1831",
        "https://clinicaltrials.gov/study/NCT04103398",
    }


def test_uuids_are_unique_across_responses(cds: CdsCaller) -> None:
    first = eligible_response(cds)["cards"][0]
    second = eligible_response(cds)["cards"][0]
    ids = [first["uuid"], first["suggestions"][0]["uuid"], second["uuid"], second["suggestions"][0]["uuid"]]
    assert len(set(ids)) == 4  # checklist 80


def test_draft_orders_are_valid_r4_and_tagged_as_ours(cds: CdsCaller) -> None:
    request = fixture_request("eligible-icd10-loinc", user="PractitionerRole/onc-7")
    card = cds.call(request).get_json()["cards"][0]
    suggestion = card["suggestions"][0]
    medication, service = (a["resource"] for a in suggestion["actions"])
    order = MedicationRequest.model_validate(medication)  # checklist 90: a valid R4 resource
    referral = ServiceRequest.model_validate(service)
    for resource in (order, referral):
        assert resource.status == "draft" and resource.intent == "proposal"
        assert resource.subject.reference == "Patient/p-elig-icd10"
        assert resource.requester.reference == "PractitionerRole/onc-7"
        assert resource.reasonReference[0].reference == "Condition/p-elig-icd10-hcc"
        assert (resource.meta.tag[0].system, resource.meta.tag[0].code) == ("urn:sortace-cds:tag", "sor-tace-proposal")
        assert resource.identifier[0].value == suggestion["uuid"]
    dose = order.dosageInstruction[0]
    assert dose.doseAndRate[0].doseQuantity.value == 400 and dose.doseAndRate[0].doseQuantity.code == "mg"
    assert (dose.timing.repeat.frequency, dose.timing.repeat.period, dose.timing.repeat.periodUnit) == (2, 1, "d")
    assert order.medicationCodeableConcept.coding[0].code == "597747"
    assert referral.code.coding[0].code == "37243"


def card(**changes: Any) -> Card:
    base: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": "A summary",
        "indicator": "info",
        "source_label": "Source",
        "kind": "eligible",
    }
    base.update(changes)
    return Card(**base)


def suggestion(**changes: Any) -> Suggestion:
    base: dict[str, Any] = {
        "label": "Do it",
        "uuid": str(uuid.uuid4()),
        "actions": (Action("create", "Create", {"resourceType": "ServiceRequest"}),),
    }
    base.update(changes)
    return Suggestion(**base)


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (card(summary="x" * 140), "summary"),  # checklist 72
        (card(indicator="hard-stop"), "indicator"),  # checklist 74
        (card(source_label=""), "source"),  # checklist 75
        (card(source_url="/relative"), "url"),  # checklist 77
        (card(suggestions=(suggestion(),)), "selectionBehavior"),  # checklist 81
        (card(selection_behavior="at-most-one"), "suggestions"),  # checklist 84
        (card(suggestions=(suggestion(),), selection_behavior="all"), "selectionBehavior"),  # checklist 82
        (card(suggestions=(suggestion(label=""),), selection_behavior="any"), "label"),  # checklist 85
        (
            card(suggestions=(suggestion(actions=(Action("remove", "x"),)),), selection_behavior="any"),
            "type",
        ),  # checklist 88
        (
            card(suggestions=(suggestion(actions=(Action("create", ""),)),), selection_behavior="any"),
            "description",
        ),  # checklist 89
        (
            card(suggestions=(suggestion(actions=(Action("create", "no resource"),)),), selection_behavior="any"),
            "resource",
        ),  # checklist 90
        (card(override_reasons=(Coding("urn:x", "c"),)), "display"),  # checklist 93
        (card(links=(Link("PubMed", "pubmed.gov"),)), "url"),  # checklist 94
        (card(links=(Link("App", "https://app", type="launch"),)), "type"),  # checklist 94
        (card(uuid="not-a-uuid"), "uuid"),  # checklist 80
    ],
)
def test_response_builder_refuses_a_card_that_breaks_a_rule(bad: Card, problem: str) -> None:
    with pytest.raises(ResponseContractError, match=problem):
        service_response([bad])


def test_response_builder_refuses_update_without_a_resource_and_delete_with_one() -> None:
    update = card(suggestions=(suggestion(actions=(Action("update", "Change the order"),)),), selection_behavior="any")
    with pytest.raises(ResponseContractError, match="resource"):  # checklist 91
        service_response([update])
    delete = card(
        suggestions=(suggestion(actions=(Action("delete", "Remove", {"resourceType": "ServiceRequest"}),)),),
        selection_behavior="any",
    )
    with pytest.raises(ResponseContractError, match="resourceId"):  # checklist 92
        service_response([delete])


def test_response_builder_refuses_two_recommended_suggestions_under_at_most_one() -> None:
    bad = card(
        suggestions=(suggestion(is_recommended=True), suggestion(is_recommended=True)), selection_behavior="at-most-one"
    )
    with pytest.raises(ResponseContractError, match="more than one recommended"):  # checklist 87
        service_response([bad])


def test_response_builder_refuses_empty_values_in_embedded_resources() -> None:
    bad = card(
        suggestions=(suggestion(actions=(Action("create", "x", {"resourceType": "ServiceRequest", "note": []}),)),),
        selection_behavior="any",
    )
    with pytest.raises(ResponseContractError, match="empty value"):  # checklist 3, 4
        service_response([bad])


def test_response_builder_refuses_duplicate_uuids() -> None:
    same = str(uuid.uuid4())
    with pytest.raises(ResponseContractError, match="not unique"):  # checklist 80
        service_response([card(uuid=same), card(uuid=same)])


def test_no_cards_is_exactly_an_empty_cards_array() -> None:
    assert service_response([]) == {"cards": []}  # checklist 4, 71
