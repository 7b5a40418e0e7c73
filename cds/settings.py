"""One typed settings object, read once from a TOML file and ``SORTACE_*`` environment variables.

Precedence: built-in defaults < TOML file (``--config`` or ``SORTACE_CONFIG``) < environment < command line.
Environment variables name a top-level key (``SORTACE_PUBLIC_BASE_URL``) or a key in a section with a double
underscore (``SORTACE_AUTH__MODE``, ``SORTACE_FEEDBACK__DATABASE_URL``). Values are read as TOML literals when
they parse as one (``true``, ``5``, ``["a", "b"]``), else as strings.

Without a config file the service runs in the *development* profile: bound to 127.0.0.1, data under
``./.sortace``, a generated development issuer trusted for loopback FHIR servers, CORS ``*``. With a config file
the default profile is *production*, where those conveniences are off and unsafe combinations refuse to load.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "SORTACE_"
DEV_ISSUER = "urn:sortace-cds:dev"
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
LOOPBACK_FHIR_SERVERS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


class Secret(str):
    """A string that never shows its value in ``repr`` (settings get logged and printed)."""

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True)
class IssuerSettings:
    """One trusted CDS client (an EHR or the CDS Hooks Sandbox), keyed by its JWT ``iss``."""

    iss: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    jwks: dict[str, Any] | None = None
    jku_allowlist: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("ES384", "RS384", "ES256", "RS256", "PS256", "PS384")
    audiences: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 8
    timeout_seconds: int = 30
    graceful_timeout_seconds: int = 20
    # Bind to a non-loopback address even with auth off or the public Sandbox key trusted.
    force_insecure_bind: bool = False
    # TLS served by gunicorn itself (PEM files), for deployments without a TLS proxy in front.
    tls_certificate: str | None = None
    tls_private_key: str | None = None
    # Mutual TLS (optional in CDS Hooks): callers must also present a certificate issued by this CA (PEM bundle).
    # It adds to JWT authentication; it does not replace it.
    tls_client_ca: str | None = None


@dataclass(frozen=True)
class AuthSettings:
    mode: Literal["jwt", "off"] = "jwt"
    issuers: tuple[IssuerSettings, ...] = ()
    # Trust a development key pair generated in the data directory (development profile only), for these servers.
    trust_dev_issuer: bool = False
    dev_issuer_fhir_servers: tuple[str, ...] = LOOPBACK_FHIR_SERVERS
    leeway_seconds: int = 30
    max_token_lifetime_seconds: int = 3600
    jwks_cache_seconds: int = 3600
    jwks_refresh_cooldown_seconds: int = 30
    replay_cache: Literal["database", "memory"] = "database"
    # FHIR servers a request may name when auth is off (no issuer to ask).
    unauthenticated_fhir_servers: tuple[str, ...] = LOOPBACK_FHIR_SERVERS


@dataclass(frozen=True)
class CorsSettings:
    allowed_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


@dataclass(frozen=True)
class FhirSettings:
    connect_timeout_seconds: float = 0.2
    # One deadline for all FHIR fetches of a hook call; the spec asks for ~500 ms end to end.
    deadline_seconds: float = 0.45
    max_pages: int = 10
    max_entries: int = 2000
    max_response_bytes: int = 20_000_000
    # Send the EHR's bearer token over plain http (never in production).
    allow_plain_http_token: bool = False
    # Fetch without any fhirAuthorization (open test servers such as the public HAPI sandbox).
    allow_unauthenticated: bool = False
    pool_size: int = 16


@dataclass(frozen=True)
class FeedbackSettings:
    database_url: str = ""
    suppression_days: int = 14
    # Key for the keyed hash that replaces patient ids in the card ledger; shared by all instances.
    patient_hash_key: Secret | None = None


@dataclass(frozen=True)
class ClinicalSettings:
    # Extra value-set files merged into cards/terminology.toml (local codes, more text patterns).
    terminology_extensions: tuple[str, ...] = ()
    # A replacement for cards/criteria.toml (trial thresholds).
    criteria_file: str | None = None


@dataclass(frozen=True)
class Settings:
    profile: Literal["development", "production"] = "development"
    public_base_url: str = ""
    data_dir: str = ".sortace"
    max_request_bytes: int = 5_000_000
    log_level: str = "INFO"
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    fhir: FhirSettings = field(default_factory=FhirSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    clinical: ClinicalSettings = field(default_factory=ClinicalSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def is_production(self) -> bool:
        return self.profile == "production"


# Defaults that differ by profile; a value set in the file or environment always wins.
_PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "development": {
        "auth": {"trust_dev_issuer": True},
        "cors": {"allowed_origins": ["*"]},
        "fhir": {"allow_plain_http_token": True, "allow_unauthenticated": True},
    },
    "production": {},
}


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: defaults, then the TOML file, then ``SORTACE_*`` variables, then ``overrides``.

    :raise SettingsError: unknown key, wrong type, unreadable file or an unsafe production combination.
    """
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    _merge(raw, _from_environ(environ))
    _merge(raw, dict(overrides or {}))
    profile = raw.get("profile", "production" if path else "development")
    merged: dict[str, Any] = {}
    _merge(merged, _PROFILE_DEFAULTS.get(profile, {}))
    _merge(merged, raw)
    merged["profile"] = profile
    settings = _build(Settings, merged, "")
    settings = _resolve_derived(settings)
    _check(settings)
    return settings


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(value)
    return out


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _build(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SettingsError(f"unknown setting {_join(where, unknown[0])}")
    kwargs = {name: _coerce(hints[name], data[name], _join(where, name)) for name in names if name in data}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:  # noqa: C901 - one branch per supported type
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is Literal:
        if value not in args:
            raise SettingsError(f"{where}: must be one of {', '.join(map(repr, args))}, not {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SettingsError(f"{where}: expected a list")
        return tuple(_coerce(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: expected true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{where}: expected an integer, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{where}: expected a number, not {value!r}")
        return float(value)
    if hint is Secret:
        if not isinstance(value, str) or not value:
            raise SettingsError(f"{where}: expected a non-empty string")
        return Secret(value)
    if hint is str:
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a string, not {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SettingsError(f"{where}: expected a table")
        return dict(value)
    raise SettingsError(f"{where}: unsupported setting type")  # pragma: no cover - a bug in this module


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _resolve_derived(settings: Settings) -> Settings:
    scheme = "https" if settings.server.tls_certificate else "http"
    base = settings.public_base_url or f"{scheme}://{_url_host(settings.server.host)}:{settings.server.port}"
    database_url = settings.feedback.database_url or f"sqlite:///{Path(settings.data_dir).resolve() / 'sortace.db'}"
    return dataclasses.replace(
        settings,
        public_base_url=base.rstrip("/"),
        feedback=dataclasses.replace(settings.feedback, database_url=database_url),
    )


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _check(settings: Settings) -> None:
    if not settings.public_base_url.startswith(("http://", "https://")):
        raise SettingsError("public_base_url: must be an absolute http(s) URL")
    server = settings.server
    if (server.tls_private_key or server.tls_client_ca) and not server.tls_certificate:
        raise SettingsError("server.tls_certificate: required with server.tls_private_key or server.tls_client_ca")
    for issuer in settings.auth.issuers:
        sources = [s for s in (issuer.jwks_url, issuer.jwks_file, issuer.jwks) if s]
        if len(sources) != 1 and not (issuer.jku_allowlist and not sources):
            raise SettingsError(f"auth.issuers[{issuer.iss}]: give exactly one of jwks_url, jwks_file or jwks")
        weak = [a for a in issuer.algorithms if a.upper() == "NONE" or a.upper().startswith("HS")]
        if weak:
            raise SettingsError(f"auth.issuers[{issuer.iss}]: algorithm {weak[0]} is not allowed (asymmetric only)")
    if settings.is_production:
        _check_production(settings)


def _check_production(settings: Settings) -> None:
    for issuer in settings.auth.issuers:
        for url in (issuer.jwks_url, *issuer.jku_allowlist):
            if url and not url.startswith("https://"):
                raise SettingsError(f"auth.issuers[{issuer.iss}]: key set URL {url} must be https in production")
    multi_instance_db = not settings.feedback.database_url.startswith("sqlite")
    if multi_instance_db and settings.feedback.patient_hash_key is None:
        raise SettingsError("feedback.patient_hash_key: set one shared secret for every instance using the database")
    if not settings.public_base_url.startswith("https://"):
        raise SettingsError("public_base_url: production requires https (CDS Hooks requires TLS)")
    if "*" in settings.cors.allowed_origins:
        raise SettingsError("cors.allowed_origins: '*' is allowed only in the development profile")
    if settings.auth.trust_dev_issuer:
        raise SettingsError("auth.trust_dev_issuer: the development issuer cannot be trusted in production")
    if settings.fhir.allow_plain_http_token:
        raise SettingsError("fhir.allow_plain_http_token: never send bearer tokens over http in production")
