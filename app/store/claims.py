"""Proposal claims: a confirmed write runs at most once, whatever happens after it ran.

Why: a proposal is consumed (the session's pending action cleared) by the record of the turn
that carried it out. When the store fails between the tool's run and that record, or the
process is killed there, the proposal stays stored as waiting, and a second "yes" would run it
again: a second task. So before a confirmed write runs, the turn claims its proposal id in a
transaction of its own, and a proposal already claimed never runs again, on any instance,
before or after a restart. The claim is given back only when the run changed nothing for
certain and the proposal stays waiting for a retry (the peer could not be reached).

Claims are rows of `claimed_proposals`, deleted with their session. Claims arriving together
share a transaction (group commit, on the same writer as the turns: on SQLite the writer's
thread and connection, on PostgreSQL a connection of the write engine), with constant SQL as
the turns have (app/store/sqlite_turns.py, app/store/pg_turns.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from app.store.sqlite_turns import sqlite_datetime
from app.store.turns import MissingSession

if TYPE_CHECKING:
    from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class ProposalClaim:
    """Claim a proposal before its write runs, or (`release`) give the claim back."""

    proposal_id: str
    session_id: str
    tool: str
    at: datetime
    release: bool = False
    """The run changed nothing and the proposal stays waiting: it may run again."""


# The session must still exist (the claim is deleted with it); a claim that finds the id
# taken inserts nothing and returns no row.
_SQLITE_CLAIM: Final = (
    "INSERT INTO claimed_proposals (proposal_id, session_id, tool, claimed_at) "
    "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?) "
    "ON CONFLICT (proposal_id) DO NOTHING RETURNING proposal_id"
)
_SQLITE_TAKEN: Final = "SELECT 1 FROM claimed_proposals WHERE proposal_id = ?"
_SQLITE_RELEASE: Final = "DELETE FROM claimed_proposals WHERE proposal_id = ? AND session_id = ?"

_PG_CLAIM: Final = (
    "INSERT INTO claimed_proposals (proposal_id, session_id, tool, claimed_at) "
    "SELECT $1::varchar, $2::varchar, $3::varchar, $4::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $2::varchar) "
    "ON CONFLICT (proposal_id) DO NOTHING RETURNING proposal_id"
)
_PG_TAKEN: Final = "SELECT 1 FROM claimed_proposals WHERE proposal_id = $1"
_PG_RELEASE: Final = "DELETE FROM claimed_proposals WHERE proposal_id = $1 AND session_id = $2"


def sqlite_one(conn: sqlite3.Connection, claim: ProposalClaim) -> bool | BaseException:
    """One claim on the SQLite writer's connection, inside its transaction: True when this
    caller now holds it (or gave it back), False when it was already taken."""
    if claim.release:
        conn.execute(_SQLITE_RELEASE, (claim.proposal_id, claim.session_id))
        return True
    inserted = conn.execute(
        _SQLITE_CLAIM,
        (
            claim.proposal_id,
            claim.session_id,
            claim.tool,
            sqlite_datetime(claim.at),
            claim.session_id,
        ),
    ).fetchall()
    if inserted:
        return True
    if conn.execute(_SQLITE_TAKEN, (claim.proposal_id,)).fetchall():
        return False
    return MissingSession(claim.session_id)


async def pg_one(driver: Connection, claim: ProposalClaim) -> bool | BaseException:
    """sqlite_one on a PostgreSQL connection (asyncpg), inside its transaction."""
    if claim.release:
        await driver.execute(_PG_RELEASE, claim.proposal_id, claim.session_id)
        return True
    if await driver.fetchval(_PG_CLAIM, claim.proposal_id, claim.session_id, claim.tool, claim.at):
        return True
    if await driver.fetchval(_PG_TAKEN, claim.proposal_id) is not None:
        return False
    return MissingSession(claim.session_id)
