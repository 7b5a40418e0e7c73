"""The development profile's own CDS client key pair, so a first run goes through real JWT validation.

``sortace-cds serve`` (development profile) creates an ES384 key pair in ``<data_dir>/dev-keys/`` and trusts it
as issuer ``urn:sortace-cds:dev`` for FHIR servers on loopback; ``sortace-cds fire`` signs its calls with it.
The private key never leaves the data directory and is never trusted in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds.files import create_once
from cds.settings import DEV_ISSUER, IssuerSettings

KEY_DIR = "dev-keys"


def ensure_dev_keys(data_dir: Path) -> dict[str, Any]:
    """Create the private key if it does not exist; return the public JWK Set derived from it."""
    private_path = data_dir / KEY_DIR / "private.pem"
    if not private_path.exists():
        private_path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP384R1())
        encoding, private_format = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
        create_once(private_path, key.private_bytes(encoding, private_format, serialization.NoEncryption()))
    # Derived from the file, not from the key made above: another worker may have created the file first.
    stored = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(stored, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{private_path}: not an EC private key; delete it to create a new development key")
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(stored.public_key()))
    public.update({"kid": _thumbprint(public), "alg": "ES384", "use": "sig"})
    return {"keys": [public]}


def dev_issuer(data_dir: Path, fhir_servers: tuple[str, ...]) -> IssuerSettings:
    """The registry entry for the development key pair, trusted for ``fhir_servers``."""
    return IssuerSettings(
        iss=DEV_ISSUER, jwks=ensure_dev_keys(data_dir), algorithms=("ES384",), fhir_servers=fhir_servers
    )


def sign_dev(data_dir: Path, audience: str) -> str:
    """A JWT for a call to ``audience`` as the CDS Hooks Sandbox makes one (ES384, 5 minutes), signed with the
    development key pair (created if needed)."""
    kid = ensure_dev_keys(data_dir)["keys"][0]["kid"]
    pem = (data_dir / KEY_DIR / "private.pem").read_bytes()
    now = int(time.time())
    payload = {"iss": DEV_ISSUER, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return jwt.encode(payload, pem, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an EC public key: a stable, unique kid."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
