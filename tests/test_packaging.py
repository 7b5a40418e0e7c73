"""The installable package: the wheel carries the clinical content and schemas, and the installed command works
without a source checkout (what the Dockerfile relies on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import FIXTURES, ROOT


def test_the_wheel_carries_content_and_runs_without_the_checkout(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path / "wheel"),
            str(ROOT),
        ],
        timeout=300,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("sortace_cds-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "cds/content/terminology.toml",
        "cds/content/criteria.toml",
        "cds/content/cards.toml",
        "cds/content/eligible.md",
        "cds/content/orders/medicationrequest.json",
        "cds/schemas/hook-request.schema.json",
        "cds/server.py",
    ):
        assert required in names, required
    assert not any(name.startswith(("tests/", "fhir_fixtures/")) for name in names)  # no test code in production
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "sortace-cds = cds.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    env = {k: v for k, v in env.items() if not k.startswith("SORTACE_")}

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
        )

    result = python("-c", "import cds, sys; print(cds.__file__)")
    assert result.stdout.startswith(str(unpacked))  # the wheel's code, not the checkout's
    evaluated = python("-m", "cds", "evaluate", str(FIXTURES / "eligible-icd10-loinc.json"))
    assert json.loads(evaluated.stdout)["cards"][0]["summary"].startswith("Consider sorafenib")


def test_the_production_profile_refuses_to_start_unconfigured(tmp_path: Path) -> None:
    # What the Docker image does without a config file: a clear message, not a half-configured service.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SORTACE_PROFILE": "production",
        "SORTACE_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cds", "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "public_base_url: production requires https" in result.stderr
