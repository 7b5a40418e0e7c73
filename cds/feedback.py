"""Feedback from the EHR: validate a ``{"feedback": [...]}`` batch into items, all or nothing (checklist F).

A bad item rejects the whole batch (400, naming the item and the field), so nothing is half-stored. Accepted:
one or more items; ``acceptedSuggestions`` required for ``accepted`` [107]; ``overrideReason`` optional, with
only a ``userComment`` [110] or a Coding without ``display`` or ``system`` [111]. Epic sends
``overrideReasons`` (plural) in its feedback; it is read the same way. An item's identity for idempotency is
its content: the same item sent twice is stored once [112], while a later outcome for the same card is a new
item and is kept.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from cds.errors import InvalidRequest
from cds.store.sql import FeedbackItem
from cds.validation import parse_rfc3339, schema_issues


def parse_feedback(payload: Any, service_id: str) -> list[FeedbackItem]:
    """The items of a feedback body.

    :raise InvalidRequest: the envelope or any item is invalid; every problem is listed.
    """
    if not isinstance(payload, dict):
        raise InvalidRequest("Body must be a JSON object with a feedback array")
    items = payload.get("feedback")
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and "overrideReason" not in item and "overrideReasons" in item:
            reasons = item["overrideReasons"]
            item["overrideReason"] = reasons[0] if isinstance(reasons, list) and reasons else reasons
    issues = schema_issues("feedback-request", payload)
    if issues:
        raise InvalidRequest(issues[0].diagnostics, issues)
    return [_item(raw, service_id) for raw in payload["feedback"]]


def _item(raw: dict[str, Any], service_id: str) -> FeedbackItem:
    reason = (raw.get("overrideReason") or {}).get("reason") or {}
    comment = (raw.get("overrideReason") or {}).get("userComment")
    identity = {k: raw.get(k) for k in ("card", "outcome", "outcomeTimestamp", "acceptedSuggestions", "overrideReason")}
    key = hashlib.sha256(json.dumps([service_id, identity], sort_keys=True).encode()).hexdigest()
    return FeedbackItem(
        card=raw["card"],
        outcome=raw["outcome"],
        outcome_timestamp=parse_rfc3339(raw["outcomeTimestamp"]).astimezone(UTC),
        accepted_suggestions=tuple(s["id"] for s in raw.get("acceptedSuggestions") or ()),
        override_code=reason.get("code") or None,
        override_system=reason.get("system") or None,
        override_display=reason.get("display") or None,
        override_comment=comment or None,
        idempotency_key=key,
    )
