"""Public keys of trusted CDS clients: from an inline JWK Set, a file or a URL, cached with rotation.

A key set is re-read when its cache age passes, and on an unknown ``kid`` (key rotation) at most once per
cooldown, so a flood of tokens with made-up ``kid`` values cannot turn the service into a request amplifier.
Only URLs from the configuration are ever fetched: the issuer's ``jwks_url`` and its ``jku`` allowlist.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import requests

from cds.httpbody import BodyError, read_body

log = logging.getLogger("cds.jwks")

JWKS_FETCH_TIMEOUT = (2.0, 3.0)
JWKS_FETCH_SECONDS = 5.0
JWKS_MAX_BYTES = 1_000_000


class KeySource:
    """One JWK Set with its cache; ``key(kid)`` answers from the cache or refreshes it."""

    def __init__(
        self,
        load: Callable[[], dict[str, Any]],
        name: str,
        cache_seconds: float,
        cooldown_seconds: float,
    ) -> None:
        self._load = load
        self.name = name
        self._cache_seconds = cache_seconds
        self._cooldown = cooldown_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = time.monotonic()
            stale = self._loaded_at is None or now - self._loaded_at >= self._cache_seconds
            unknown = kid not in self._keys and (self._loaded_at is None or now - self._loaded_at >= self._cooldown)
            if stale or unknown:
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        self._loaded_at = now  # set first: a failing source is retried only after the cooldown
        try:
            data = self._load()
        except (OSError, ValueError, RecursionError, requests.RequestException) as exc:
            log.warning(
                "cannot load JWK Set; keeping cached keys", extra={"source": self.name, "error": type(exc).__name__}
            )
            return
        keys: dict[str, jwt.PyJWK] = {}
        listed = data.get("keys") if isinstance(data, dict) else None
        for item in listed if isinstance(listed, list) else []:
            if not isinstance(item, dict) or not item.get("kid") or "d" in item:
                continue  # no kid: unusable; a private key in a public set: refuse to use it
            try:
                keys[item["kid"]] = jwt.PyJWK(item)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                log.warning(
                    "skipping an unusable key in a JWK Set", extra={"source": self.name, "kid": str(item["kid"])[:80]}
                )
        self._keys = keys
        log.info("loaded JWK Set", extra={"source": self.name, "keys": len(keys)})


def inline_loader(jwks: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: jwks


def file_loader(path: str) -> Callable[[], dict[str, Any]]:
    def load() -> dict[str, Any]:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        return data

    return load


def url_loader(url: str, session: requests.Session) -> Callable[[], dict[str, Any]]:
    def load() -> dict[str, Any]:
        deadline = time.monotonic() + JWKS_FETCH_SECONDS
        with session.get(
            url, timeout=JWKS_FETCH_TIMEOUT, allow_redirects=False, stream=True, headers={"Accept": "application/json"}
        ) as response:
            response.raise_for_status()
            try:
                content = read_body(response, deadline, JWKS_MAX_BYTES)
            except BodyError as exc:
                raise ValueError(str(exc)) from exc
        data = json.loads(content)
        return data if isinstance(data, dict) else {}

    return load
