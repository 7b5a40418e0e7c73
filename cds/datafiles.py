"""Read the clinical content shipped in ``cards/`` (installed as the ``cds.content`` package).

Content is data a clinician can review without reading Python: TOML with provenance comments, Markdown
templates and FHIR JSON order templates. Everything is read once at start-up, so a broken file stops the
service from starting instead of surfacing in front of a clinician.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any


class ContentError(ValueError):
    """A content file is missing or malformed; the message names the file."""


def read_text(name: str) -> str:
    """The text of ``cards/{name}``."""
    try:
        return resources.files("cds.content").joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ContentError(f"content file cards/{name} is missing") from exc


def read_toml(name: str) -> dict[str, Any]:
    """``cards/{name}`` parsed as TOML."""
    return parse_toml(read_text(name), f"cards/{name}")


def read_json(name: str) -> dict[str, Any]:
    """``cards/{name}`` parsed as JSON."""
    try:
        data = json.loads(read_text(name))
    except json.JSONDecodeError as exc:
        raise ContentError(f"cards/{name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContentError(f"cards/{name} must hold a JSON object")
    return data


def read_local_toml(path: str) -> dict[str, Any]:
    """A deployment's own TOML file (terminology extension, criteria override)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_toml(text, path)


def parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(f"{where} is not valid TOML: {exc}") from exc
