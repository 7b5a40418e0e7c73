"""Turn the body of a service call into a validated, typed ``HookRequest`` (or a 400 naming every problem).

Policy choices the spec leaves open (checklist items in brackets):
- ``fhirAuthorization`` without ``fhirServer`` is a 400 [45]; a token that lacks a required field, is not of
  type Bearer (any case [47]) or has already expired is *unusable*: kept out of every outbound call, and the
  request goes on with what was prefetched [46, 69].
- ``fhirAuthorization.patient`` naming another patient than ``context.patientId`` is a 400: data for the wrong
  patient must never be read [48].
- A ``hookInstance`` that is not a UUID is accepted with a warning in the log [38].
- ``userId`` must be ``Practitioner|PractitionerRole|Patient|RelatedPerson/<id>`` [42, 43].
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cds.errors import InvalidRequest, Issue
from cds.httpbody import media_type
from cds.services import ServiceDefinition
from cds.settings import Secret
from cds.validation import schema_issues

log = logging.getLogger("cds.request")

_TOKEN_FIELDS = ("access_token", "token_type", "expires_in", "scope", "subject")
_TOKEN_CHARACTERS = re.compile(r"^[\x21-\x7e]{1,8192}$")  # what an HTTP header can carry (RFC 6750 b64token+)


@dataclass(frozen=True)
class FhirAuthorization:
    """The EHR's OAuth token for its FHIR server: transient, never stored or logged [66, 67]."""

    access_token: Secret
    scope: str
    subject: str
    expires_at: float  # time.monotonic() deadline derived from expires_in at receipt [69]

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    patient_id: str
    user_id: str
    encounter_id: str | None = None
    fhir_server: str | None = None
    authorization: FhirAuthorization | None = None
    # Why a supplied fhirAuthorization cannot be used (None when usable or absent).
    authorization_problem: str | None = None
    # Only the keys the client sent; a key whose value is None means "no data".
    prefetch: Mapping[str, Any] = field(default_factory=dict)


def parse_json_body(body: bytes, content_type: str | None) -> Any:
    """Decode a JSON request body.

    :raise InvalidRequest: the media type is not JSON or the body does not parse.
    """
    received = media_type(content_type)
    if received != "application/json" and not (received.startswith("application/") and received.endswith("+json")):
        shown = received or "none"
        raise InvalidRequest(
            f"Content-Type must be application/json (got {shown})",
            [Issue(f"Content-Type must be application/json (got {shown})", code="not-supported")],
        )
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("Body is not UTF-8 encoded JSON") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"Body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, absurd numbers, absurd nesting
        raise InvalidRequest("Body is not valid JSON (non-standard number or nesting too deep)") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_hook_request(payload: Any, service: ServiceDefinition) -> HookRequest:
    """Validate a decoded service-call body against the request schema and the service's hook.

    :raise InvalidRequest: every schema violation and policy breach, as separate issues.
    """
    if not isinstance(payload, dict):
        raise InvalidRequest("Body must be a JSON object")
    issues = schema_issues("hook-request", payload)
    if not issues and payload["hook"] != service.hook:
        issues.append(
            Issue(
                f"hook: service '{service.id}' answers the '{service.hook}' hook, not '{payload['hook']}'",
                expression="hook",
            )
        )
    auth_raw = payload.get("fhirAuthorization")
    if auth_raw is not None and "fhirServer" not in payload:
        issues.append(Issue("fhirAuthorization: given without fhirServer", expression="fhirAuthorization"))
    raw_context = payload.get("context")
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    if isinstance(auth_raw, dict) and "patient" in auth_raw and auth_raw["patient"] != context.get("patientId"):
        issues.append(
            Issue(
                "fhirAuthorization.patient: names a different patient than context.patientId",
                expression="fhirAuthorization.patient",
            )
        )
    if issues:
        raise InvalidRequest(issues[0].diagnostics, issues)

    if not _is_uuid(payload["hookInstance"]):
        log.warning("hookInstance is not a UUID; accepted", extra={"hookInstance": payload["hookInstance"][:80]})
    authorization, problem = _authorization(auth_raw)
    return HookRequest(
        hook=payload["hook"],
        hook_instance=payload["hookInstance"],
        patient_id=context["patientId"],
        user_id=context["userId"],
        encounter_id=context.get("encounterId"),
        fhir_server=payload.get("fhirServer", "").rstrip("/") or None,
        authorization=authorization,
        authorization_problem=problem,
        prefetch=dict(payload.get("prefetch") or {}),
    )


def _authorization(raw: Mapping[str, Any] | None) -> tuple[FhirAuthorization | None, str | None]:
    if raw is None:
        return None, None
    missing = [name for name in _TOKEN_FIELDS if raw.get(name) in (None, "")]
    if missing:
        return None, f"fhirAuthorization lacks {', '.join(missing)}"
    if str(raw["token_type"]).lower() != "bearer":
        return None, "fhirAuthorization.token_type is not Bearer"
    if not _TOKEN_CHARACTERS.match(str(raw["access_token"])):
        return None, "fhirAuthorization.access_token has characters a bearer token cannot have"
    if not math.isfinite(raw["expires_in"]) or raw["expires_in"] <= 0:
        return None, "fhirAuthorization has expired (expires_in <= 0)"
    token = FhirAuthorization(
        access_token=Secret(raw["access_token"]),
        scope=raw["scope"],
        subject=raw["subject"],
        expires_at=time.monotonic() + float(raw["expires_in"]),
    )
    return token, None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
