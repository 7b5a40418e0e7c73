"""The application factory: the only place where the service's parts are built and wired together."""

from __future__ import annotations

import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flask import Flask, Response

from cds import api
from cds.auth import Authenticator
from cds.cards import load_card_content
from cds.cors import init_cors
from cds.devkeys import dev_issuer
from cds.errors import register_error_handlers
from cds.fhirclient import new_session
from cds.files import create_once
from cds.hook import HookRuntime
from cds.knowledge import load_knowledge
from cds.record import Preselector
from cds.replay import MemoryReplayCache, ReplayCache
from cds.response import discovery_response
from cds.services import load_services
from cds.settings import Settings, load_settings
from cds.store.sql import SqlStore

log = logging.getLogger("cds.app")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask application from ``settings`` (default: read from the config file and environment).

    Reads and checks the clinical content, opens (and migrates) the store, and prepares the FHIR client pool and
    the JWT validator. Any problem stops start-up with a message naming the file or setting.
    """
    settings = settings or load_settings()
    settings.data_path.mkdir(parents=True, exist_ok=True)
    store = SqlStore.open(settings.feedback.database_url)
    key = (settings.feedback.patient_hash_key or "").encode() or _local_secret(settings.data_path / "ledger.key")
    runtime = build_runtime(settings, store, key)
    app = Flask("cds")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["sortace.runtime"] = runtime
    services = load_services()
    app.extensions["sortace.services"] = {s.id: s for s in services}
    # Discovery never changes while the process runs: build and check it once.
    discovery = discovery_response(s.discovery_entry() for s in services)
    app.extensions["sortace.discovery"] = json.dumps(discovery, sort_keys=True)
    app.extensions["sortace.authenticator"] = _authenticator(settings, store)
    register_error_handlers(app)
    init_cors(app, settings.cors)
    app.register_blueprint(api.blueprint)
    app.add_url_rule("/healthz", "health", lambda: Response('{"status": "ok"}', mimetype="application/json"))
    return app


def build_runtime(settings: Settings, store: SqlStore | None, patient_hash_key: bytes) -> HookRuntime:
    """What a hook call needs; shared by the HTTP service and ``sortace-cds evaluate`` (which has no store)."""
    knowledge = load_knowledge(settings.clinical)
    return HookRuntime(
        settings=settings,
        knowledge=knowledge,
        preselector=Preselector(knowledge.terminology),
        content=load_card_content(knowledge.terminology.own_tag, knowledge.criteria),
        session=new_session(settings.fhir),
        executor=ThreadPoolExecutor(max_workers=settings.fhir.pool_size, thread_name_prefix="fhir"),
        store=store,
        patient_hash_key=patient_hash_key,
    )


def _authenticator(settings: Settings, store: SqlStore) -> Authenticator | None:
    if settings.auth.mode == "off":
        log.warning("AUTHENTICATION IS OFF: any caller is trusted; use only for local experiments")
        return None
    issuers = settings.auth.issuers
    if settings.auth.trust_dev_issuer:
        issuers = (*issuers, dev_issuer(settings.data_path, settings.auth.dev_issuer_fhir_servers))
    replay: ReplayCache = store if settings.auth.replay_cache == "database" else MemoryReplayCache()
    # Key sets are fetched like FHIR pages: no cookies, no proxies or credentials from the environment.
    return Authenticator(settings.auth, issuers, replay, new_session(settings.fhir))


def _local_secret(path: Path) -> bytes:
    """A random key kept in the data directory, created by whichever worker starts first."""
    create_once(path, secrets.token_hex(32).encode())
    return path.read_text(encoding="utf-8").strip().encode()
