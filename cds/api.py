"""The CDS Hooks endpoints: discovery, service calls and feedback. Views parse, call and serialise; nothing more.

Every call except CORS preflight and the health check carries a CDS client JWT when ``[auth] mode = "jwt"``; its
``aud`` must be the public URL of the endpoint called (``public_base_url`` + path), not what Flask sees behind a
proxy.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, json, request

from cds.auth import ANONYMOUS, Authenticator, Caller
from cds.errors import UnknownService
from cds.feedback import parse_feedback
from cds.hook import HookRuntime, run_hook
from cds.hookrequest import parse_json_body
from cds.services import ServiceDefinition

log = logging.getLogger("cds.api")
blueprint = Blueprint("cds", __name__)


def _runtime() -> HookRuntime:
    runtime: HookRuntime = current_app.extensions["sortace.runtime"]
    return runtime


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


@blueprint.before_request
def authenticate() -> None:
    """Authenticate the CDS client; with auth off every caller is ``anonymous`` (local experiments only)."""
    settings = _runtime().settings
    authenticator: Authenticator | None = current_app.extensions["sortace.authenticator"]
    if authenticator is None:
        g.caller = Caller(ANONYMOUS, settings.auth.unauthenticated_fhir_servers)
        return
    g.caller = authenticator.authenticate(request.headers.get("Authorization"), settings.public_base_url + request.path)


def _service(service_id: str) -> ServiceDefinition:
    services: dict[str, ServiceDefinition] = current_app.extensions["sortace.services"]
    service = services.get(service_id)
    if service is None:
        raise UnknownService(f"No CDS service '{service_id[:100]}' here; see GET /cds-services")
    return service


@blueprint.get("/cds-services")
def discovery() -> Response:
    return Response(current_app.extensions["sortace.discovery"], mimetype="application/json")


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    service = _service(service_id)
    payload = parse_json_body(request.get_data(cache=False), request.content_type)
    result = run_hook(payload, service, g.caller, _runtime())
    return _json(result.response)


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    service = _service(service_id)
    payload = parse_json_body(request.get_data(cache=False), request.content_type)
    items = parse_feedback(payload, service.id)
    store = _runtime().store
    assert store is not None  # the application factory always opens the store
    receipt = store.record_feedback(service.id, g.caller.issuer, items)
    if receipt.unknown_cards:
        log.warning(
            "feedback for cards this service has no record of", extra={"cards": list(receipt.unknown_cards[:20])}
        )
    log.info(
        "feedback stored",
        extra={
            "service": service.id,
            "items": len(items),
            "stored": receipt.stored,
            "duplicates": receipt.duplicates,
            "issuer": g.caller.issuer,
        },
    )
    return _json({"stored": receipt.stored, "duplicates": receipt.duplicates})
