"""``sortace-cds evaluate``: the service's answer for a file, through the same code path as an HTTP call.

The file is a patient-view request, or a FHIR Bundle of one patient's record (turned into a request whose
prefetch holds the whole record). A fixture Bundle is evaluated as of its ``timestamp`` (the date its scenario
was written for) unless ``--today`` says otherwise. No server, store or FHIR access is involved: a request
missing required data gets the same 412 OperationOutcome as over HTTP.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from cds.app import build_runtime
from cds.auth import Caller
from cds.errors import CdsError, operation_outcome
from cds.fixtures import as_of, hook_request, patient_id, prefetch_from
from cds.hook import run_hook
from cds.services import load_services
from cds.settings import Settings


def evaluate_file(settings: Settings, path: Path, today: date | None, user_id: str) -> tuple[int, dict[str, Any], str]:
    """``(HTTP status, body, a one-line note for the terminal)`` for the request or Bundle in ``path``."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    service = load_services()[0]
    if isinstance(payload, dict) and payload.get("resourceType") == "Bundle":
        today = today or as_of(payload)
        payload = hook_request(patient_id(payload), user_id, prefetch_from(payload, service))
    runtime = build_runtime(settings, store=None, patient_hash_key=b"evaluate")
    try:
        result = run_hook(payload, service, Caller("evaluate", ()), runtime, today=today)
    except CdsError as exc:
        return exc.status_code, operation_outcome(exc.issues), f"HTTP {exc.status_code}: {exc.message}"
    finally:
        runtime.close()
    assessment = result.assessment
    codes = [f.code for f in (*assessment.exclusions, *assessment.missing, *assessment.cautions)]
    note = f"outcome: {assessment.outcome.value} as of {assessment.today}" + (f" ({', '.join(codes)})" if codes else "")
    if result.suppressed:
        note += f"; card suppressed: {result.suppressed}"
    return 200, result.response, note
