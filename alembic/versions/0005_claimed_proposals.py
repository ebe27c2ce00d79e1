"""Claimed proposals: a confirmed write runs at most once, even when its turn could not be
recorded (the store failed after the write, or the process was killed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types at this revision.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "claimed_proposals",
        sa.Column("proposal_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(160), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_claimed_proposals_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_claimed_proposals")),
    )
    op.create_index(
        op.f("ix_claimed_proposals_session_id"), "claimed_proposals", ["session_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_claimed_proposals_session_id"), table_name="claimed_proposals")
    op.drop_table("claimed_proposals")
