"""Proposal claims on real databases: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.store.sessions import SessionNotFound, SessionStore
from app.store.tables import ClaimedProposalRow
from tests.store.support import BACKENDS, Backend, make_backend


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with make_backend(request.param, tmp_path) as made:
        yield made


async def _session(store: SessionStore) -> str:
    return (await store.get_or_create(session_id=None, source="chat", owner="alice")).session_id


async def _claims(store: SessionStore) -> list[tuple[str, str, str]]:
    async with store.reading() as conn:
        rows = await conn.execute(
            sa.select(
                ClaimedProposalRow.proposal_id,
                ClaimedProposalRow.session_id,
                ClaimedProposalRow.tool,
            ).order_by(ClaimedProposalRow.proposal_id)
        )
        return [(r.proposal_id, r.session_id, r.tool) for r in rows]


async def test_a_proposal_is_claimed_once_across_instances_and_restarts(
    backend: Backend,
) -> None:
    async with backend.store() as first, backend.store() as second:
        await first.migrate()
        session = await _session(first)
        results = await asyncio.gather(
            *(
                s.claim_proposal(proposal_id="p-1", session_id=session, tool="create_task")
                for _ in range(10)
                for s in (first, second)
            )
        )
        assert results.count(True) == 1
        assert await _claims(second) == [("p-1", session, "create_task")]
        assert await first.proposal_claimed("p-1")
        assert not await first.proposal_claimed("p-2")
        # Another proposal of the same session is its own claim.
        assert await second.claim_proposal(proposal_id="p-2", session_id=session, tool="x")

    async with backend.store() as restarted:
        assert not await restarted.claim_proposal(
            proposal_id="p-1", session_id=session, tool="create_task"
        )


async def test_a_released_claim_may_be_taken_again(backend: Backend) -> None:
    async with backend.store() as store:
        await store.migrate()
        session = await _session(store)
        assert await store.claim_proposal(proposal_id="p", session_id=session, tool="t")
        await store.release_proposal(proposal_id="p", session_id=session)
        assert await _claims(store) == []
        assert not await store.proposal_claimed("p")
        assert await store.claim_proposal(proposal_id="p", session_id=session, tool="t")
        assert not await store.claim_proposal(proposal_id="p", session_id=session, tool="t")


async def test_a_release_names_the_session_it_gives_back_for(backend: Backend) -> None:
    async with backend.store() as store:
        await store.migrate()
        mine, other = await _session(store), await _session(store)
        assert await store.claim_proposal(proposal_id="p", session_id=mine, tool="t")
        await store.release_proposal(proposal_id="p", session_id=other)
        assert await _claims(store) == [("p", mine, "t")]


async def test_claims_of_a_missing_session_fail_alone_in_a_shared_batch(
    backend: Backend,
) -> None:
    async with backend.store() as store:
        await store.migrate()
        session = await _session(store)
        results = await asyncio.gather(
            store.claim_proposal(proposal_id="a", session_id=session, tool="t"),
            store.claim_proposal(proposal_id="b", session_id="no-such-session", tool="t"),
            store.claim_proposal(proposal_id="c", session_id=session, tool="t"),
            return_exceptions=True,
        )
        assert results[0] is True and results[2] is True
        assert isinstance(results[1], SessionNotFound)
        assert [c[0] for c in await _claims(store)] == ["a", "c"]


async def test_deleting_a_session_deletes_its_claims(backend: Backend) -> None:
    async with backend.store() as store:
        await store.migrate()
        gone, kept = await _session(store), await _session(store)
        assert await store.claim_proposal(proposal_id="g", session_id=gone, tool="t")
        assert await store.claim_proposal(proposal_id="k", session_id=kept, tool="t")
        assert await store.delete(gone)
        assert await _claims(store) == [("k", kept, "t")]
