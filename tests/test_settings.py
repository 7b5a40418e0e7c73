"""One typed settings object from TOML and SORTACE_* variables; unsafe production setups refuse to load."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.settings import DEV_ISSUER, Secret, SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sortace.toml"
    path.write_text(text)
    return path


PRODUCTION = """
public_base_url = "https://cds.hospital.example.org/"
[feedback]
database_url = "postgresql://cds@db/cds"
patient_hash_key = "a-long-shared-secret"
[[auth.issuers]]
iss = "https://ehr.example.org"
jwks_url = "https://ehr.example.org/jwks.json"
algorithms = ["RS384"]
fhir_servers = ["https://ehr.example.org/fhir"]
"""


def test_no_config_is_the_development_profile() -> None:
    settings = load_settings(environ={})
    assert settings.profile == "development" and settings.server.host == "127.0.0.1"
    assert settings.public_base_url == "http://127.0.0.1:8080"
    assert settings.auth.mode == "jwt" and settings.auth.trust_dev_issuer
    assert settings.cors.allowed_origins == ("*",) and settings.data_dir == ".sortace"
    assert settings.feedback.database_url.startswith("sqlite:///") and settings.feedback.database_url.endswith(
        ".sortace/sortace.db"
    )


def test_a_config_file_defaults_to_production(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, PRODUCTION), environ={})
    assert settings.profile == "production" and not settings.auth.trust_dev_issuer
    assert settings.public_base_url == "https://cds.hospital.example.org"  # trailing slash removed
    assert settings.cors.allowed_origins == () and not settings.fhir.allow_plain_http_token
    (issuer,) = settings.auth.issuers
    assert issuer.algorithms == ("RS384",) and issuer.fhir_servers == ("https://ehr.example.org/fhir",)
    assert isinstance(settings.feedback.patient_hash_key, Secret)
    assert "a-long-shared-secret" not in repr(settings)  # secrets never show in logs or tracebacks


def test_environment_overrides_the_file_and_reads_toml_literals(tmp_path: Path) -> None:
    environ = {
        "SORTACE_CONFIG": str(write(tmp_path, PRODUCTION)),
        "SORTACE_SERVER__PORT": "9090",
        "SORTACE_CORS__ALLOWED_ORIGINS": '["https://sandbox.cds-hooks.org"]',
        "SORTACE_LOG_LEVEL": "DEBUG",
        "SORTACE_FHIR__DEADLINE_SECONDS": "1.5",
        "SORTACE_AUTH__LEEWAY_SECONDS": "10",
    }
    settings = load_settings(environ=environ)
    assert settings.server.port == 9090 and settings.log_level == "DEBUG" and settings.fhir.deadline_seconds == 1.5
    assert settings.cors.allowed_origins == ("https://sandbox.cds-hooks.org",) and settings.auth.leeway_seconds == 10
    assert load_settings(environ=environ, overrides={"server": {"port": 7000}}).server.port == 7000  # command line wins


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("unknown_key = 1", {}, "unknown setting unknown_key"),
        ("[server]\nport = 'eighty'", {}, "server.port: expected an integer"),
        ("[auth]\nmode = 'maybe'", {}, "auth.mode: must be one of"),
        ("", {"SORTACE_SERVER__FORCE_INSECURE_BIND": "yes"}, "expected true or false"),
        ("[[auth.issuers]]\niss = 'x'", {}, "give exactly one of jwks_url, jwks_file or jwks"),
        ("[[auth.issuers]]\niss = 'x'\njwks_url = 'https://x/j'\nalgorithms = ['HS256']", {}, "asymmetric only"),
        ("[[auth.issuers]]\niss = 'x'\njwks_url = 'https://x/j'\njwks_file = 'f'", {}, "exactly one"),
        ("public_base_url = 'cds.example.org'\nprofile = 'development'", {}, "absolute http(s) URL"),
        ("this is not toml", {}, "not valid TOML"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(write(tmp_path, text), environ=environ)


@pytest.mark.parametrize(
    ("addition", "message"),
    [
        ('public_base_url = "http://cds.example.org"', "production requires https"),  # checklist 1
        ('[cors]\nallowed_origins = ["*"]', "only in the development profile"),
        ("[auth]\ntrust_dev_issuer = true", "cannot be trusted in production"),
        ("[fhir]\nallow_plain_http_token = true", "never send bearer tokens over http"),
    ],
)
def test_unsafe_production_settings_refuse_to_load(tmp_path: Path, addition: str, message: str) -> None:
    base = (
        PRODUCTION.replace('public_base_url = "https://cds.hospital.example.org/"\n', "")
        if addition.startswith("public_base_url")
        else PRODUCTION
    )
    text = (addition + "\n" + base) if addition.startswith("public_base_url") else base + "\n" + addition
    with pytest.raises(SettingsError, match=message):
        load_settings(write(tmp_path, text), environ={})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_dev_issuer_name_is_stable() -> None:
    assert DEV_ISSUER == "urn:sortace-cds:dev"
