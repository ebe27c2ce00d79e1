"""Initial session store: sessions, messages, audit, claimed_tasks.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types at this revision (the models may change later; this may not).
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_activity", TIMESTAMP, nullable=False),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_action", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.CheckConstraint("source IN ('chat', 'voice')", name=op.f("ck_sessions_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_last_activity"), "sessions", ["last_activity"])
    op.create_index(op.f("ix_sessions_owner_last_activity"), "sessions", ["owner", "last_activity"])

    op.create_table(
        "messages",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name=op.f("ck_messages_role")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_messages_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("session_id", "seq", name=op.f("uq_messages_session_id_seq")),
    )

    op.create_table(
        "audit",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.Column("planner", sa.String(64), nullable=True),
        sa.CheckConstraint("outcome IN ('ok', 'error', 'declined')", name=op.f("ck_audit_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_at"), "audit", ["at"])
    op.create_index(op.f("ix_audit_tool_at"), "audit", ["tool", "at"])
    op.create_index(op.f("ix_audit_session_id_at"), "audit", ["session_id", "at"])
    op.create_index(op.f("ix_audit_actor_at"), "audit", ["actor", "at"])

    op.create_table(
        "claimed_tasks",
        sa.Column("task_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_claimed_tasks")),
    )


def downgrade() -> None:
    op.drop_table("claimed_tasks")
    op.drop_index(op.f("ix_audit_actor_at"), table_name="audit")
    op.drop_index(op.f("ix_audit_session_id_at"), table_name="audit")
    op.drop_index(op.f("ix_audit_tool_at"), table_name="audit")
    op.drop_index(op.f("ix_audit_at"), table_name="audit")
    op.drop_table("audit")
    op.drop_table("messages")
    op.drop_index(op.f("ix_sessions_owner_last_activity"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_last_activity"), table_name="sessions")
    op.drop_table("sessions")
