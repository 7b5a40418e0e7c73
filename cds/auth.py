"""Trust only signed calls: validate the CDS client's JWT on discovery, service and feedback calls.

Checks, in order (checklist G): a Bearer JWT is present [115]; header ``alg`` is asymmetric and allowed for the
issuer (never ``none`` or HMAC) [117, 118, 119]; ``typ``, when present, is ``JWT`` [121]; ``kid`` present [120];
``iss`` is a registered issuer [123]; a ``jku`` is used only when that exact URL is allowlisted for the issuer,
and an unlisted one is rejected before anything is fetched [124]; the key with that ``kid`` is found (the key
set is refreshed once per cooldown on an unknown ``kid``) [120, 134]; the signature verifies [132];
``iss``/``aud``/``exp``/``iat``/``jti`` are present [122]; ``aud`` is the exact public URL of the endpoint
called, as a string or in an array, or one of the issuer's configured aliases [125, 126]; ``exp``, ``nbf`` and
``iat`` hold within the leeway and the lifetime is within the maximum [127, 128, 129]; ``tenant`` is allowed
where the issuer lists tenants [131]; the ``jti`` was not seen before [130]. Extra claims are ignored [133].

Any failure is a 401 with the same minimal body [116]; the reason and issuer go to the log, never the token [135].
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from cds.errors import Unauthorized
from cds.jwks import KeySource, file_loader, inline_loader, url_loader
from cds.replay import ReplayCache
from cds.settings import AuthSettings, IssuerSettings

log = logging.getLogger("cds.auth")

ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
KEY_TYPES = {"ES": "EC", "RS": "RSA", "PS": "RSA"}
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """Who called: the issuer that signed the JWT (or ``anonymous`` with auth off) and what it may do."""

    issuer: str
    fhir_servers: tuple[str, ...]


class Authenticator:
    """Validates CDS client JWTs against the issuer registry."""

    def __init__(
        self,
        settings: AuthSettings,
        issuers: tuple[IssuerSettings, ...],
        replay: ReplayCache,
        session: requests.Session,
    ) -> None:
        self._settings = settings
        self._issuers = {issuer.iss: issuer for issuer in issuers}
        self._replay = replay
        self._sources: dict[str, KeySource] = {}
        for issuer in issuers:
            if issuer.jwks_url:
                self._sources[f"{issuer.iss} {issuer.jwks_url}"] = self._source(
                    url_loader(issuer.jwks_url, session), issuer.jwks_url
                )
            elif issuer.jwks_file:
                self._sources[issuer.iss] = self._source(file_loader(issuer.jwks_file), issuer.jwks_file)
            elif issuer.jwks:
                self._sources[issuer.iss] = self._source(inline_loader(issuer.jwks), f"{issuer.iss} (inline)")
            for url in issuer.jku_allowlist:
                self._sources.setdefault(f"{issuer.iss} {url}", self._source(url_loader(url, session), url))

    def _source(self, loader: Callable[[], dict[str, Any]], name: str) -> KeySource:
        return KeySource(loader, name, self._settings.jwks_cache_seconds, self._settings.jwks_refresh_cooldown_seconds)

    def authenticate(self, authorization: str | None, audience: str) -> Caller:
        """Validate the ``Authorization`` header of a call to the endpoint whose public URL is ``audience``.

        :raise Unauthorized: for every failure (401).
        """
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed JWT") from exc
        issuer_name = unverified.get("iss")
        issuer = self._issuers.get(issuer_name) if isinstance(issuer_name, str) else None
        if issuer is None:
            raise Unauthorized("unknown issuer", str(issuer_name)[:200] if issuer_name else None)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC or alg not in issuer.algorithms:
            raise Unauthorized(f"algorithm {str(alg)[:20]} not allowed", issuer.iss)
        if "typ" in header and str(header["typ"]).upper() != "JWT":
            raise Unauthorized("typ is not JWT", issuer.iss)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("no kid in the JWT header", issuer.iss)
        key = self._key(issuer, header.get("jku"), kid)
        if KEY_TYPES[alg[:2]] != key.key_type:
            raise Unauthorized(f"{alg} does not match the {key.key_type} key {kid[:80]}", issuer.iss)
        claims = self._verify(token, key, alg, issuer, audience)
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= 200 or "\x00" in jti:
            raise Unauthorized("jti is not a usable identifier", issuer.iss)
        # Remember the jti as long as the token is accepted at all, leeway included.
        if not self._replay.claim_jti(issuer.iss, jti, float(claims["exp"]) + self._settings.leeway_seconds):
            raise Unauthorized("replayed jti", issuer.iss)
        return Caller(issuer.iss, issuer.fhir_servers)

    def _key(self, issuer: IssuerSettings, jku: object, kid: str) -> jwt.PyJWK:
        if jku is not None:
            allowed = set(issuer.jku_allowlist) | ({issuer.jwks_url} if issuer.jwks_url else set())
            if not isinstance(jku, str) or jku not in allowed:
                raise Unauthorized("jku not on the issuer's allowlist", issuer.iss)
            source = self._sources[f"{issuer.iss} {jku}"]
        else:
            found = self._sources.get(issuer.iss) or self._sources.get(f"{issuer.iss} {issuer.jwks_url}")
            if found is None:
                raise Unauthorized("no key source for the issuer (jku required)", issuer.iss)
            source = found
        key = source.key(kid)
        if key is None:
            raise Unauthorized("unknown kid", issuer.iss)
        return key

    def _verify(self, token: str, key: jwt.PyJWK, alg: str, issuer: IssuerSettings, audience: str) -> dict[str, Any]:
        audiences = [audience, *issuer.audiences]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audiences,
                issuer=issuer.iss,
                leeway=self._settings.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("aud does not name this endpoint", issuer.iss) from exc
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("expired", issuer.iss) from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("not yet valid (nbf or iat in the future)", issuer.iss) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"missing claim {exc.claim}", issuer.iss) from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("bad signature", issuer.iss) from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise Unauthorized(f"invalid JWT ({type(exc).__name__})", issuer.iss) from exc
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > self._settings.max_token_lifetime_seconds:
            raise Unauthorized(f"lifetime {lifetime:.0f} s above the maximum", issuer.iss)
        if issuer.tenants and claims.get("tenant") not in issuer.tenants:
            raise Unauthorized("tenant not allowed", issuer.iss)
        return claims


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization is not a Bearer token")
    return token.strip()
