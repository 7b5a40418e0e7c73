"""Mutual TLS in addition to JWT: ``sortace-cds serve`` with its own certificate and a client CA accepts only
callers that present a certificate from that CA, and still requires their signed JWT (checklist 136)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cds.server import check_tls
from cds.settings import SettingsError, load_settings
from tests.support import LiveService, SigningKey, free_port, signed, write_config

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def issue(name: str, issuer: Issued | None = None, *, usage: x509.ObjectIdentifier | None = None) -> Issued:
    """A certificate for ``name`` signed by ``issuer`` (a self-signed CA when ``issuer`` is None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def write_pem(directory: Path, stem: str, issued: Issued) -> tuple[str, str]:
    cert, key = issued
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """A CA for the server, a CA for trusted clients, a client of that CA and a client of an unknown CA."""
    server_ca, client_ca, stranger_ca = issue("server CA"), issue("EHR client CA"), issue("someone else's CA")
    return {
        "server_ca": write_pem(tmp_path, "server-ca", server_ca),
        "server": write_pem(tmp_path, "server", issue("127.0.0.1", server_ca, usage=ExtendedKeyUsageOID.SERVER_AUTH)),
        "client_ca": write_pem(tmp_path, "client-ca", client_ca),
        "client": write_pem(tmp_path, "client", issue("ehr", client_ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)),
        "stranger": write_pem(tmp_path, "stranger", issue("ehr", stranger_ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)),
    }


@pytest.fixture
def mtls_service(tmp_path: Path, es384: SigningKey, pki: dict[str, tuple[str, str]]) -> Iterator[LiveService]:
    port = free_port()
    config = write_config(tmp_path, port, es384)
    (server_cert, server_key), (client_ca, _) = pki["server"], pki["client_ca"]
    tls = f'tls_certificate = "{server_cert}"\ntls_private_key = "{server_key}"\ntls_client_ca = "{client_ca}"\n'
    text = config.read_text().replace(f'"http://127.0.0.1:{port}"', f'"https://127.0.0.1:{port}"')
    config.write_text(text.replace("[server]\n", "[server]\n" + tls))
    caller = {"verify": pki["server_ca"][0], "cert": pki["client"]}
    service = LiveService(config, tmp_path / "data", port, tmp_path / "serve.log", tls=caller)
    service.start()
    yield service
    service.stop()


def test_a_caller_needs_both_a_client_certificate_and_a_jwt(
    mtls_service: LiveService, es384: SigningKey, pki: dict[str, tuple[str, str]]
) -> None:
    base, path = mtls_service.base, "/cds-services"
    assert base.startswith("https://")
    trusted = {"verify": pki["server_ca"][0], "cert": pki["client"]}
    ok = requests.get(base + path, headers=signed(es384, base, path), timeout=10, **trusted)
    assert ok.status_code == 200 and ok.json()["services"]  # checklist 136: certificate and JWT
    no_jwt = requests.get(base + path, timeout=10, **trusted)
    assert no_jwt.status_code == 401  # checklist 136: the certificate adds to the JWT, it does not replace it
    for client_cert in (None, pki["stranger"]):  # checklist 136: no certificate, or one from an unknown CA
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(
                base + path, headers=signed(es384, base, path), timeout=10, verify=pki["server_ca"][0], cert=client_cert
            )
    # The service keeps serving trusted callers after refusing the others.
    again = requests.get(base + path, headers=signed(es384, base, path), timeout=10, **trusted)
    assert again.status_code == 200


def test_tls_settings_are_checked_before_serving(tmp_path: Path, pki: dict[str, tuple[str, str]]) -> None:
    # checklist 136: a half-configured mutual TLS never starts as plain http.
    client_ca = pki["client_ca"][0]
    with pytest.raises(SettingsError, match="server.tls_certificate: required"):
        load_settings(environ={"SORTACE_SERVER__TLS_CLIENT_CA": client_ca})
    server_cert, server_key = pki["server"]
    settings = load_settings(
        environ={"SORTACE_SERVER__TLS_CERTIFICATE": server_cert, "SORTACE_SERVER__TLS_PRIVATE_KEY": server_key}
    )
    assert settings.public_base_url.startswith("https://")  # the JWT audience follows the scheme served
    check_tls(settings.server)
    missing = tmp_path / "missing.pem"
    for wrong in ({"tls_client_ca": str(missing)}, {"tls_private_key": pki["client"][1]}):
        with pytest.raises(SettingsError, match="server TLS files cannot be used"):
            check_tls(dataclasses.replace(settings.server, **wrong))
