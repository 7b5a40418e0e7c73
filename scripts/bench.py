"""Benchmarks (not tests): print how long the assessment and a hook call take.

    .venv/bin/python scripts/bench.py [--quick]

1. Assessment per record size: a fixture patient padded with realistic noise (labs, vital signs, unrelated
   problems and drugs) to 10, 100, 1,000 and 10,000 resources; the time from raw FHIR JSON to an assessment
   (pre-selection, parsing of what matters, the decision). Compared with parsing every resource first.
2. A whole hook call through the Flask app: with full prefetch, and with no prefetch against the local FHIR test
   server (tests/fhir_server), where the server answers each request after a fixed delay: the fetches run
   concurrently, so the call costs about one round trip, not the sum of six.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds.clinical.assessment import assess  # noqa: E402 - after the path set-up
from cds.knowledge import load_knowledge  # noqa: E402
from cds.record import MODELS, GatheredData, Preselector, to_patient_data  # noqa: E402
from cds.settings import ClinicalSettings  # noqa: E402
from tests.support import fixture_bundle  # noqa: E402

FIXTURE = "eligible-icd10-loinc"


def padded_record(size: int) -> dict[str, list[dict[str, Any]]]:
    """The fixture patient's resources plus noise, ``size`` resources in all (at least the fixture's)."""
    bundle = fixture_bundle(FIXTURE)
    resources = [entry["resource"] for entry in bundle["entry"]]
    noise_templates = [r for r in resources if r["id"].split("-", 3)[-1].startswith(("bili", "afp", "sbp"))]
    noise_templates += [r for r in resources if r["resourceType"] in ("MedicationRequest", "MedicationStatement")]
    noise_templates += [r for r in resources if r["id"].endswith(("-htn", "-dm"))]
    out = list(resources)
    n = 0
    while len(out) < size:
        clone = copy.deepcopy(noise_templates[n % len(noise_templates)])
        clone["id"] = f"noise-{n}"
        out.append(clone)
        n += 1
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in out[: max(size, len(resources))]:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


def timed(run: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` runs (after one warm-up run)."""
    run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_assessment(quick: bool) -> None:
    knowledge = load_knowledge(ClinicalSettings())
    preselector = Preselector(knowledge.terminology)
    today = time.gmtime()
    from datetime import date

    day = date(today.tm_year, today.tm_mon, today.tm_mday)
    print("Assessment: raw FHIR JSON -> assessment (pre-select, parse what matters, decide)")
    print(f"{'resources':>10} {'per record':>12} {'per resource':>13} {'cold text cache':>16} {'parse everything':>17}")
    for size in (10, 100, 1_000, 10_000):
        record = padded_record(size)
        count = sum(len(v) for v in record.values())

        def selective(record: dict[str, list[dict[str, Any]]] = record) -> object:
            data = to_patient_data(GatheredData(record), preselector)
            return assess(data, day, knowledge.terminology, knowledge.criteria)

        def parse_all(record: dict[str, list[dict[str, Any]]] = record) -> object:
            return [MODELS[r["resourceType"]].model_validate(r) for rs in record.values() for r in rs]

        def cold(record: dict[str, list[dict[str, Any]]] = record) -> object:
            fresh = Preselector(knowledge.terminology)  # a new process: no lab or vital-sign name seen yet
            started = time.perf_counter()
            to_patient_data(GatheredData(record), fresh)
            return time.perf_counter() - started

        repeat = 3 if size >= 10_000 or quick else 20
        seconds = timed(selective, repeat)
        first = statistics.median(float(cold()) for _ in range(3))  # type: ignore[arg-type]
        naive = timed(parse_all, 1 if size >= 10_000 else repeat)
        print(
            f"{count:>10} {seconds * 1000:>9.2f} ms {seconds * 1e6 / count:>10.1f} µs {first * 1000:>13.2f} ms "
            f"{naive * 1000:>14.2f} ms"
        )


def bench_hook(quick: bool) -> None:
    from cds.app import create_app
    from cds.settings import load_settings
    from tests.conftest import CdsCaller
    from tests.support import EHR_ISSUER, FhirTestServer, SigningKey, fixture_request

    key = SigningKey("ES384")
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            environ={},
            overrides={
                "public_base_url": "https://cds.example.org",
                "data_dir": data_dir,
                "auth": {
                    "replay_cache": "memory",
                    "issuers": [{"iss": EHR_ISSUER, "jwks": key.jwks(), "fhir_servers": ["http://127.0.0.1:*"]}],
                },
                "fhir": {"deadline_seconds": 5.0, "connect_timeout_seconds": 1.0},
            },
        )
        app = create_app(settings)
        caller = CdsCaller(app.test_client(), key)
        repeat = 10 if quick else 40
        requests = [fixture_request(FIXTURE) for _ in range(repeat * 5 + 1)]
        samples = []
        for request in requests:
            started = time.perf_counter()
            caller.call(request)
            samples.append(time.perf_counter() - started)
        samples = sorted(samples[1:])  # the first call warms up
        full = statistics.median(samples)
        p95 = samples[int(len(samples) * 0.95) - 1]
        print("\nHook call through the app (JWT check, prefetch handling, assessment, card, response checks)")
        print(
            f"  full prefetch:                        {full * 1000:7.1f} ms "
            f"(p95 {p95 * 1000:.1f} ms over {len(samples)} calls)"
        )
        try:
            server = FhirTestServer.start()
        except BaseException as exc:  # the benchmark still prints what it can
            print(f"  no prefetch: skipped, the FHIR test server cannot start ({exc})")
            return
        try:
            server.reset()
            server.load(fixture_bundle(FIXTURE))
            for delay in (0, 50, 200):
                server.configure(delayMs=delay)
                none = timed(
                    lambda: caller.call(fixture_request(FIXTURE, prefetch="none", fhir_server=server.base)),
                    max(3, repeat // 4),
                )
                print(
                    f"  no prefetch, server delay {delay:3d} ms/req: {none * 1000:7.1f} ms "
                    f"(six searches; their sum would be at least {6 * delay} ms)"
                )
        finally:
            server.stop()
            app.extensions["sortace.runtime"].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    bench_assessment(args.quick)
    bench_hook(args.quick)


if __name__ == "__main__":
    main()
