"""Watches: "tell me when droplet 16 is back", stored so they survive a restart.

A watch lives in its owner's session (deleting the session deletes its watches), fires once
(`fired_at`, set by a single conditional UPDATE so several instances never both notify) and is
deleted once expired.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types at this revision.
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "watches",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("session_key", sa.String(160), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("droplet_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen", sa.Text(), nullable=True),
        sa.Column("fired_at", TIMESTAMP, nullable=True),
        sa.Column("route_back", sa.String(128), nullable=True),
        sa.CheckConstraint("source IN ('chat', 'voice')", name=op.f("ck_watches_source")),
        sa.CheckConstraint(
            "event IN ('up', 'down', 'change', 'done', 'failed')", name=op.f("ck_watches_event")
        ),
        sa.ForeignKeyConstraint(
            ["session_key"],
            ["sessions.id"],
            name=op.f("fk_watches_session_key_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watches")),
    )
    op.create_index(op.f("ix_watches_owner"), "watches", ["owner"])
    op.create_index(op.f("ix_watches_fired_at_expires_at"), "watches", ["fired_at", "expires_at"])
    op.create_index(op.f("ix_watches_session_key"), "watches", ["session_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_watches_session_key"), table_name="watches")
    op.drop_index(op.f("ix_watches_fired_at_expires_at"), table_name="watches")
    op.drop_index(op.f("ix_watches_owner"), table_name="watches")
    op.drop_table("watches")
