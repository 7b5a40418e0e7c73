"""URL rules shared by the FHIR client and the request-forgery guard: origins and the FHIR-server allowlist."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)``, the default port filled in.

    :raise ValueError: the URL does not parse (a bad port or IPv6 literal).
    """
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def server_allowed(url: str, allowed: tuple[str, ...], allow_query: bool = False) -> bool:
    """``url`` is on the list: same scheme, host and port (``*`` = any port) and under the listed path.

    A URL that does not parse, carries credentials or a fragment, has ``.``/``..`` path segments (raw or
    percent-encoded, which HTTP clients normalise away) or, unless ``allow_query`` (search pages), a query is
    never allowed.
    """
    try:
        parts = urlsplit(url)
        port = origin(url)[2]
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    if (parts.query and not allow_query) or parts.fragment:
        return False
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return False
    for entry in allowed:
        any_port = entry.endswith(":*") or ":*/" in entry
        try:
            listed = urlsplit(entry.replace(":*", ""))
            listed_port = origin(entry.replace(":*", ""))[2]
        except ValueError:
            continue  # a malformed allowlist entry allows nothing
        if (parts.scheme, parts.hostname.lower()) != (listed.scheme, (listed.hostname or "").lower()):
            continue
        if not any_port and port != listed_port:
            continue
        prefix = listed.path.rstrip("/")
        if parts.path.rstrip("/") == prefix or parts.path.startswith(prefix + "/"):
            return True
    return False


def same_server(url: str, base: str) -> bool:
    """``url`` is on the FHIR server ``base`` (same origin, under its path): the only place the token may go."""
    return server_allowed(url, (base,), allow_query=True)
