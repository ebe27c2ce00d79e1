"""Every session has an owner and lives in its owner's namespace.

Session keys become `<owner namespace>.<client id>` (up to 160 characters), so two identities
can never share, squat or probe each other's session ids. Sessions stored before this revision
move into their owner's namespace, with their messages and audit rows; ownerless ones go to the
development identity (`anonymous:developer`), except the mesh's own (`droplet-N:message`,
`task-N`), which only an admin can open from now on (`system:legacy`).

SQLite: the tables are rebuilt by hand, child first, because Alembic's batch mode would drop
`sessions` while `messages` still cascades from it (foreign keys are on).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
_KINDS = ("user", "droplet", "anonymous", "inbound", "system")
_MESH_OWNED = re.compile(r"^(task-\d+|droplet-[^:]+:message)$")


# Frozen copy of app.domain.identity.Identity.namespace at this revision.
def _namespace(identity: str) -> str:
    return base64.b32encode(hashlib.sha256(identity.encode()).digest()).decode()[:12].lower()


def _owner_of(session_id: str, owner: str | None) -> str:
    if owner is None:
        return "system:legacy" if _MESH_OWNED.match(session_id) else "anonymous:developer"
    if owner.split(":", 1)[0] in _KINDS and ":" in owner:
        return owner
    return f"droplet:{owner}" if owner.isdigit() else f"user:{owner}"


def _sessions_table(name: str, width: int) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(width), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_activity", TIMESTAMP, nullable=False),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_action", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.CheckConstraint("source IN ('chat', 'voice')", name="ck_sessions_source"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )


def _messages_table(name: str, parent: str, width: int) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(width), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
        sa.ForeignKeyConstraint(["session_id"], [f"{parent}.id"],
                                name="fk_messages_session_id_sessions", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("session_id", "seq", name="uq_messages_session_id_seq"),
    )


_SESSION_COLUMNS = ("id, source, owner, title, created_at, last_activity, message_count, "
                    "pending_action, context")
_MESSAGE_COLUMNS = "id, session_id, seq, role, text, trace_id, created_at, meta"


def _rebuild_sqlite(width: int, mapping: dict[str, tuple[str, str]]) -> None:
    """Rebuild sessions and messages at `width`, renaming ids by `mapping` (old: new, owner)."""
    conn = op.get_bind()
    op.create_table("_session_keys", sa.Column("old", sa.String(200), primary_key=True),
                    sa.Column("new", sa.String(200)), sa.Column("owner", sa.String(255)))
    keys = sa.table("_session_keys", sa.column("old"), sa.column("new"), sa.column("owner"))
    if mapping:
        conn.execute(sa.insert(keys), [{"old": o, "new": n, "owner": w}
                                       for o, (n, w) in mapping.items()])
    _sessions_table("sessions_next", width)
    _messages_table("messages_next", "sessions_next", width)
    conn.execute(sa.text(
        f"INSERT INTO sessions_next ({_SESSION_COLUMNS}) SELECT k.new, s.source, k.owner, "
        "s.title, s.created_at, s.last_activity, s.message_count, s.pending_action, s.context "
        "FROM sessions s JOIN _session_keys k ON k.old = s.id"))
    conn.execute(sa.text(
        f"INSERT INTO messages_next ({_MESSAGE_COLUMNS}) SELECT m.id, k.new, m.seq, m.role, "
        "m.text, m.trace_id, m.created_at, m.meta "
        "FROM messages m JOIN _session_keys k ON k.old = m.session_id"))
    conn.execute(sa.text("UPDATE audit SET session_id = (SELECT new FROM _session_keys "
                         "WHERE old = audit.session_id) WHERE session_id IN "
                         "(SELECT old FROM _session_keys)"))
    # Child first: dropping `messages` cascades nothing; `sessions` then has no children.
    op.drop_table("messages")
    op.drop_index("ix_sessions_owner_last_activity", table_name="sessions")
    op.drop_index("ix_sessions_last_activity", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("_session_keys")
    op.rename_table("sessions_next", "sessions")  # SQLite rewrites messages_next's reference
    op.rename_table("messages_next", "messages")
    op.create_index("ix_sessions_last_activity", "sessions", ["last_activity"])
    op.create_index("ix_sessions_owner_last_activity", "sessions", ["owner", "last_activity"])
    with op.batch_alter_table("audit") as batch:  # no foreign keys: a rebuild is safe
        batch.alter_column("session_id", type_=sa.String(width),
                           existing_type=sa.String(128 if width == 160 else 160),
                           existing_nullable=True)


def _rename_postgresql(mapping: dict[str, tuple[str, str]]) -> None:
    conn = op.get_bind()
    for old, (new, owner) in mapping.items():
        # Insert the moved session first: messages reference sessions(id) without ON UPDATE.
        conn.execute(sa.text(
            f"INSERT INTO sessions ({_SESSION_COLUMNS}) SELECT :new, source, :owner, title, "
            "created_at, last_activity, message_count, pending_action, context "
            "FROM sessions WHERE id = :old"), {"old": old, "new": new, "owner": owner})
        for table in ("messages", "audit"):
            conn.execute(sa.text(f"UPDATE {table} SET session_id = :new WHERE session_id = :old"),
                         {"old": old, "new": new})
        conn.execute(sa.text("DELETE FROM sessions WHERE id = :old"), {"old": old})


def _alter_postgresql(width: int, before: int) -> None:
    for table, column in (("messages", "session_id"), ("sessions", "id"), ("audit", "session_id")):
        op.alter_column(table, column, type_=sa.String(width), existing_type=sa.String(before))


def _current_ids() -> list[tuple[str, str | None]]:
    rows = op.get_bind().execute(sa.text("SELECT id, owner FROM sessions")).all()
    return [(str(r[0]), r[1]) for r in rows]


def upgrade() -> None:
    mapping = {}
    for old, owner in _current_ids():
        identity = _owner_of(old, owner)
        mapping[old] = (f"{_namespace(identity)}.{old}", identity)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(160, mapping)
    else:
        _alter_postgresql(160, 128)
        _rename_postgresql(mapping)


def downgrade() -> None:
    # Back to the client's ids; where two owners used the same id, or it no longer fits, the
    # later session cannot come back (the audit trail keeps its rows).
    mapping: dict[str, tuple[str, str]] = {}
    taken: set[str] = set()
    dropped: list[str] = []
    for key, owner in _current_ids():
        name = key.split(".", 1)[1] if "." in key else key
        if name in taken or len(name) > 128:
            dropped.append(key)
            continue
        taken.add(name)
        mapping[key] = (name, owner or "")
    conn = op.get_bind()
    for key in dropped:
        conn.execute(sa.text("DELETE FROM sessions WHERE id = :k"), {"k": key})
    conn.execute(sa.text("UPDATE audit SET session_id = NULL WHERE length(session_id) > 128"))
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite(128, mapping)
    else:
        _rename_postgresql(mapping)
        _alter_postgresql(128, 160)
