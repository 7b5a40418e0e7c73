"""The application factory: the only place where the service's parts are built and wired together."""

from __future__ import annotations

import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from flask import Flask, Response

from cds import api
from cds.auth import Authenticator
from cds.cards import load_card_content
from cds.cors import init_cors
from cds.devkeys import dev_issuer
from cds.errors import register_error_handlers
from cds.fhirclient import new_session, refuse_cookies
from cds.hook import HookRuntime
from cds.knowledge import load_knowledge
from cds.record import Preselector
from cds.replay import MemoryReplayCache, ReplayCache
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
    app.extensions["sortace.services"] = {s.id: s for s in load_services()}
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
    session = requests.Session()
    session.trust_env = False
    refuse_cookies(session)
    return Authenticator(settings.auth, issuers, replay, session)


def _local_secret(path: Path) -> bytes:
    """A random key kept in the data directory: created once, owner-readable, safe when workers start together."""
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic; fails if another worker won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text(encoding="utf-8").strip().encode()
