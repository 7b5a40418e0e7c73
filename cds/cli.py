"""The ``sortace-cds`` command line (also ``python -m cds``).

    sortace-cds serve      run the CDS Hooks service under gunicorn
    sortace-cds evaluate   answer one request or one patient Bundle from a file, without a server
    sortace-cds fire       play the EHR against a running service and a FHIR server
    sortace-cds fixtures   upload the fixture patients to a FHIR server, or print a request for one
    sortace-cds token      print a development JWT for an endpoint (for curl)
    sortace-cds feedback   report on oncologists' decisions

Subcommands import what they need when they run, so that a quick command does not pay for loading the whole
service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests

from cds.logs import configure_logging
from cds.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging("WARNING")  # serve reconfigures; other commands keep stdout for their output
    try:
        return int(args.run(args))
    except SettingsError as exc:
        print(f"sortace-cds: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ValueError) as exc:
        print(f"sortace-cds: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except requests.RequestException as exc:
        print(f"sortace-cds: HTTP request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (``sortace-cds fixtures list | head``): stop quietly, as Unix tools do, and keep
        # the interpreter from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sortace-cds", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the CDS Hooks service under gunicorn")
    _config_arg(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 2)")
    serve.add_argument(
        "--force-insecure-bind",
        action="store_true",
        help="allow a non-loopback bind with auth off or the public Sandbox key trusted",
    )
    serve.set_defaults(run=_serve)

    evaluate = sub.add_parser("evaluate", help="print the CDS Hooks response for a request or patient Bundle file")
    _config_arg(evaluate)
    evaluate.add_argument("file", type=Path, help="a patient-view request JSON, or a FHIR Bundle of one patient")
    evaluate.add_argument(
        "--today", type=date.fromisoformat, help="evaluation date (default: the Bundle's timestamp, else today)"
    )
    evaluate.add_argument("--user", default="Practitioner/evaluate", help="userId for a Bundle (default %(default)s)")
    evaluate.set_defaults(run=_evaluate)

    fire = sub.add_parser("fire", help="play the EHR: call the service for a patient on a FHIR server")
    _config_arg(fire)
    fire.add_argument("--fhir-server", required=True, help="FHIR base URL, e.g. http://127.0.0.1:8081/fhir")
    fire.add_argument("--patient", required=True, help="the patient's id on that server")
    fire.add_argument("--service", help="service URL (default: public_base_url/cds-services/<id>)")
    fire.add_argument("--prefetch", choices=("full", "partial", "none"), default="full")
    fire.add_argument("--user", default="Practitioner/example", help="context.userId (default %(default)s)")
    fire.add_argument("--access-token", help="send this as fhirAuthorization (bearer token for the FHIR server)")
    fire.add_argument("--no-sign", action="store_true", help="send no JWT (for a service with auth off)")
    fire.add_argument("--json", action="store_true", help="print the raw JSON response")
    fire.set_defaults(run=_fire)

    fixtures = sub.add_parser("fixtures", help="fixture patients: list, upload, request")
    fixtures_sub = fixtures.add_subparsers(required=True, metavar="ACTION")
    listing = fixtures_sub.add_parser("list", help="list the fixture patients and their expected outcomes")
    upload = fixtures_sub.add_parser(
        "upload", help="load the fixture patients into a FHIR server (dates shifted to today)"
    )
    upload.add_argument("--fhir-server", required=True)
    upload.add_argument("--only", nargs="*", help="fixture names (default: all)")
    upload.add_argument("--access-token", help="bearer token for the FHIR server")
    request = fixtures_sub.add_parser("request", help="print a patient-view request for a fixture (dates shifted)")
    request.add_argument("name", help="fixture name, e.g. eligible-icd10-loinc")
    request.add_argument("--user", default="Practitioner/example")
    for action in (listing, upload, request):
        action.add_argument("--dir", type=Path, default=Path("fhir_fixtures"), help="fixture directory")
    listing.set_defaults(run=_fixtures_list)
    upload.set_defaults(run=_fixtures_upload)
    request.set_defaults(run=_fixtures_request)

    token = sub.add_parser("token", help="print a development JWT for one endpoint (for curl; development profile)")
    _config_arg(token)
    token.add_argument(
        "endpoint",
        nargs="?",
        default="/cds-services",
        help="path (or full URL) of the endpoint the token is for (default %(default)s)",
    )
    token.set_defaults(run=_token)

    feedback = sub.add_parser("feedback", help="feedback: report")
    feedback_sub = feedback.add_subparsers(required=True, metavar="ACTION")
    report = feedback_sub.add_parser("report", help="cards shown, accepted, overridden, why, and how fast")
    _config_arg(report)
    report.add_argument("--since", type=date.fromisoformat, help="only cards shown on or after this date")
    report.add_argument("--format", choices=("text", "json", "csv"), default="text")
    report.set_defaults(run=_report)
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: $SORTACE_CONFIG, else built-in defaults)")


def _settings(args: argparse.Namespace, **server: Any) -> Settings:
    overrides = {"server": {k: v for k, v in server.items() if v is not None}}
    return load_settings(getattr(args, "config", None), overrides=overrides if overrides["server"] else None)


def _serve(args: argparse.Namespace) -> int:
    from cds.server import serve

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        workers=args.workers,
        force_insecure_bind=True if args.force_insecure_bind else None,
    )
    serve(settings)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds.evaluate import evaluate_file

    status, body, note = evaluate_file(_settings(args), args.file, args.today, args.user)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    print(note, file=sys.stderr)
    return 0 if status == 200 else 1


def _fire(args: argparse.Namespace) -> int:
    from cds import fire
    from cds.fixtures import hook_request
    from cds.services import load_services

    settings = _settings(args)
    service = load_services()[0]
    url = args.service or f"{settings.public_base_url}/cds-services/{service.id}"
    base = args.fhir_server.rstrip("/")
    prefetch = fire.build_prefetch(service, base, args.patient, args.user, args.prefetch, args.access_token)
    request = hook_request(args.patient, args.user, prefetch, fhir_server=base, access_token=args.access_token)
    response = fire.call(url, request, None if args.no_sign else settings.data_path)
    body = response.json() if response.content else {}
    if args.json or response.status_code != 200:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        if response.status_code != 200:
            print(f"sortace-cds: the service answered HTTP {response.status_code}", file=sys.stderr)
            return 1
        return 0
    print(fire.render_cards(body))
    return 0


def _fixtures_list(args: argparse.Namespace) -> int:
    from cds.fixtures import load_manifest

    manifest = load_manifest(args.dir)
    for item in manifest["fixtures"]:
        print(f"{item['file'][:-5]:32} {item['patient']:22} {item['outcome']:19} {item['description']}")
    return 0


def _fixtures_upload(args: argparse.Namespace) -> int:
    from cds.fixtures import current, load_bundle, load_manifest, transaction

    manifest = load_manifest(args.dir)
    names = args.only or [item["file"] for item in manifest["fixtures"]]
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if args.access_token:
        headers["Authorization"] = f"Bearer {args.access_token}"
    today = datetime.now(UTC).date()
    for name in names:
        bundle = current(load_bundle(args.dir, name), today)
        response = requests.post(
            args.fhir_server.rstrip("/"), data=json.dumps(transaction(bundle)), headers=headers, timeout=60
        )
        if response.status_code >= 300:
            print(f"{name}: HTTP {response.status_code}: {response.text[:300]}", file=sys.stderr)
            return 1
        print(f"uploaded {name} ({len(bundle['entry'])} resources)")
    # HAPI caches search results for about a minute: make sure the next searches see the new data.
    requests.get(
        f"{args.fhir_server.rstrip('/')}/Patient?_count=1", headers={**headers, "Cache-Control": "no-cache"}, timeout=30
    )
    return 0


def _fixtures_request(args: argparse.Namespace) -> int:
    from cds.fixtures import current, hook_request, load_bundle, patient_id, prefetch_from
    from cds.services import load_services

    bundle = current(load_bundle(args.dir, args.name), datetime.now(UTC).date())
    service = load_services()[0]
    request = hook_request(patient_id(bundle), args.user, prefetch_from(bundle, service))
    print(json.dumps(request, indent=2, ensure_ascii=False))
    return 0


def _token(args: argparse.Namespace) -> int:
    from cds.devkeys import sign_dev

    settings = _settings(args)
    if not settings.auth.trust_dev_issuer:
        raise ValueError("the development issuer is not trusted by this configuration (auth.trust_dev_issuer)")
    audience = args.endpoint if args.endpoint.startswith("http") else settings.public_base_url + args.endpoint
    print(sign_dev(settings.data_path, audience))
    return 0


def _report(args: argparse.Namespace) -> int:
    from cds.report import build_report, render
    from cds.store.sql import SqlStore

    settings = _settings(args)
    since = datetime(args.since.year, args.since.month, args.since.day, tzinfo=UTC) if args.since else None
    store = SqlStore.open(settings.feedback.database_url)
    try:
        report = build_report(store.ledger_rows(since), store.feedback_rows(), since)
    finally:
        store.close()
    print(render(report, args.format))
    return 0
