"""Audit outcomes may be `degraded`: answered, but not first-hand (peers down, catalogue used).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _outcomes(values: str) -> None:
    # The audit table has no foreign keys either way, so SQLite's batch rebuild is safe.
    with op.batch_alter_table("audit") as batch:
        batch.drop_constraint(op.f("ck_audit_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_outcome"), f"outcome IN ({values})")


def upgrade() -> None:
    _outcomes("'ok', 'degraded', 'error', 'declined'")


def downgrade() -> None:
    op.execute("UPDATE audit SET outcome = 'ok' WHERE outcome = 'degraded'")
    _outcomes("'ok', 'error', 'declined'")
