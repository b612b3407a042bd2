"""The job store's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

The Alembic revisions in `migrations/versions/` create exactly these tables; a test compares the
migrated database with this metadata, so a change here needs a new revision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

#: SQLite only makes `INTEGER PRIMARY KEY` an auto-incrementing rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: A job is active (deduplicated, see JobSpec.dedup_key) in these states.
ACTIVE_SQL = "state IN ('queued', 'running', 'paused')"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    PostgreSQL stores `timestamptz`; SQLite stores naive UTC text with a fixed format, so that
    comparing two stored values as text compares them as times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Deterministic constraint names, so migrations can refer to them on both back ends.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("peer", String(64), nullable=False),
    Column("level", String(16), nullable=False),
    Column("keys", Text, nullable=False),  # JSON object, sorted keys
    Column("dedup_key", Text, nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    Column("not_before", UTCDateTime, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires", UTCDateTime, nullable=True),
    Column("expected", Integer, nullable=True),
    Column("received", Integer, nullable=False, server_default=text("0")),
    Column("failed", Integer, nullable=False, server_default=text("0")),
    Column("bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True),
    Column("error_kind", String(16), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The claim order (state = 'queued', highest priority first, then oldest) and crash recovery
# (state = 'running' with an old lease). `state` leads, rather than partial indexes, so that
# both databases use them with a bound parameter for the state (generic prepared plans too).
Index("ix_jobs_queue", jobs.c.state, jobs.c.priority.desc(), jobs.c.id)
Index("ix_jobs_lease", jobs.c.state, jobs.c.lease_expires)
# Deduplication: one active job per dedup key, enforced by the database.
Index(
    "ux_jobs_active",
    jobs.c.dedup_key,
    unique=True,
    sqlite_where=text(ACTIVE_SQL),
    postgresql_where=text(ACTIVE_SQL),
)
Index("ix_jobs_state", jobs.c.state, jobs.c.id)

receipts = Table(
    "receipts",
    metadata,
    Column("job_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("sop_instance_uid", String(64), primary_key=True),  # PS3.5 9.1: at most 64 chars
    Column("sop_class_uid", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

# The per-peer association limit: one row per (peer, slot_index < limit); a slot is held while
# its token is set and its lease has not expired.
slots = Table(
    "slots",
    metadata,
    Column("peer", String(64), primary_key=True),
    Column("slot_index", Integer, primary_key=True),
    Column("token", String(64), nullable=True, unique=True),
    Column("owner", String(128), nullable=True),
    Column("lease_expires", UTCDateTime, nullable=True),
)
