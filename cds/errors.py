"""Errors a client can cause, and the one place that turns every error into a FHIR OperationOutcome.

    CdsError (status 500, never raised directly)
    ├── InvalidRequest        400  the body or a header is wrong; ``issues`` name each field
    ├── Unauthorized          401  minimal body on purpose: no hint that helps an attacker
    ├── UnknownService        404
    ├── PrefetchUnavailable   412  required data is neither prefetched nor obtainable
    └── ResponseContractError 500  we built a card that breaks the spec (a bug; never sent)

Views raise; they never build error responses themselves. Werkzeug's HTTP errors (404 route, 405, 413) go
through the same handler, and anything unexpected becomes a generic 500 without a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

log = logging.getLogger("cds.errors")


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: what is wrong (``diagnostics``) and where (``expression``)."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = [self.expression]
        return out


class CdsError(Exception):
    status_code = 500
    issue_code = "exception"

    def __init__(self, message: str, issues: Sequence[Issue] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.issues = tuple(issues) or (Issue(message, code=self.issue_code),)
        self.headers = headers or {}


class InvalidRequest(CdsError):
    status_code = 400
    issue_code = "invalid"


class Unauthorized(CdsError):
    status_code = 401
    issue_code = "login"

    def __init__(self, reason: str, issuer: str | None = None) -> None:
        # ``reason`` and ``issuer`` go to the log only; the client sees a fixed message.
        super().__init__("Authentication required", headers={"WWW-Authenticate": "Bearer"})
        self.reason = reason
        self.issuer = issuer


class UnknownService(CdsError):
    status_code = 404
    issue_code = "not-found"


class PrefetchUnavailable(CdsError):
    status_code = 412
    issue_code = "incomplete"


class ResponseContractError(CdsError):
    """A response we built breaks a CDS Hooks rule. Raised before sending; always a bug."""


_HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def outcome_response(status: int, issues: Sequence[Issue], headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(operation_outcome(issues))
    response = Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Map every error to an OperationOutcome. The catch-all comes last and reveals nothing."""

    @app.errorhandler(CdsError)
    def _cds_error(exc: CdsError) -> Response:
        if isinstance(exc, Unauthorized):
            log.warning("authentication failed", extra={"reason": exc.reason, "issuer": exc.issuer})
        elif exc.status_code >= 500:
            log.error("response contract violated: %s", exc.message)
        else:
            log.info("request rejected", extra={"status": exc.status_code, "reason": exc.message})
        return outcome_response(exc.status_code, exc.issues, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = _http_message(exc)
        methods = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(methods)} if methods else {}
        return outcome_response(status, [Issue(message, code=_HTTP_ISSUE_CODES.get(status, "processing"))], headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unhandled error", extra={"error_type": type(exc).__name__})
        return outcome_response(500, [Issue("Internal error; the service logged it.", code="exception")])


def _http_message(exc: HTTPException) -> str:
    status = exc.code or 500
    if status == 404:
        return "No such endpoint. Discovery is at GET /cds-services."
    if status == 405:
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
        return f"Method not allowed on this endpoint (allowed: {allowed})."
    if status == 413:
        return "Request body is larger than the configured limit (max_request_bytes)."
    return exc.description or exc.name
