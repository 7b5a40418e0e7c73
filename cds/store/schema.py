"""Tables of the store and their migrations, for SQLite and PostgreSQL alike (SQLAlchemy Core).

Migrations run at start-up, in order, each once (``schema_version``), under a lock so that several workers or
instances starting together do not race. To change the schema, append a step to ``MIGRATIONS``; never edit a
step that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
)
from sqlalchemy.schema import CreateIndex, CreateTable

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
)

# Every card the service returned, so that feedback can be tied to what was shown and why.
card_ledger = Table(
    "card_ledger",
    metadata,
    Column("card_uuid", String(36), primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("hook_instance", String(200), nullable=False),
    Column("issuer", String(500), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("fact_digest", String(64), nullable=False),
    # HMAC of issuer and patient id: links cards of one patient without storing the id.
    Column("patient_key", String(64), nullable=False),
    Column("suggestion_uuids", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_card_ledger_patient", "patient_key", "service_id", "kind"),
    Index("ix_card_ledger_created", "created_at"),
)

# Every feedback item, once (idempotency_key), in the order received.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("service_id", String(100), nullable=False),
    Column("card_uuid", String(200), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("accepted_suggestions", Text, nullable=False),
    Column("override_code", String(200)),
    Column("override_system", String(500)),
    Column("override_display", String(500)),
    Column("override_comment", Text),
    Column("known_card", Boolean, nullable=False),
    Column("issuer", String(500), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_feedback_card", "card_uuid"),
)

# JWT ids already used, until their token expires (replay protection shared by all workers).
jti_seen = Table(
    "jti_seen",
    metadata,
    Column("issuer", String(500), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", Float, nullable=False),
)


def _create_v1(conn: Connection) -> None:
    for table in (card_ledger, feedback, jti_seen):
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            conn.execute(CreateIndex(index, if_not_exists=True))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _create_v1),
]


def migrate(engine: Engine) -> int:
    """Bring the database to the latest schema; return its version."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(727368)"))  # serialises concurrent start-ups
        else:
            conn.execute(text("SELECT 1"))
        conn.execute(CreateTable(schema_version, if_not_exists=True))
        current = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())).first()
        version = current[0] if current else 0
        for step, apply in MIGRATIONS:
            if step > version:
                apply(conn)
                conn.execute(schema_version.insert().values(version=step))
                version = step
    return version
