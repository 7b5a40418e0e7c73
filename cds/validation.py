"""JSON Schema validation of what comes in and what goes out, with errors a client can act on.

The schemas are files in ``cds/schemas/`` written from the CDS Hooks 2.0.1 tables. Every error of a body is
reported at once, each as an OperationOutcome issue whose ``expression`` names the field
(``context.patientId``, ``feedback[1].outcomeTimestamp``).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from cds.errors import Issue

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_formats = FormatChecker()


@_formats.checks("rfc3339-date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if isinstance(value, str):
        parse_rfc3339(value)
    return True


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``1985-04-12T23:20:50.52Z``) into an aware datetime.

    :raise ValueError: the text is not RFC 3339 or names an impossible date.
    """
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    text = value.replace("z", "Z").replace("t", "T").replace(" ", "T")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        parsed.astimezone(UTC)  # "9999-12-31T23:59:59-23:59" is past the end of time in UTC
    except OverflowError as exc:
        raise ValueError(f"{value!r} is outside the representable range") from exc
    return parsed


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The validator for ``cds/schemas/{name}.schema.json`` (loaded once per process)."""
    text = resources.files("cds.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_formats)


def schema_issues(name: str, instance: Any) -> list[Issue]:
    """All violations of schema ``name`` by ``instance``, as OperationOutcome issues (empty when valid)."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [_issue(e) for e in errors]


def _issue(error: ValidationError) -> Issue:
    path = _expression(error.absolute_path)
    field_path = path
    if error.validator == "required":
        missing = _quoted(error.message)
        field_path = f"{path}.{missing}" if path else missing
        return Issue(f"{field_path}: required field is missing", code="required", expression=field_path)
    return Issue(f"{path or 'body'}: {_describe(error)}", code="invalid", expression=path or None)


def _describe(error: ValidationError) -> str:
    value = error.instance
    shown = json.dumps(value, ensure_ascii=False)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    match error.validator:
        case "type":
            return f"must be of type {error.validator_value}, not {shown}"
        case "enum":
            options = error.validator_value if isinstance(error.validator_value, list) else []
            return f"must be one of {', '.join(map(str, options))}, not {shown}"
        case "minItems":
            return "must contain at least one item"
        case "maxItems":
            return f"must contain at most {error.validator_value} items"
        case "maxLength":
            return f"must be at most {error.validator_value} characters"
        case "minLength":
            return "must not be empty"
        case "pattern":
            return f"{shown} does not have the required format"
        case "format":
            return f"{shown} is not a valid {error.validator_value}"
    return str(error.message)


def _expression(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _quoted(message: str) -> str:
    match = re.match(r"^'([^']+)'", message)
    return match.group(1) if match else message
