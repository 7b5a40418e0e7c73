"""Complete the prefetch: use what the EHR sent, fetch what it did not, and keep only this patient's data.

Per advertised key (checklist D):
- value ``null``: no data; never re-queried [55];
- an OperationOutcome (or a Bundle carrying an error outcome): the EHR failed to fetch it; not re-queried, the
  key counts as failed [57, 58];
- a Bundle with a ``next`` link: the rest is fetched [59]; if it cannot be, the key is incomplete;
- absent, or a value of the wrong shape [60]: fetched from ``fhirServer`` with the template expanded
  (values URL-encoded, ``user*Id`` tokens derived from ``context.userId``; a template whose token cannot be
  resolved is skipped [62, 63]). All such keys are fetched concurrently within one deadline [64].
Keys the service did not advertise are ignored [61]. A resource that does not belong to ``context.patientId``
is discarded and logged. A required key that cannot be obtained is a 412 naming it [53, 54]; an optional one
makes the facts that depend on it unknown.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cds.bundles import entries, error_diagnostics, next_link
from cds.errors import Issue, PrefetchUnavailable
from cds.fhiraccess import FhirAccess
from cds.fhirclient import FetchResult, FhirError
from cds.hookrequest import HookRequest
from cds.record import GatheredData
from cds.services import TOKEN, PrefetchKey, ServiceDefinition

log = logging.getLogger("cds.prefetch")

_USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


@dataclass
class _KeyState:
    key: PrefetchKey
    resources: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None
    incomplete: str | None = None


def token_values(request: HookRequest) -> dict[str, str]:
    """The values of the 2.0 prefetch tokens this request can resolve."""
    values = {"context.patientId": request.patient_id, "context.userId": request.user_id}
    if request.encounter_id:
        values["context.encounterId"] = request.encounter_id
    user_type, _, user_id = request.user_id.partition("/")
    if user_type in _USER_TOKENS:
        values[_USER_TOKENS[user_type]] = user_id
    return values


def expand(template: str, values: Mapping[str, str]) -> str | None:
    """The template with each ``{{token}}`` replaced by its URL-encoded value; None if a token is unknown."""
    missing = [t for t in TOKEN.findall(template) if t.strip() not in values]
    if missing:
        return None
    return TOKEN.sub(lambda m: quote(values[m.group(1).strip()], safe=""), template)


def complete_prefetch(
    request: HookRequest, service: ServiceDefinition, access: FhirAccess, executor: Executor, deadline: float
) -> GatheredData:
    """Gather every advertised key's resources for this patient.

    :raise PrefetchUnavailable: a required key could not be obtained (412), each such key named.
    """
    values = token_values(request)
    states = {key.name: _KeyState(key) for key in service.prefetch}
    queries = {key.name: expand(key.template, values) for key in service.prefetch}
    pending: dict[str, Future[FetchResult]] = {}
    for key in service.prefetch:
        state = states[key.name]
        query = queries[key.name]
        if query is None:
            state.failure = "its template needs a token this request does not provide"
            continue
        if key.name in request.prefetch and _use_prefetched(state, request.prefetch[key.name]):
            next_url = _next_link(request.prefetch[key.name])
            if next_url:
                _submit(pending, state, access, executor, lambda c, n=next_url, q=query: c.follow(n, q))
            continue
        _submit(pending, state, access, executor, lambda c, q=query: c.fetch(q))
    _collect(states, pending, deadline)
    return _gathered(states, request, queries)


def _use_prefetched(state: _KeyState, value: Any) -> bool:
    """Take a prefetched value if it is usable; False means "fetch it instead"."""
    name, resource_type = state.key.name, state.key.resource_type
    if value is None:
        return True
    if not isinstance(value, dict):
        log.warning("prefetch value has the wrong shape; fetching instead", extra={"key": name})
        return False
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        state.failure = "the EHR could not fetch it (it sent an OperationOutcome)"
        log.warning("prefetch holds an OperationOutcome", extra={"key": name})
        return True
    if kind == "Bundle":
        for entry in entries(value):
            resource = entry.get("resource")
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") == "OperationOutcome":
                if error_diagnostics(resource):
                    state.failure = "the EHR's search failed (its Bundle carries an error OperationOutcome)"
                    state.resources.clear()
                    log.warning("prefetch Bundle holds an error OperationOutcome", extra={"key": name})
                    return True
                continue
            state.resources.append(resource)
        return True
    if kind == resource_type:
        state.resources.append(value)
        return True
    log.warning("prefetch value has an unexpected resourceType; fetching instead", extra={"key": name, "got": kind})
    return False


def _next_link(value: Any) -> str | None:
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return None
    return next_link(value)


def _submit(
    pending: dict[str, Future[FetchResult]], state: _KeyState, access: FhirAccess, executor: Executor, call: Any
) -> None:
    if state.failure:
        return
    if access.client is None:
        if state.resources:
            state.incomplete = f"only the first page was prefetched and the rest cannot be fetched: {access.problem}"
        else:
            state.failure = f"not prefetched, and {access.problem}"
        return
    client = access.client
    pending[state.key.name] = executor.submit(call, client)


def _collect(states: dict[str, _KeyState], pending: dict[str, Future[FetchResult]], deadline: float) -> None:
    if not pending:
        return
    started = time.monotonic()
    done, _ = wait(pending.values(), timeout=max(0.0, deadline - started))
    for name, future in pending.items():
        state = states[name]
        if future not in done:
            future.cancel()
            state.failure = "the FHIR server did not answer within the deadline"
            continue
        try:
            result = future.result()
        except FhirError as exc:
            state.failure = str(exc)
            continue
        if result.restarted:
            state.resources.clear()
        state.resources.extend(result.resources)
        if not result.complete:
            state.incomplete = result.note
        log.info(
            "fetched prefetch key",
            extra={"key": name, "pages": result.pages, "entries": len(result.resources), "complete": result.complete},
        )
    log.info(
        "prefetch completion finished",
        extra={"keys": sorted(pending), "ms": round((time.monotonic() - started) * 1000)},
    )


def _gathered(states: dict[str, _KeyState], request: HookRequest, queries: Mapping[str, str | None]) -> GatheredData:
    required_failures = [s for s in states.values() if s.failure and s.key.required]
    if required_failures:
        issues = [
            Issue(
                f"prefetch key '{s.key.name}' ({queries[s.key.name] or s.key.template}) "
                f"could not be obtained: {s.failure}",
                code="incomplete",
                expression=f"prefetch.{s.key.name}",
            )
            for s in required_failures
        ]
        names = ", ".join(s.key.name for s in required_failures)
        raise PrefetchUnavailable(f"required data not available: {names}", issues)
    resources: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    notes: list[str] = []
    unavailable: set[str] = set()
    incomplete: set[str] = set()
    for state in states.values():
        expected = state.key.resource_type
        if state.failure:
            unavailable.add(expected)
            notes.append(f"{state.key.name}: {state.failure}")
            continue
        if state.incomplete and not state.key.newest_first:
            incomplete.add(expected)
        if state.incomplete:
            notes.append(f"{state.key.name}: {state.incomplete}")
        for resource in state.resources:
            if resource.get("resourceType") != expected:
                continue
            if not belongs_to(resource, request.patient_id):
                log.warning(
                    "discarded a resource of another patient",
                    extra={"key": state.key.name, "resource": f"{expected}/{resource.get('id')}"},
                )
                notes.append(f"{expected}/{resource.get('id')} does not belong to this patient and was ignored")
                continue
            # The same resource from two keys (or pages) counts once; resources without an id are all kept.
            identity = (expected, str(resource["id"])) if resource.get("id") else (expected, f"#{id(resource)}")
            resources.setdefault(expected, {})[identity] = resource
    return GatheredData(
        resources={t: list(by_id.values()) for t, by_id in resources.items()},
        unavailable=frozenset(unavailable),
        incomplete=frozenset(incomplete),
        notes=tuple(notes),
    )


def belongs_to(resource: Mapping[str, Any], patient_id: str) -> bool:
    """The resource is about ``patient_id`` (Patient.id, or a ``subject``/``patient`` reference to it)."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    holder = resource.get("subject") or resource.get("patient")
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str):
        return False
    match = _PATIENT_REFERENCE.search(reference)
    return bool(match and match.group(1) == patient_id)
