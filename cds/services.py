"""The CDS services this deployment offers, declared once in ``cards/service.toml``.

Discovery publishes the public part (id, hook, title, description, prefetch templates); the prefetch policy
(which keys are required, which resource type each key holds) stays private and drives prefetch completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cds.datafiles import ContentError, read_toml
from cds.validation import schema_issues

TOKEN = re.compile(r"\{\{([^{}]*)\}\}")


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch template and what the service does when its data is missing."""

    name: str
    template: str
    resource_type: str
    required: bool
    newest_first: bool = False


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[PrefetchKey, ...]

    def discovery_entry(self) -> dict[str, Any]:
        """The entry published at ``GET /cds-services``."""
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": {key.name: key.template for key in self.prefetch},
        }


def load_services() -> tuple[ServiceDefinition, ...]:
    """Read ``cards/service.toml`` and check its discovery entry against the discovery schema.

    :raise ContentError: the file is malformed or its entry breaks a discovery rule.
    """
    raw = read_toml("service.toml")
    try:
        keys = tuple(
            PrefetchKey(
                name=name,
                template=spec["template"],
                resource_type=spec["resource_type"],
                required=bool(spec.get("required", False)),
                newest_first=bool(spec.get("newest_first", False)),
            )
            for name, spec in raw.get("prefetch", {}).items()
        )
        service = ServiceDefinition(
            id=raw["id"], hook=raw["hook"], title=raw["title"], description=raw["description"], prefetch=keys
        )
    except KeyError as exc:
        raise ContentError(f"cards/service.toml: missing {exc.args[0]}") from exc
    issues = schema_issues("discovery-response", {"services": [service.discovery_entry()]})
    if issues:
        raise ContentError(f"cards/service.toml: {issues[0].diagnostics}")
    return (service,)
