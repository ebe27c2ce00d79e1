"""Tables of the session store (SQLAlchemy 2 declarative).

Portable types only (JSON, not JSONB): one Alembic revision serves SQLite and PostgreSQL.
Any change here needs a new revision in `alembic/versions/`; a test compares this metadata
with the migrated schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can name what they alter or drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SESSION_ID_MAX = 160
"""Stored session keys: a 12-character owner namespace, a dot, and the client's id (<= 128)."""

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGSERIAL.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every dialect.

    SQLite stores no offset, so values are normalised to UTC before storing and marked UTC
    when read back; comparisons then stay correct because every stored value is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the session store; use UTC-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("source IN ('chat', 'voice')", name="source"),
        Index(None, "last_activity"),
        Index(None, "owner", "last_activity"),
    )

    id: Mapped[str] = mapped_column(String(SESSION_ID_MAX), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity: Mapped[datetime] = mapped_column(UTCDateTime())
    message_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # SQL NULL (not JSON null) when nothing is pending, so "IS NOT NULL" counts pending actions.
    pending_action: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Also the index for "last N messages of a session".
        UniqueConstraint("session_id", "seq"),
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_MAX), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditRow(Base):
    """No foreign key to sessions: the audit trail outlives a deleted session."""

    __tablename__ = "audit"
    __table_args__ = (
        CheckConstraint("outcome IN ('ok', 'degraded', 'error', 'declined')", name="outcome"),
        Index(None, "at"),
        Index(None, "tool", "at"),
        Index(None, "session_id", "at"),
        Index(None, "actor", "at"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(SESSION_ID_MAX))
    source: Mapped[str | None] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    planner: Mapped[str | None] = mapped_column(String(64))


class ClaimedTaskRow(Base):
    """Tasks assigned to droplet 12 that some instance has taken: never run one twice."""

    __tablename__ = "claimed_tasks"

    task_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(32))
    claimed_by: Mapped[str | None] = mapped_column(String(255))


class ClaimedProposalRow(Base):
    """Confirmed proposals whose write has been started: a proposal runs at most once
    (app/store/claims.py)."""

    __tablename__ = "claimed_proposals"
    # Deleting a session cascades here; without an index PostgreSQL scans the table.
    __table_args__ = (Index(None, "session_id"),)

    proposal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A deleted session takes its claims with it: its proposals are gone too.
    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_MAX), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    tool: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WatchRow(Base):
    """A watch ("tell me when droplet 16 is back"): fires once, then waits out its expiry."""

    __tablename__ = "watches"
    __table_args__ = (
        CheckConstraint("source IN ('chat', 'voice')", name="source"),
        CheckConstraint("event IN ('up', 'down', 'change', 'done', 'failed')", name="event"),
        # "What am I watching?" and the per-owner limit.
        Index(None, "owner"),
        # Each check round: every unfired, unexpired watch; the expiry sweep.
        Index(None, "fired_at", "expires_at"),
        # Deleting a session cascades here; without an index PostgreSQL scans the table.
        Index(None, "session_key"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(255))
    # A deleted session takes its watches with it: nobody is left to tell.
    session_key: Mapped[str] = mapped_column(
        String(SESSION_ID_MAX), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(16))
    droplet_id: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The status last observed, or for "any task fails" a JSON list of the known failed ids.
    last_seen: Mapped[str | None] = mapped_column(Text)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    route_back: Mapped[str | None] = mapped_column(String(128))
