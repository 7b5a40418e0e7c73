"""The store: card ledger, feedback, suppression look-ups and JWT replay, on SQLite or PostgreSQL.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` transactions:
several gunicorn workers write safely, and a commit survives the process being killed. A deployment with
several instances sets ``feedback.database_url`` to PostgreSQL; nothing else changes. Every write is committed
before the method returns, so an HTTP 200 is only sent for data that is on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from cds.store.schema import card_ledger, feedback, jti_seen, migrate


@dataclass(frozen=True)
class LedgerEntry:
    card_uuid: str
    service_id: str
    hook_instance: str
    issuer: str
    kind: str
    fact_digest: str
    patient_key: str
    suggestion_uuids: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class FeedbackItem:
    """One validated feedback item; ``idempotency_key`` identifies it across retries."""

    card: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...]
    override_code: str | None
    override_system: str | None
    override_display: str | None
    override_comment: str | None
    idempotency_key: str


@dataclass(frozen=True)
class FeedbackReceipt:
    stored: int
    duplicates: int
    unknown_cards: tuple[str, ...]


def engine_for(database_url: str) -> Engine:
    """An engine for the URL; ``postgresql://`` uses psycopg 3, SQLite gets WAL and immediate transactions."""
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN IMMEDIATE itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class SqlStore:
    """Card ledger, feedback and replay cache in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._last_purge = 0.0

    @classmethod
    def open(cls, database_url: str) -> SqlStore:
        """Connect and migrate the schema (no manual step)."""
        engine = engine_for(database_url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def record_cards(self, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "card_uuid": e.card_uuid,
                "service_id": e.service_id,
                "hook_instance": e.hook_instance.replace("\x00", "")[:200],  # PostgreSQL text cannot hold NUL
                "issuer": e.issuer,
                "kind": e.kind,
                "fact_digest": e.fact_digest,
                "patient_key": e.patient_key,
                "suggestion_uuids": json.dumps(list(e.suggestion_uuids)),
                "created_at": e.created_at,
            }
            for e in entries
        ]
        with self.engine.begin() as conn:
            conn.execute(card_ledger.insert(), rows)

    def record_feedback(self, service_id: str, issuer: str, items: Sequence[FeedbackItem]) -> FeedbackReceipt:
        """Store a batch in one transaction: all items or none. Items already stored are skipped."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            cards = {item.card for item in items}
            known = set(conn.scalars(select(card_ledger.c.card_uuid).where(card_ledger.c.card_uuid.in_(cards))))
            stored = 0
            for item in items:
                statement = (
                    self._insert(feedback)
                    .values(
                        idempotency_key=item.idempotency_key,
                        service_id=service_id,
                        card_uuid=item.card,
                        outcome=item.outcome,
                        outcome_timestamp=item.outcome_timestamp,
                        accepted_suggestions=json.dumps(list(item.accepted_suggestions)),
                        override_code=item.override_code,
                        override_system=item.override_system,
                        override_display=item.override_display,
                        override_comment=item.override_comment,
                        known_card=item.card in known,
                        issuer=issuer,
                        received_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(feedback.c.id)
                )
                stored += len(conn.execute(statement).fetchall())  # a row comes back only for a new item
        unknown = tuple(sorted(cards - known))
        return FeedbackReceipt(stored=stored, duplicates=len(items) - stored, unknown_cards=unknown)

    def overridden_digests(self, service_id: str, patient_key: str, kind: str, since: datetime) -> set[str]:
        """Fact digests of this patient's cards of ``kind`` overridden since ``since``."""
        query = (
            select(card_ledger.c.fact_digest)
            .join(feedback, feedback.c.card_uuid == card_ledger.c.card_uuid)
            .where(
                card_ledger.c.patient_key == patient_key,
                card_ledger.c.service_id == service_id,
                card_ledger.c.kind == kind,
                feedback.c.outcome == "overridden",
                feedback.c.outcome_timestamp >= since,
            )
        )
        with self.engine.connect() as conn:
            return set(conn.scalars(query))

    def claim_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        try:
            with self.engine.begin() as conn:
                if now - self._last_purge > 60:
                    conn.execute(delete(jti_seen).where(jti_seen.c.expires_at < now))
                    self._last_purge = now
                existing = conn.scalar(
                    select(jti_seen.c.expires_at).where(jti_seen.c.issuer == issuer, jti_seen.c.jti == jti)
                )
                if existing is not None and existing >= now:
                    return False
                if existing is not None:
                    conn.execute(delete(jti_seen).where(jti_seen.c.issuer == issuer, jti_seen.c.jti == jti))
                conn.execute(jti_seen.insert().values(issuer=issuer, jti=jti, expires_at=expires_at))
        except IntegrityError:
            return False  # another worker claimed it in the same instant
        return True

    def ledger_rows(self, since: datetime | None) -> list[dict[str, Any]]:
        query = select(card_ledger)
        if since is not None:
            query = query.where(card_ledger.c.created_at >= since)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def feedback_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(feedback).order_by(feedback.c.id))]


def patient_key(secret: bytes, issuer: str, patient_id: str) -> str:
    """A keyed hash standing for the patient in the ledger (no raw id stored)."""
    return hmac.new(secret, f"{issuer}|{patient_id}".encode(), hashlib.sha256).hexdigest()
