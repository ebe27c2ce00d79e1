"""Sessions and the audit log. `stats` is declared before `/{session_id}` so it is reachable.

A session id names a session in the caller's own namespace: another identity's session is
answered exactly like one that does not exist. An admin may name another owner (`?owner=`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from app.channels.deps import AdminCaller, ChatCaller, GateDep, SessionsDep, TurnServiceDep
from app.channels.errors import ApiError
from app.channels.schemas import (
    Action,
    AuditList,
    AuditRecord,
    Deleted,
    HistoryEntry,
    SessionDetail,
    SessionList,
    SessionStatsResponse,
    SessionSummary,
)
from app.domain.identity import Caller, Identity, session_key, session_name
from app.domain.session import SessionInfo
from app.domain.udc import ErrorCode
from app.store.sessions import SessionStore

router = APIRouter(prefix="/api", tags=["sessions"])

SessionId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
OwnerParam = Annotated[
    str | None,
    Query(max_length=255, description="Admins: the owner identity, e.g. user:alice or droplet:18"),
]
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"description": "No such session (standard error body)"}
}


def _summary(info: SessionInfo) -> SessionSummary:
    return SessionSummary(
        session_id=session_name(info.session_id),
        owner=info.owner,
        source=info.source,
        created_at=info.created_at,
        last_activity=info.last_activity,
        message_count=info.message_count,
        title=info.title,
    )


def _key_for(caller: Caller, session_id: str, owner: str | None) -> str:
    identity = caller.identity
    if owner is not None and caller.authenticated and caller.can("admin"):
        try:
            identity = Identity.parse(owner)
        except ValueError as exc:
            raise ApiError(
                422,
                "owner must be an identity such as user:alice or droplet:18",
                details={"field": "owner"},
            ) from exc
    return session_key(identity, session_id)


async def _session_or_404(
    sessions: SessionStore, caller: Caller, session_id: str, owner: str | None
) -> SessionInfo:
    key = _key_for(caller, session_id, owner)
    info = await sessions.get(key)
    mine = info is not None and info.owner == str(caller.identity)
    if info is None or not (mine or (caller.authenticated and caller.can("admin"))):
        # The same answer for "absent" and "not yours": ids of others are not confirmed.
        raise ApiError(
            404,
            f"No session {session_id!r}",
            code=ErrorCode.NOT_FOUND,
            details={"session_id": session_id},
        )
    return info


@router.get("/sessions", summary="List sessions (yours; all for an admin)")
async def list_sessions(
    sessions: SessionsDep,
    gate: GateDep,
    caller: ChatCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SessionList:
    if caller.authenticated and not caller.can("admin"):
        owner: str | None = str(caller.identity)
    else:
        gate.require_admin(caller, to="Listing every session")
        owner = None
    found, total = await sessions.list_sessions(owner=owner, limit=limit, offset=offset)
    return SessionList(sessions=[_summary(s) for s in found], total=total)


@router.get("/sessions/stats", summary="Session statistics (yours; all for an admin)")
async def session_stats(sessions: SessionsDep, caller: ChatCaller) -> SessionStatsResponse:
    owner = None if caller.authenticated and caller.can("admin") else str(caller.identity)
    stats = await sessions.stats(owner=owner)
    return SessionStatsResponse(**stats.model_dump())


@router.get("/sessions/{session_id}", summary="One session with its history", responses=_NOT_FOUND)
async def get_session(
    session_id: SessionId,
    sessions: SessionsDep,
    turns: TurnServiceDep,
    caller: ChatCaller,
    owner: OwnerParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> SessionDetail:
    info = await _session_or_404(sessions, caller, session_id, owner)
    messages = await sessions.history(info.session_id, limit=limit)
    history = [
        HistoryEntry(
            seq=m.seq,
            role=m.role,
            content=m.text,
            timestamp=m.created_at,
            trace_id=m.trace_id,
            actions=[
                Action(**a)
                for a in m.meta.get("actions", [])
                if isinstance(a, dict) and {"tool", "status"} <= a.keys()
            ],
        )
        for m in messages
    ]
    return SessionDetail(
        **_summary(info).model_dump(),
        history=history,
        pending_confirmation=turns.view(info.pending),
    )


@router.delete("/sessions/{session_id}", summary="Delete one session", responses=_NOT_FOUND)
async def delete_session(
    session_id: SessionId, sessions: SessionsDep, caller: ChatCaller, owner: OwnerParam = None
) -> Deleted:
    info = await _session_or_404(sessions, caller, session_id, owner)
    deleted = await sessions.delete(info.session_id)
    return Deleted(deleted=int(deleted))


@router.delete("/sessions", summary="Delete every session (admin)")
async def delete_all_sessions(sessions: SessionsDep, _admin: AdminCaller) -> Deleted:
    return Deleted(deleted=await sessions.delete_all())


@router.get("/audit", summary="The audit log of tool executions (admin)")
async def audit_log(
    sessions: SessionsDep,
    _admin: AdminCaller,
    session_id: Annotated[str | None, Query(max_length=128)] = None,
    owner: OwnerParam = None,
    tool: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    outcome: Literal["ok", "degraded", "error", "declined"] | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AuditList:
    key = None
    if session_id is not None:
        try:
            identity = Identity.parse(owner) if owner else _admin.identity
        except ValueError as exc:
            raise ApiError(
                422,
                "owner must be an identity such as user:alice or droplet:18",
                details={"field": "owner"},
            ) from exc
        key = session_key(identity, session_id)
    entries = await sessions.audit(
        session_id=key,
        tool=tool,
        actor=actor,
        outcome=outcome,
        since=since,
        limit=limit,
        offset=offset,
    )
    records = [
        AuditRecord(
            **{**e.model_dump(), "session_id": session_name(e.session_id) if e.session_id else None}
        )
        for e in entries
    ]
    return AuditList(entries=records, count=len(records))
