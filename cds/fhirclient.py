"""A small FHIR REST client for prefetch completion: reads and complete searches, within a deadline.

- One pooled ``requests.Session`` per process; ``Accept: application/fhir+json``; no redirects followed.
- The EHR's bearer token goes only to the origin of ``fhirServer``: a ``next`` link on another origin is refused
  (the search is then incomplete), never followed with or without the token.
- Every request has a connect and a read timeout bounded by the hook call's overall deadline.
- Searches follow ``next`` links (HAPI's opaque ``_getpages`` links included) up to page and entry caps; a 410
  on a later page (expired paging state) restarts the search once.
- Errors are described from an OperationOutcome, an HTML page or an empty body, without echoing anything secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from cds.bundles import entries, error_diagnostics, next_link
from cds.httpbody import BodyError, media_type, read_body
from cds.settings import FhirSettings, Secret
from cds.urls import same_server

FHIR_JSON = "application/fhir+json"
ERROR_BODY_BYTES = 65_536


class FhirError(Exception):
    """A fetch failed; the message is safe to show to the client and to log."""


@dataclass
class FetchResult:
    resources: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True
    note: str | None = None
    pages: int = 0
    # True when the search was run again from the start (the caller drops pages it already had).
    restarted: bool = False


def new_session(settings: FhirSettings) -> requests.Session:
    """The process's pooled HTTP session for FHIR servers: no cookies, no proxies from the environment."""
    session = requests.Session()
    _refuse_cookies(session)
    adapter = HTTPAdapter(pool_connections=settings.pool_size, pool_maxsize=settings.pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # proxies or netrc credentials from the environment must not apply to EHR calls
    return session


def _refuse_cookies(session: requests.Session) -> None:
    """Never keep cookies: a server session opened for one EHR user must not carry over to another call."""
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))


class FhirClient:
    """Fetches from one FHIR server for one hook call (one base URL, one token, one deadline)."""

    def __init__(
        self, session: requests.Session, settings: FhirSettings, base: str, token: Secret | None, deadline: float
    ) -> None:
        self._session = session
        self._settings = settings
        self._base = base.rstrip("/")
        self._token = token
        self._deadline = deadline

    def fetch(self, query: str) -> FetchResult:
        """Read ``Type/id`` or run a search to the end (within the caps).

        :raise FhirError: the server failed, timed out, answered something that is not FHIR JSON, or the
            deadline passed.
        """
        url = f"{self._base}/{query.lstrip('/')}"
        if "?" not in query and query.count("/") == 1:
            body = self._get(url)
            return FetchResult([body], pages=1)
        try:
            return self._search(url)
        except _PageGone:
            pass  # the paging state expired (HAPI answers 410): start the search again, once
        try:
            return self._search(url)
        except _PageGone as exc:
            raise FhirError("the FHIR server's paging state expired twice during one search") from exc

    def follow(self, next_url: str, query: str) -> FetchResult:
        """Fetch the rest of a search whose first page came in the prefetch.

        :raise FhirError: as ``fetch``.
        """
        if not same_server(next_url, self._base):
            return _incomplete(FetchResult(), "the next page is not on the FHIR server; not followed")
        try:
            return self._search(next_url, starts_with_page=True)
        except _PageGone:
            result = self.fetch(query)
            result.restarted = True
            return result

    def _search(self, url: str, starts_with_page: bool = False) -> FetchResult:
        result = FetchResult()
        next_url: str | None = url
        matches = 0
        while next_url:
            page = self._get(next_url, page_gone=starts_with_page or next_url != url)
            result.pages += 1
            if page.get("resourceType") != "Bundle":
                raise FhirError(f"a search answered a {page.get('resourceType')}, not a Bundle")
            for entry in entries(page):
                resource = entry.get("resource")
                if not isinstance(resource, dict):
                    continue
                mode = (entry.get("search") or {}).get("mode", "match")
                if mode == "outcome" or resource.get("resourceType") == "OperationOutcome":
                    _raise_if_error(resource)
                    continue
                matches += mode == "match"
                result.resources.append(resource)
            next_url = next_link(page)
            if next_url and not same_server(next_url, self._base):
                return _incomplete(result, "the next page is not on the FHIR server; not followed")
            if next_url and (result.pages >= self._settings.max_pages or matches >= self._settings.max_entries):
                return _incomplete(result, f"stopped at {result.pages} pages / {matches} entries (caps)")
        return result

    def _get(self, url: str, page_gone: bool = False) -> dict[str, Any]:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise FhirError("the FHIR deadline passed before the request could be sent")
        headers = {"Accept": FHIR_JSON}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        timeout = (min(self._settings.connect_timeout_seconds, remaining), remaining)
        try:
            response = self._session.get(url, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
        except requests.Timeout as exc:
            raise FhirError("the FHIR server did not answer within the deadline") from exc
        except requests.ConnectionError as exc:
            raise FhirError("cannot connect to the FHIR server") from exc
        except requests.RequestException as exc:
            raise FhirError(f"the request to the FHIR server failed ({type(exc).__name__})") from exc
        with response:
            try:
                if response.status_code != 200:
                    content = read_body(response, self._deadline, ERROR_BODY_BYTES, truncate=True)
                    if response.status_code == 410 and page_gone:
                        raise _PageGone()
                    raise FhirError(_describe_failure(response.status_code, response.headers, content))
                content = read_body(response, self._deadline, self._settings.max_response_bytes)
            except BodyError as exc:
                raise FhirError(f"the FHIR server's answer failed: {exc}") from exc
            content_type = media_type(response.headers.get("Content-Type"))
        if content_type not in (FHIR_JSON, "application/json", "application/json+fhir"):
            raise FhirError(f"the FHIR server answered {content_type or 'no content type'}, not FHIR JSON")
        try:
            body = json.loads(content)
        except (ValueError, RecursionError) as exc:
            raise FhirError("the FHIR server answered invalid JSON") from exc
        if not isinstance(body, dict):
            raise FhirError("the FHIR server answered JSON that is not a resource")
        return body


class _PageGone(Exception):
    pass


def _incomplete(result: FetchResult, note: str) -> FetchResult:
    result.complete = False
    result.note = note
    return result


def _raise_if_error(outcome: dict[str, Any]) -> None:
    errors = error_diagnostics(outcome)
    if errors:
        raise FhirError(f"the FHIR server reported an error in the search: {errors}")


def _describe_failure(status_code: int, headers: Mapping[str, str], content: bytes) -> str:
    status = f"HTTP {status_code}"
    if not content:
        return f"the FHIR server answered {status} with an empty body"
    if "html" in media_type(headers.get("Content-Type")) or content.lstrip()[:1] == b"<":
        return f"the FHIR server answered {status} with an HTML page"
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return f"the FHIR server answered {status}"
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return f"the FHIR server answered {status}: {error_diagnostics(body) or 'no diagnostics'}"
    return f"the FHIR server answered {status}"
