"""CORS for browser CDS clients such as the CDS Hooks Sandbox (checklist H).

Preflight (``OPTIONS``) is answered here, before authentication: browsers never send credentials with it
[138]. Allowed origins come from the settings; ``*`` is allowed only in the development profile (settings
refuse it in production). ``Access-Control-Allow-Credentials`` is never sent, so ``*`` can never be combined
with credentials [140]: the client JWT travels in the ``Authorization`` header, which needs no credentials mode.
"""

from __future__ import annotations

from flask import Flask, Response, request

from cds.settings import CorsSettings

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"


def init_cors(app: Flask, settings: CorsSettings) -> None:
    """Answer preflights and add CORS headers to every response for an allowed origin."""

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if not origin:
            return None
        if "*" in settings.allowed_origins:
            return "*"
        return origin if origin in settings.allowed_origins else None

    @app.before_request
    def _preflight() -> Response | None:
        if request.method != "OPTIONS":
            return None
        response = Response(status=204)
        allow = allowed_origin()
        if allow:
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = str(settings.max_age_seconds)
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                # Chrome's Private Network Access: a public page (the Sandbox) calling a service on localhost.
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        allow = allowed_origin()
        if allow:
            response.headers["Access-Control-Allow-Origin"] = allow
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            if allow != "*":
                response.headers.add("Vary", "Origin")
        return response
