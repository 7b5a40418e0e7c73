"""The one place that turns cards into the JSON an EHR receives, and refuses to send anything that breaks the spec.

Every service and discovery response passes through ``service_response`` / ``discovery_response``: they
serialise, validate against the response schema (CDS Hooks 2.0.1 Card, Suggestion, Action, Link and Coding
rules) and check what a schema cannot say: no ``null``, ``""``, ``[]`` or ``{}`` anywhere except ``cards: []``
and ``services: []``, unique uuids, at most one recommended suggestion under ``at-most-one``. A violation raises
``ResponseContractError``: a bug, caught by tests, never sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cds.errors import ResponseContractError
from cds.validation import schema_issues


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _compact({"system": self.system, "code": self.code, "display": self.display})


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: str = "absolute"

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "url": self.url, "type": self.type}


@dataclass(frozen=True)
class Action:
    type: str
    description: str
    resource: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return _compact({"type": self.type, "description": self.description, "resource": self.resource})


@dataclass(frozen=True)
class Suggestion:
    label: str
    uuid: str
    actions: tuple[Action, ...] = ()
    is_recommended: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "label": self.label,
                "uuid": self.uuid,
                "isRecommended": self.is_recommended,
                "actions": [a.to_json() for a in self.actions],
            }
        )


@dataclass(frozen=True)
class Card:
    """A card, plus what the service keeps about it (``kind``) that is not sent."""

    uuid: str
    summary: str
    indicator: str
    source_label: str
    kind: str
    source_url: str | None = None
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: str | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "uuid": self.uuid,
                "summary": self.summary,
                "detail": self.detail,
                "indicator": self.indicator,
                "source": _compact({"label": self.source_label, "url": self.source_url}),
                "suggestions": [s.to_json() for s in self.suggestions],
                "selectionBehavior": self.selection_behavior,
                "overrideReasons": [o.to_json() for o in self.override_reasons],
                "links": [link.to_json() for link in self.links],
            }
        )


def service_response(cards: Sequence[Card]) -> dict[str, Any]:
    """``{"cards": [...]}`` for the given cards, checked against every card rule.

    :raise ResponseContractError: a card breaks a rule (a bug in card building).
    """
    payload = {"cards": [card.to_json() for card in cards]}
    problems = [i.diagnostics for i in schema_issues("service-response", payload)]
    problems += [f"empty value at {where}" for where in _empty_values(payload, "", allowed=frozenset({"cards"}))]
    problems += _uniqueness(cards)
    if problems:
        raise ResponseContractError("service response breaks the CDS Hooks rules: " + "; ".join(problems))
    return payload


def discovery_response(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"services": [...]}``, checked against the discovery rules.

    :raise ResponseContractError: an entry breaks a rule.
    """
    payload = {"services": list(entries)}
    problems = [i.diagnostics for i in schema_issues("discovery-response", payload)]
    problems += [f"empty value at {where}" for where in _empty_values(payload, "", allowed=frozenset({"services"}))]
    if problems:
        raise ResponseContractError("discovery response breaks the CDS Hooks rules: " + "; ".join(problems))
    return payload


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop members with no value: CDS Hooks forbids null and empty strings, arrays and objects."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != [] and v != {}}


def _empty_values(value: Any, where: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    if value is None or value == "" or value == [] or value == {}:
        if where not in allowed:
            out.append(where or "(root)")
        return out
    if isinstance(value, dict):
        for key, child in value.items():
            out += _empty_values(child, f"{where}.{key}" if where else key, allowed)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _empty_values(child, f"{where}[{i}]", allowed)
    return out


def _uniqueness(cards: Sequence[Card]) -> list[str]:
    problems = []
    ids = [c.uuid for c in cards] + [s.uuid for c in cards for s in c.suggestions]
    if len(ids) != len(set(ids)):
        problems.append("card and suggestion uuids are not unique")
    for card in cards:
        if card.selection_behavior == "at-most-one" and sum(1 for s in card.suggestions if s.is_recommended) > 1:
            problems.append(f"card {card.uuid}: more than one recommended suggestion under at-most-one")
    return problems
