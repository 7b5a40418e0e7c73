"""Cards from an assessment: the SOR-TACE evidence card or the information-needed card, texts from ``cards/``.

Pure: the uuid factory and the date come in as arguments. Text copied from the patient's record into a card
(codes, displays, free text) is Markdown-escaped, so a record can never inject markup or links into a card.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds.clinical.criteria import Criteria
from cds.clinical.model import Assessment, Evidence, Fact, Finding, Outcome
from cds.datafiles import ContentError, read_json, read_text, read_toml
from cds.response import Action, Card, Coding, Link, Suggestion

SUGGESTION_IDENTIFIER_SYSTEM = "urn:sortace-cds:suggestion"
WHY_ORDER = (
    "hcc",
    "resection",
    "margin",
    "mvi",
    "recurrence",
    "stage",
    "child_pugh",
    "ecog",
    "age",
    "sorafenib",
    "other_systemic",
)
FOUND_ORDER = ("hcc", "resection", "recurrence", "margin", "mvi", "stage", "child_pugh", "ecog", "age")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)


@dataclass(frozen=True)
class CardContent:
    """Everything in ``cards/`` that a card is made of, read once at start-up."""

    texts: Mapping[str, Any]
    eligible_template: string.Template
    information_template: string.Template
    medication_order: Mapping[str, Any]
    service_order: Mapping[str, Any]
    own_tag: tuple[str, str]
    links: tuple[Link, ...]
    override_reasons: tuple[Coding, ...]
    defaults: str = ""


@dataclass(frozen=True)
class CardContext:
    """What a card needs from the hook call besides the assessment."""

    patient_id: str
    user_id: str
    today: date


def load_card_content(own_tag: tuple[str, str], criteria: Criteria) -> CardContent:
    """Read the card texts, templates and order templates; state the criteria in force.

    :raise ContentError: a file is missing or a summary is 140 characters or longer.
    """
    texts = read_toml("cards.toml")
    content = CardContent(
        texts=texts,
        eligible_template=string.Template(_COMMENT.sub("", read_text("eligible.md"))),
        information_template=string.Template(_COMMENT.sub("", read_text("information-needed.md"))),
        medication_order=_order_template("orders/medicationrequest.json"),
        service_order=_order_template("orders/servicerequest.json"),
        own_tag=own_tag,
        links=tuple(Link(link["label"], link["url"]) for link in texts["links"]),
        override_reasons=tuple(
            Coding(texts["override_reason_system"]["system"], r["code"], r["display"])
            for r in texts["override_reasons"]
        ),
        defaults=_defaults(texts["eligible"]["defaults"], criteria),
    )
    longest = sorted((m["label"] for m in texts["missing"].values()), key=len)[-2:]
    for summary in (texts["eligible"]["summary"], _info_summary(texts, longest), _info_summary(texts, ["x"] * 9)):
        if len(summary) >= 140:
            raise ContentError(
                f"cards/cards.toml: summary is {len(summary)} characters, CDS Hooks allows fewer than 140"
            )
    return content


def _defaults(template: str, criteria: Criteria) -> str:
    fields = {
        k: "/".join(sorted(v)) if isinstance(v, frozenset) else v for k, v in dataclasses.asdict(criteria).items()
    }
    excluded = criteria.exclude_prior_sorafenib and criteria.exclude_other_systemic
    fields["systemic"] = (
        "no earlier sorafenib or other systemic therapy" if excluded else "earlier systemic therapy allowed"
    )
    return template.format(**fields)


def build_cards(
    assessment: Assessment, context: CardContext, content: CardContent, new_uuid: Callable[[], str]
) -> list[Card]:
    """The cards for an assessment: none when not applicable."""
    if assessment.outcome is Outcome.ELIGIBLE:
        return [_eligible_card(assessment, context, content, new_uuid)]
    if assessment.outcome is Outcome.INFORMATION_NEEDED:
        return [_information_card(assessment, content, new_uuid)]
    return []


def md(text: str) -> str:
    """Escape Markdown in text that came from the patient's record."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _eligible_card(
    assessment: Assessment, context: CardContext, content: CardContent, new_uuid: Callable[[], str]
) -> Card:
    texts = content.texts
    why = "\n".join(_why_line(assessment.facts[name], content) for name in WHY_ORDER if name in assessment.facts)
    cautions = _cautions_section(assessment.cautions, texts["cautions"])
    detail = content.eligible_template.substitute(why=why, cautions=cautions, defaults=content.defaults)
    suggestion_uuid = new_uuid()
    orders = (
        Action(
            "create",
            texts["eligible"]["medication_action"],
            _order(content.medication_order, context, suggestion_uuid, assessment.recurrence_reference, content),
        ),
        Action(
            "create",
            texts["eligible"]["service_action"],
            _order(content.service_order, context, suggestion_uuid, assessment.recurrence_reference, content),
        ),
    )
    return Card(
        uuid=new_uuid(),
        summary=texts["eligible"]["summary"],
        indicator=texts["eligible"]["indicator"],
        source_label=texts["source"]["label"],
        source_url=texts["source"]["url"],
        kind=Outcome.ELIGIBLE.value,
        detail=detail,
        suggestions=(Suggestion(texts["eligible"]["suggestion_label"], suggestion_uuid, orders, is_recommended=False),),
        selection_behavior="at-most-one",
        override_reasons=content.override_reasons,
        links=content.links,
    )


def _information_card(assessment: Assessment, content: CardContent, new_uuid: Callable[[], str]) -> Card:
    texts = content.texts
    missing = assessment.missing
    labels = [texts["missing"][f.code]["label"] for f in missing]
    found = "\n".join(
        _found_line(assessment.facts[name], content)
        for name in FOUND_ORDER
        if name in assessment.facts and assessment.facts[name].known
    )
    needed = "\n".join(
        f"- **{_capital(texts['missing'][f.code]['label'])}**: {md(f.detail)}. Where to look: "
        f"{texts['missing'][f.code]['where']}."
        for f in missing
    )
    return Card(
        uuid=new_uuid(),
        summary=_info_summary(texts, labels),
        indicator=texts["information_needed"]["indicator"],
        source_label=texts["source"]["label"],
        source_url=texts["source"]["url"],
        kind=Outcome.INFORMATION_NEEDED.value,
        detail=content.information_template.substitute(found=found, missing=needed),
        links=content.links,
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _info_summary(texts: Mapping[str, Any], labels: Sequence[str]) -> str:
    info = texts["information_needed"]
    if len(labels) <= 2:
        return str(info["summary_few"]).format(items=" and ".join(labels))
    return str(info["summary_many"]).format(count=len(labels))


def _why_line(fact: Fact, content: CardContent) -> str:
    spec = content.texts["facts"][fact.name]
    basis = content.texts["basis"][spec["basis"]]
    return f"- **{spec['label']}**: {_value_text(fact)} ({basis}). {_sources(fact.evidence)}".rstrip()


def _found_line(fact: Fact, content: CardContent) -> str:
    spec = content.texts["facts"][fact.name]
    return f"- **{spec['label']}**: {_value_text(fact)}. {_sources(fact.evidence)}".rstrip()


def _value_text(fact: Fact) -> str:
    value = fact.value or "unknown"
    match fact.name:
        case "resection":
            return f"completed {fact.date}" if fact.date else "completed"
        case "recurrence":
            return f"since {fact.date}" if fact.date else "recorded, date not recorded"
        case "stage":
            if value == "B" and fact.note and fact.note.startswith("mapped from"):
                return f"BCLC B ({md(fact.note)}; both readings are practice defaults)"
            return "BCLC B (read as the trial's intermediate stage: a practice default)" if value == "B" else md(value)
        case "mvi":
            if fact.note and fact.note.startswith("grade"):
                return f"{value} ({md(fact.note)}; which grades count is a practice default)"
            return md(value)
        case "child_pugh":
            return f"{md(value)} ({fact.date})" if fact.date else md(value)
        case "ecog":
            return f"{value} ({fact.date})" if fact.date else value
        case "age":
            return f"{value} years"
        case "sorafenib" | "other_systemic":
            return "none found in the medication records" if value == "none" else md(value)
    return md(value)


def _sources(evidence: Sequence[Evidence]) -> str:
    if not evidence:
        return ""
    shown = [md(e.describe()) for e in evidence[:3]]
    more = f" and {len(evidence) - 3} more" if len(evidence) > 3 else ""
    return "Source: " + "; ".join(shown) + more + "."


def _cautions_section(cautions: Sequence[Finding], templates: Mapping[str, str]) -> str:
    if not cautions:
        return ""
    lines = [f"- {templates[c.code].format(detail=md(c.detail))}" for c in cautions]
    return "\n**Cautions**\n" + "\n".join(lines) + "\n"


def _order(
    template: Mapping[str, Any], context: CardContext, suggestion_uuid: str, reason: str | None, content: CardContent
) -> dict[str, Any]:
    resource = copy.deepcopy(dict(template))
    system, code = content.own_tag
    resource["meta"] = {"tag": [{"system": system, "code": code, "display": "Proposed by the SOR-TACE CDS service"}]}
    resource["identifier"] = [{"system": SUGGESTION_IDENTIFIER_SYSTEM, "value": suggestion_uuid}]
    resource["subject"] = {"reference": f"Patient/{context.patient_id}"}
    resource["requester"] = {"reference": context.user_id}
    resource["authoredOn"] = context.today.isoformat()
    if reason:
        resource["reasonReference"] = [{"reference": reason}]
    return resource


def _order_template(name: str) -> dict[str, Any]:
    template = read_json(name)
    template.pop("_comment", None)
    return template
