"""One hook call, end to end: validated request -> patient record -> assessment -> cards -> response.

The HTTP view and ``sortace-cds evaluate`` both call ``run_hook``; only what surrounds it differs. Suppression
(issue #6): a card is not shown again when our SOR-TACE proposal is already in the record, or when the same card
was overridden for this patient within the suppression window and the facts behind it have not changed (same
fact digest). Ledger and suppression look-ups fail open: a database problem is logged and the clinician still
gets the card.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests
from sqlalchemy.exc import SQLAlchemyError

from cds.auth import Caller
from cds.cards import CardContent, CardContext, build_cards
from cds.clinical.assessment import assess
from cds.clinical.model import Assessment
from cds.errors import Issue, PrefetchUnavailable
from cds.fhiraccess import fhir_access
from cds.hookrequest import HookRequest, parse_hook_request
from cds.knowledge import Knowledge
from cds.prefetch import complete_prefetch
from cds.record import PatientUnreadable, Preselector, to_patient_data
from cds.response import Card, service_response
from cds.services import ServiceDefinition
from cds.settings import Settings
from cds.store.sql import LedgerEntry, SqlStore, patient_key

log = logging.getLogger("cds.hook")


@dataclass(frozen=True)
class HookRuntime:
    """Everything a hook call needs, built once per process by the application factory."""

    settings: Settings
    knowledge: Knowledge
    preselector: Preselector
    content: CardContent
    session: requests.Session
    executor: Executor
    store: SqlStore | None
    patient_hash_key: bytes

    def close(self) -> None:
        """Release the process's pools (database, HTTP, threads); for tests and orderly shutdown."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.session.close()
        if self.store is not None:
            self.store.close()


@dataclass(frozen=True)
class HookResult:
    response: dict[str, Any]
    assessment: Assessment
    suppressed: str | None = None


def run_hook(
    payload: Any, service: ServiceDefinition, caller: Caller, runtime: HookRuntime, today: date | None = None
) -> HookResult:
    """Answer a service call.

    :raise InvalidRequest: the body is not a valid patient-view request (400).
    :raise PrefetchUnavailable: required data is neither prefetched nor obtainable (412).
    """
    started = time.monotonic()
    request = parse_hook_request(payload, service)
    deadline = started + runtime.settings.fhir.deadline_seconds
    access = fhir_access(request, caller.fhir_servers, runtime.settings.fhir, runtime.session, deadline)
    gathered = complete_prefetch(request, service, access, runtime.executor, deadline)
    try:
        data = to_patient_data(gathered, runtime.preselector)
    except PatientUnreadable as exc:
        raise PrefetchUnavailable(
            f"patient: {exc}",
            [Issue(f"prefetch key 'patient': {exc}", code="incomplete", expression="prefetch.patient")],
        ) from exc
    now = datetime.now(UTC)
    today = today or now.date()
    knowledge = runtime.knowledge
    assessment = assess(data, today, knowledge.terminology, knowledge.criteria)
    context = CardContext(request.patient_id, request.user_id, today)
    cards = build_cards(assessment, context, runtime.content, lambda: str(uuid.uuid4()))
    key = patient_key(runtime.patient_hash_key, caller.issuer, request.patient_id)
    digest = assessment.digest() if cards and runtime.store is not None else ""
    suppressed = _suppressed(assessment, cards, digest, service, key, now, runtime) if cards else None
    shown = () if suppressed else tuple(cards)
    response = service_response(shown)
    _record(shown, digest, request, service, caller, key, now, runtime)
    log.info(
        "hook answered",
        extra={
            "hookInstance": request.hook_instance[:80],
            "service": service.id,
            "issuer": caller.issuer,
            "outcome": assessment.outcome.value,
            "cards": len(shown),
            "suppressed": suppressed,
            "exclusions": [f.code for f in assessment.exclusions],
            "missing": [f.code for f in assessment.missing],
            "ms": round((time.monotonic() - started) * 1000, 1),
        },
    )
    return HookResult(response, assessment, suppressed)


def _suppressed(
    assessment: Assessment,
    cards: list[Card],
    digest: str,
    service: ServiceDefinition,
    key: str,
    now: datetime,
    runtime: HookRuntime,
) -> str | None:
    if assessment.own_proposal is not None:
        return f"SOR-TACE proposal already in the record ({assessment.own_proposal.reference})"
    if runtime.store is None:
        return None
    since = now - timedelta(days=runtime.settings.feedback.suppression_days)
    try:
        digests = runtime.store.overridden_digests(service.id, key, cards[0].kind, since)
    except SQLAlchemyError as exc:
        log.error("suppression look-up failed; showing the card", extra={"error_type": type(exc).__name__})
        return None
    if digest in digests:
        return "overridden for this patient within the suppression window; facts unchanged"
    return None


def _record(
    cards: tuple[Card, ...],
    digest: str,
    request: HookRequest,
    service: ServiceDefinition,
    caller: Caller,
    key: str,
    now: datetime,
    runtime: HookRuntime,
) -> None:
    if runtime.store is None or not cards:
        return
    entries = [
        LedgerEntry(
            card_uuid=card.uuid,
            service_id=service.id,
            hook_instance=request.hook_instance,
            issuer=caller.issuer,
            kind=card.kind,
            fact_digest=digest,
            patient_key=key,
            suggestion_uuids=tuple(s.uuid for s in card.suggestions),
            created_at=now,
        )
        for card in cards
    ]
    try:
        runtime.store.record_cards(entries)
    except SQLAlchemyError as exc:
        log.error("card ledger write failed; card still shown", extra={"error_type": type(exc).__name__})
