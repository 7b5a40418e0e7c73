"""Read FHIR Bundles and OperationOutcomes defensively: whatever a client or server sends, never a crash.

A prefetch value or a server page may be malformed (``entry`` a string, ``link`` a number, issues without a
severity); these readers skip what does not have the expected shape instead of raising.
"""

from __future__ import annotations

from typing import Any


def entries(bundle: Any) -> list[dict[str, Any]]:
    """The entries of a Bundle that are objects."""
    items = bundle.get("entry") if isinstance(bundle, dict) else None
    return [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []


def next_link(bundle: Any) -> str | None:
    """The URL of the Bundle's ``next`` link, if there is one."""
    links = bundle.get("link") if isinstance(bundle, dict) else None
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def error_diagnostics(outcome: Any) -> str | None:
    """The diagnostics of an OperationOutcome's error or fatal issues; None when it reports no error."""
    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    errors = (
        [i for i in issues if isinstance(i, dict) and i.get("severity") in ("error", "fatal")]
        if isinstance(issues, list)
        else []
    )
    if not errors:
        return None
    texts = []
    for issue in errors[:3]:
        details = issue.get("details")
        text = (
            issue.get("diagnostics")
            or (details.get("text") if isinstance(details, dict) else None)
            or issue.get("code")
        )
        texts.append(str(text)[:200] if text else "no diagnostics")
    return "; ".join(texts)


def prefetch_value(query: str, resources: list[dict[str, Any]]) -> Any:
    """What an EHR puts under a prefetch key for ``query``: a read's resource (None when there is none), or a
    search's ``searchset`` Bundle."""
    if "?" not in query:
        return resources[0] if resources else None
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
