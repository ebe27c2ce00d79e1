"""Sessions and the audit log. `stats` is declared before `/{session_id}` so it is reachable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from app.api.deps import AdminPrincipal, ChatPrincipal, RuntimeDep, require_admin
from app.api.errors import ApiError
from app.models.chat import (
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
from app.models.session import SessionInfo
from app.models.udc import ErrorCode
from app.services.conversation import pending_view
from app.utils.jwt import Principal

router = APIRouter(prefix="/api", tags=["sessions"])

SessionId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"description": "No such session (standard error body)"}
}


def _summary(info: SessionInfo) -> SessionSummary:
    return SessionSummary(
        session_id=info.session_id,
        source=info.source,
        created_at=info.created_at,
        last_activity=info.last_activity,
        message_count=info.message_count,
        title=info.title,
    )


def _may_use(principal: Principal, info: SessionInfo) -> bool:
    # Without chat auth the session id itself is the capability; with it, the owner or an admin.
    if not principal.authenticated:
        return True
    return info.owner in (None, principal.subject) or principal.can("admin")


async def _session_or_404(runtime: RuntimeDep, principal: Principal, session_id: str
                          ) -> SessionInfo:
    info = await runtime.store.get(session_id)
    if info is None or not _may_use(principal, info):
        # The same answer for "absent" and "not yours": ids of others are not confirmed.
        raise ApiError(404, f"No session {session_id!r}", code=ErrorCode.NOT_FOUND,
                       details={"session_id": session_id})
    return info


@router.get("/sessions", summary="List sessions (yours; all for an admin)")
async def list_sessions(
    request: Request,
    runtime: RuntimeDep,
    principal: ChatPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SessionList:
    if principal.authenticated and not principal.can("admin"):
        owner: str | None = principal.subject
    else:
        await require_admin(request, runtime, principal)
        owner = None
    sessions, total = await runtime.store.list_sessions(owner=owner, limit=limit, offset=offset)
    return SessionList(sessions=[_summary(s) for s in sessions], total=total)


@router.get("/sessions/stats", summary="Session statistics")
async def session_stats(runtime: RuntimeDep, principal: ChatPrincipal) -> SessionStatsResponse:
    owner = principal.subject if principal.authenticated and not principal.can("admin") else None
    stats = await runtime.store.stats(owner=owner)
    return SessionStatsResponse(**stats.model_dump())


@router.get("/sessions/{session_id}", summary="One session with its history",
            responses=_NOT_FOUND)
async def get_session(
    session_id: SessionId,
    runtime: RuntimeDep,
    principal: ChatPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> SessionDetail:
    info = await _session_or_404(runtime, principal, session_id)
    messages = await runtime.store.history(session_id, limit=limit)
    history = [
        HistoryEntry(
            seq=m.seq,
            role=m.role,
            content=m.text,
            timestamp=m.created_at,
            trace_id=m.trace_id,
            actions=[Action(**a) for a in m.meta.get("actions", []) if isinstance(a, dict)
                     and {"tool", "status"} <= a.keys()],
        )
        for m in messages
    ]
    return SessionDetail(
        **_summary(info).model_dump(),
        history=history,
        pending_confirmation=pending_view(info.pending),
    )


@router.delete("/sessions/{session_id}", summary="Delete one session", responses=_NOT_FOUND)
async def delete_session(
    session_id: SessionId, runtime: RuntimeDep, principal: ChatPrincipal
) -> Deleted:
    await _session_or_404(runtime, principal, session_id)
    deleted = await runtime.store.delete(session_id)
    return Deleted(deleted=int(deleted))


@router.delete("/sessions", summary="Delete every session (admin)")
async def delete_all_sessions(runtime: RuntimeDep, _admin: AdminPrincipal) -> Deleted:
    return Deleted(deleted=await runtime.store.delete_all())


@router.get("/audit", summary="The audit log of tool executions (admin)")
async def audit_log(
    runtime: RuntimeDep,
    _admin: AdminPrincipal,
    session_id: Annotated[str | None, Query(max_length=128)] = None,
    tool: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Literal["ok", "error", "declined"] | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AuditList:
    entries = await runtime.store.audit(
        session_id=session_id, tool=tool, actor=actor, outcome=outcome, since=since,
        limit=limit, offset=offset,
    )
    records = [AuditRecord(**e.model_dump()) for e in entries]
    return AuditList(entries=records, count=len(records))
