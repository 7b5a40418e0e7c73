"""Whether this hook call may reach the EHR's FHIR server, and with what: the guard against request forgery.

The request names ``fhirServer`` and carries a real bearer token, so a service that fetched from any URL it is
told would be a proxy into any network, carrying credentials. A call may reach only a FHIR server listed for
the authenticated client (``fhir_servers`` of its issuer), never sends the token over plain http in
production, and never fetches without a token unless unauthenticated access is enabled (test servers).
When access is refused nothing is sent; the reason is reported (412 if the data was needed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from cds.fhirclient import FhirClient
from cds.hookrequest import HookRequest
from cds.settings import FhirSettings
from cds.urls import server_allowed


@dataclass(frozen=True)
class FhirAccess:
    """A client for this call's FHIR server, or the reason there is none."""

    client: FhirClient | None
    problem: str | None = None


def fhir_access(
    request: HookRequest,
    allowed_servers: tuple[str, ...],
    settings: FhirSettings,
    session: requests.Session,
    deadline: float,
) -> FhirAccess:
    """Decide how (or whether) this call may fetch from ``request.fhir_server``."""
    server = request.fhir_server
    if not server:
        return FhirAccess(None, "the request has no fhirServer to fetch it from")
    if not server_allowed(server, allowed_servers):
        return FhirAccess(None, f"fhirServer {server} is not allowed for this client")
    if request.authorization_problem:
        return FhirAccess(None, request.authorization_problem)
    token = request.authorization.access_token if request.authorization else None
    if token is None and not settings.allow_unauthenticated:
        return FhirAccess(None, "the request has no fhirAuthorization and unauthenticated FHIR access is disabled")
    if token is not None and urlsplit(server).scheme != "https" and not settings.allow_plain_http_token:
        return FhirAccess(None, "the access token would be sent over plain http; refused")
    if request.authorization is not None and request.authorization.expired():
        return FhirAccess(None, "fhirAuthorization has expired")
    if deadline <= time.monotonic():
        return FhirAccess(None, "no time left to fetch within the deadline")
    return FhirAccess(FhirClient(session, settings, server, token, deadline))
