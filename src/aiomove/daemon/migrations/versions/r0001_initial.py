"""Initial job store: jobs, receipts, slots.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aiomove.daemon.schema import ACTIVE_SQL, BigId, UTCDateTime

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ACTIVE = sa.text(ACTIVE_SQL)


def upgrade() -> None:
    zero = sa.text("0")
    op.create_table(
        "jobs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("keys", sa.Text, nullable=False),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default=zero),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=zero),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("not_before", UTCDateTime, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires", UTCDateTime, nullable=True),
        sa.Column("expected", sa.Integer, nullable=True),
        sa.Column("received", sa.Integer, nullable=False, server_default=zero),
        sa.Column("failed", sa.Integer, nullable=False, server_default=zero),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default=zero),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_kind", sa.String(16), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_queue", "jobs", ["state", sa.text("priority DESC"), "id"])
    op.create_index("ix_jobs_lease", "jobs", ["state", "lease_expires"])
    op.create_index(
        "ux_jobs_active",
        "jobs",
        ["dedup_key"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index("ix_jobs_state", "jobs", ["state", "id"])
    op.create_table(
        "receipts",
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "sop_instance_uid", name="pk_receipts"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_receipts_job_id_jobs", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "slots",
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("slot_index", sa.Integer, nullable=False),
        sa.Column("token", sa.String(64), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("lease_expires", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("peer", "slot_index", name="pk_slots"),
        sa.UniqueConstraint("token", name="uq_slots_token"),
    )


def downgrade() -> None:
    op.drop_table("slots")
    op.drop_table("receipts")
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_index("ux_jobs_active", table_name="jobs")
    op.drop_index("ix_jobs_lease", table_name="jobs")
    op.drop_index("ix_jobs_queue", table_name="jobs")
    op.drop_table("jobs")
