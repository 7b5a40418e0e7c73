"""Load the clinical knowledge (value sets and trial criteria) once, from ``cards/`` and the deployment's files."""

from __future__ import annotations

from dataclasses import dataclass

from cds.clinical.criteria import Criteria, build_criteria
from cds.clinical.terminology import Terminology, build_terminology
from cds.datafiles import ContentError, read_local_toml, read_toml
from cds.settings import ClinicalSettings


@dataclass(frozen=True)
class Knowledge:
    terminology: Terminology
    criteria: Criteria


def load_knowledge(settings: ClinicalSettings) -> Knowledge:
    """Read ``cards/terminology.toml`` (plus extensions) and the criteria file.

    :raise ContentError: a file is missing or malformed; the service must not start with broken knowledge.
    """
    extensions = [read_local_toml(path) for path in settings.terminology_extensions]
    criteria_data = read_local_toml(settings.criteria_file) if settings.criteria_file else read_toml("criteria.toml")
    try:
        return Knowledge(build_terminology(read_toml("terminology.toml"), extensions), build_criteria(criteria_data))
    except (KeyError, ValueError) as exc:
        raise ContentError(f"clinical knowledge: {exc}") from exc
