"""Shared fixtures: settings and app per test, signing keys per run, real FHIR and PostgreSQL servers per session."""

from __future__ import annotations

import copy
import logging
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from werkzeug.test import TestResponse

from cds.app import create_app
from cds.logs import JsonFormatter
from cds.settings import Settings, load_settings
from tests.support import (
    EHR_ISSUER,
    EPIC_ISSUER,
    LOG_FILES,
    PUBLIC_BASE,
    SERVICE_ID,
    FhirTestServer,
    PostgresServer,
    SigningKey,
    leaked,
)

SettingsFactory = Callable[..., Settings]


CAPTURED_LOGS: list[str] = []


class _CaptureAll(logging.Handler):
    """Keeps every log line of the run, formatted as the service writes it, for the credential scan."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        CAPTURED_LOGS.append(self.format(record))


_CAPTURE = _CaptureAll()


@pytest.fixture(autouse=True)
def _capture_logs() -> None:
    root = logging.getLogger()
    if _CAPTURE not in root.handlers:
        root.addHandler(_CAPTURE)
    root.setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any credential a test used appears in any log line (issue #5, checklist 67, 135)."""
    texts = CAPTURED_LOGS + [path.read_text(errors="replace") for path in LOG_FILES if path.exists()]
    found = leaked(texts)
    if found:
        sys.stderr.write(f"\nCREDENTIAL LEAK: {len(found)} token(s) used by the tests appear in the logs\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fhir-server", default=None, help="base URL of a live HAPI FHIR server for the live_hapi tests")


@pytest.fixture(scope="session")
def es384() -> SigningKey:
    return SigningKey("ES384")


@pytest.fixture(scope="session")
def rs384() -> SigningKey:
    return SigningKey("RS384")


def _merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


@pytest.fixture
def settings_factory(tmp_path: Path, es384: SigningKey, rs384: SigningKey) -> SettingsFactory:
    """Settings like a deployment's: two trusted EHRs (ES384 and an Epic-style RS384 client), a temp store."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "public_base_url": PUBLIC_BASE,
            "data_dir": str(tmp_path / "data"),
            "auth": {
                "issuers": [
                    {"iss": EHR_ISSUER, "jwks": es384.jwks(), "fhir_servers": ["http://127.0.0.1:*"]},
                    {
                        "iss": EPIC_ISSUER,
                        "jwks": rs384.jwks(),
                        "algorithms": ["RS384"],
                        "audiences": ["urn:epic:fixed-audience"],
                        "fhir_servers": ["http://127.0.0.1:*"],
                    },
                ]
            },
            "fhir": {"deadline_seconds": 5.0, "connect_timeout_seconds": 1.0},
        }
        return load_settings(environ={}, overrides=_merge(copy.deepcopy(base), overrides))

    return make


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(settings_factory: SettingsFactory) -> Iterator[AppFactory]:
    """Build apps from settings overrides; their pools are released after the test."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(settings_factory(**overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["sortace.runtime"].close()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class CdsCaller:
    """Calls the service the way a CDS client does: JSON bodies, a fresh JWT for the exact URL of each call."""

    def __init__(self, client: FlaskClient, key: SigningKey, issuer: str = EHR_ISSUER) -> None:
        self.client, self.key, self.issuer = client, key, issuer

    def token(self, path: str, **claims: Any) -> str:
        return self.key.token(PUBLIC_BASE + path, self.issuer, **claims)

    def headers(self, path: str, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token(path)}"}

    def discover(self, **kwargs: Any) -> TestResponse:
        return self.client.get("/cds-services", headers=self.headers("/cds-services"), **kwargs)

    def call(self, body: Any, service: str = SERVICE_ID, token: str | None = None) -> TestResponse:
        path = f"/cds-services/{service}"
        return self.client.post(path, json=body, headers=self.headers(path, token))

    def feedback(self, body: Any, service: str = SERVICE_ID, token: str | None = None) -> TestResponse:
        path = f"/cds-services/{service}/feedback"
        return self.client.post(path, json=body, headers=self.headers(path, token))

    def post_raw(self, path: str, data: bytes | str, content_type: str | None = "application/json") -> TestResponse:
        headers = self.headers(path)
        if content_type:
            headers["Content-Type"] = content_type
        return self.client.post(path, data=data, headers=headers)


@pytest.fixture
def cds(client: FlaskClient, es384: SigningKey) -> CdsCaller:
    return CdsCaller(client, es384)


@pytest.fixture(scope="session")
def fhir_server_process() -> Iterator[FhirTestServer]:
    server = FhirTestServer.start()
    yield server
    server.stop()


@pytest.fixture
def fhir(fhir_server_process: FhirTestServer) -> FhirTestServer:
    """The real FHIR test server, emptied and with default behaviour."""
    fhir_server_process.reset()
    return fhir_server_process


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: its directories are private to root, and PostgreSQL runs as its own user.
    workdir = Path(tempfile.mkdtemp(prefix="sortace-pg-"))
    try:
        server = PostgresServer.start(workdir)
        yield server
        server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
