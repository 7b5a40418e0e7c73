"""The development profile's own CDS client key pair, so a first run goes through real JWT validation.

``sortace-cds serve`` (development profile) creates an ES384 key pair in ``<data_dir>/dev-keys/`` and trusts it
as issuer ``urn:sortace-cds:dev`` for FHIR servers on loopback; ``sortace-cds fire`` signs its calls with it.
The private key never leaves the data directory and is never trusted in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds.settings import DEV_ISSUER, LOOPBACK_FHIR_SERVERS, IssuerSettings

KEY_DIR = "dev-keys"


def ensure_dev_keys(data_dir: Path) -> dict[str, Any]:
    """Create the key pair if it does not exist; return the public JWK Set."""
    directory = data_dir / KEY_DIR
    private_path, jwks_path = directory / "private.pem", directory / "jwks.json"
    if private_path.exists() and jwks_path.exists():
        data: dict[str, Any] = json.loads(jwks_path.read_text(encoding="utf-8"))
        return data
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": _thumbprint(public), "alg": "ES384", "use": "sig"})
    jwks = {"keys": [public]}
    # Write the private key readable by the owner only, and atomically (another worker may be starting too).
    tmp = private_path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    jwks_tmp = jwks_path.with_suffix(f".{os.getpid()}.tmp")
    jwks_tmp.write_text(json.dumps(jwks, indent=2), encoding="utf-8")
    if private_path.exists() and jwks_path.exists():  # lost a race: keep the pair that is there
        tmp.unlink()
        jwks_tmp.unlink()
        return ensure_dev_keys(data_dir)
    os.replace(jwks_tmp, jwks_path)
    os.replace(tmp, private_path)
    return jwks


def dev_issuer(data_dir: Path, fhir_servers: tuple[str, ...] = LOOPBACK_FHIR_SERVERS) -> IssuerSettings:
    """The registry entry for the development key pair."""
    return IssuerSettings(
        iss=DEV_ISSUER, jwks=ensure_dev_keys(data_dir), algorithms=("ES384",), fhir_servers=fhir_servers
    )


def sign(private_pem: bytes, kid: str, issuer: str, audience: str, lifetime: int = 300, **claims: Any) -> str:
    """A CDS client JWT as the CDS Hooks Sandbox makes it: ES384, ``aud`` = the URL called, 5 minutes."""
    now = int(time.time())
    payload = {"iss": issuer, "aud": audience, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, private_pem, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def sign_dev(data_dir: Path, audience: str) -> str:
    """Sign a call to ``audience`` with the development key pair (creating it if needed)."""
    jwks = ensure_dev_keys(data_dir)
    pem = (data_dir / KEY_DIR / "private.pem").read_bytes()
    return sign(pem, jwks["keys"][0]["kid"], DEV_ISSUER, audience)


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an EC public key: a stable, unique kid."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
