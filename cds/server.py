"""Run the service under gunicorn: threaded workers for I/O-bound hook calls, JSON logs, graceful shutdown.

The master checks everything once before forking (settings, clinical content, store migration, development
keys), so a misconfiguration stops ``serve`` with one clear message instead of crashing every worker. Each
worker then builds its own application (its own database pool, HTTP session and thread pool).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from typing import Any

from gunicorn.app.base import BaseApplication

from cds.app import create_app
from cds.logs import configure_logging
from cds.settings import SANDBOX_ISSUER, ServerSettings, Settings, SettingsError

log = logging.getLogger("cds.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse unsafe exposure: auth off or the public Sandbox key trusted on a non-loopback address.

    :raise SettingsError: unless ``server.force_insecure_bind`` is set.
    """
    if is_loopback(settings.server.host) or settings.server.force_insecure_bind:
        return
    if settings.auth.mode == "off":
        raise SettingsError(
            f"auth is off: refusing to listen on {settings.server.host} (only loopback); "
            "set server.force_insecure_bind = true to override"
        )
    if any(_is_sandbox(issuer.iss, issuer.jwks_url) for issuer in settings.auth.issuers):
        raise SettingsError(
            "the CDS Hooks Sandbox's private key is public: refusing to trust it on "
            f"{settings.server.host}; set server.force_insecure_bind = true to override"
        )


def _is_sandbox(iss: str, jwks_url: str | None) -> bool:
    host = "sandbox.cds-hooks.org"
    return iss.rstrip("/") == SANDBOX_ISSUER or host in iss or host in (jwks_url or "")


def check_tls(server: ServerSettings) -> None:
    """Load the TLS files once, so that a wrong path or key stops start-up with one clear message.

    :raise SettingsError: when a certificate, key or client CA cannot be loaded.
    """
    if server.tls_certificate is None:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(server.tls_certificate, server.tls_private_key)
        if server.tls_client_ca:
            context.load_verify_locations(server.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"server TLS files cannot be used: {exc}") from None


def preflight(settings: Settings) -> None:
    """Everything that can fail at start-up, done once in the master: the checks of a public bind, then the
    application built exactly as each worker will build it (content, store migration, secrets, development keys),
    and released before the workers are forked."""
    check_bind(settings)
    check_tls(settings.server)
    create_app(settings).extensions["sortace.runtime"].close()


class ServiceApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for name, value in gunicorn_options(self.settings).items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return create_app(self.settings)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    host = settings.server.host
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return {
        "bind": [f"{bind_host}:{settings.server.port}"],
        "workers": settings.server.workers,
        "worker_class": "gthread",
        "threads": settings.server.threads,
        "timeout": settings.server.timeout_seconds,
        "graceful_timeout": settings.server.graceful_timeout_seconds,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "logconfig_dict": _log_config(settings.log_level),
        "control_socket_disable": True,
        "proc_name": "sortace-cds",
        **_tls_options(settings.server),
    }


def _tls_options(server: ServerSettings) -> dict[str, Any]:
    if server.tls_certificate is None:
        return {}
    options: dict[str, Any] = {"certfile": server.tls_certificate, "keyfile": server.tls_private_key}
    if server.tls_client_ca:
        options |= {"ca_certs": server.tls_client_ca, "cert_reqs": ssl.CERT_REQUIRED}
    return options


def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; in-flight requests finish within the graceful timeout."""
    configure_logging(settings.log_level)
    preflight(settings)
    log.info(
        "starting",
        extra={
            "bind": f"{settings.server.host}:{settings.server.port}",
            "profile": settings.profile,
            "public_base_url": settings.public_base_url,
            "auth": settings.auth.mode,
            "workers": settings.server.workers,
            "threads": settings.server.threads,
        },
    )
    ServiceApplication(settings).run()


def _log_config(level: str) -> dict[str, Any]:
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "cds.logs.JsonFormatter"},
            "access": {"()": "cds.logs.AccessJsonFormatter"},
        },
        "handlers": {
            "json": {**handler, "formatter": "json"},
            "access": {**handler, "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "root": {"level": level.upper(), "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
