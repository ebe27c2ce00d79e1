"""Runs validated tool calls: permission, typed arguments, a timeout, peer errors as statuses.

Every call ends in an Outcome, never an exception: a peer that is down or says no becomes a
status and a message safe to show, so a turn always gets an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from app.domain.identity import Caller
from app.domain.plan import ToolCall
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.tools.base import ArgsInvalid, Outcome, Prepared
from app.tools.context import Mesh, MeshOff, RunContext, WatchBook
from app.tools.registry import ToolRegistry
from app.tools.render import peer_display

log = structlog.get_logger(__name__)


class ToolExecutor:
    def __init__(
        self,
        *,
        tools: ToolRegistry,
        mesh: Mesh,
        timeout_s: float = 10.0,
        observe_upstream: Callable[[str, float], None] | None = None,
        watches: WatchBook | None = None,
        watch_ttl_s: float = 24 * 3600,
        max_watches: int = 20,
    ) -> None:
        self._tools = tools
        self._mesh = mesh
        self._timeout = timeout_s
        self._observe = observe_upstream
        self._watches = watches
        self._watch_ttl_s = watch_ttl_s
        self._max_watches = max_watches

    @property
    def tools(self) -> ToolRegistry:
        return self._tools

    def _context(
        self,
        *,
        caller: Caller,
        trace_id: str,
        session: dict[str, Any] | None,
        session_key: str | None,
        source: str,
        route_back: str | None = None,
    ) -> RunContext:
        return RunContext(
            mesh=self._mesh,
            caller=caller,
            trace_id=trace_id,
            session=session or {},
            session_key=session_key,
            source=source,
            route_back=route_back,
            watches=self._watches,
            watch_ttl_s=self._watch_ttl_s,
            max_watches=self._max_watches,
        )

    async def prepare(
        self,
        call: ToolCall,
        *,
        caller: Caller,
        trace_id: str,
        session: dict[str, Any] | None = None,
        session_key: str | None = None,
        source: str = "chat",
        route_back: str | None = None,
    ) -> Prepared:
        """A write made concrete before it is proposed (a filter resolved into the exact tasks),
        or what to say instead. Peer failures become an answer: nothing is proposed that the
        operator could not see."""
        tool = self._tools.get(call.tool)
        if tool is None:
            return Prepared(None, answer=f"I don't know the tool {call.tool!r}.")
        try:
            args = tool.parse(call.args)
        except ArgsInvalid as exc:
            return Prepared(None, answer="I couldn't use that: " + "; ".join(exc.problems))
        ctx = self._context(
            caller=caller,
            trace_id=trace_id,
            session=session,
            session_key=session_key,
            source=source,
            route_back=route_back,
        )
        action = tool.action_for(call.args)
        try:
            async with asyncio.timeout(self._timeout):
                return await tool.prepare(args, ctx)
        except TimeoutError:
            reason = f"the mesh did not answer within {self._timeout:g} seconds"
        except PeerUnavailable as exc:
            reason = f"the {peer_display(exc.peer)} is unreachable right now"
        except PeerError as exc:
            reason = f"the {peer_display(exc.peer)} said: {exc.message}"
        except MeshOff as exc:
            reason = str(exc)
        log.info("tool_prepare_failed", tool=call.tool, reason=reason, trace_id=trace_id)
        return Prepared(
            None,
            answer=f"I couldn't prepare that ({action}): {reason}. Nothing was changed; "
            "try again in a moment.",
        )

    async def execute(
        self,
        call: ToolCall,
        *,
        caller: Caller,
        trace_id: str,
        session: dict[str, Any] | None = None,
        session_key: str | None = None,
        source: str = "chat",
        route_back: str | None = None,
    ) -> Outcome:
        started = time.perf_counter()
        out = Outcome(call=call)
        tool = self._tools.get(call.tool)
        if tool is None:
            out.status, out.message = "invalid", f"unknown tool {call.tool!r}"
            return out
        # The permission is enforced here, where the tool runs, from the caller itself.
        if not tool.allowed(caller):
            out.status = "forbidden"
            out.message = f"that needs the '{tool.permission}' permission"
            log.info(
                "tool_forbidden", tool=call.tool, caller=str(caller.identity), trace_id=trace_id
            )
            return out
        try:
            args = tool.parse(call.args)
        except ArgsInvalid as exc:
            out.status, out.message = "invalid", "; ".join(exc.problems)
            return out
        ctx = self._context(
            caller=caller,
            trace_id=trace_id,
            session=session,
            session_key=session_key,
            source=source,
            route_back=route_back,
        )
        try:
            async with asyncio.timeout(self._timeout):
                await tool.run(args, ctx, out)
        except TimeoutError:
            out.status = "unavailable"
            out.message = f"the mesh did not answer within {self._timeout:g} seconds"
            # Cut off mid-call: a write's request may have been acted on already.
            out.unconfirmed = tool.writes
        except PeerNotFound as exc:
            out.status, out.message, out.peer = "not_found", exc.message, exc.peer
        except PeerRejected as exc:
            out.status, out.message, out.peer = "rejected", exc.message, exc.peer
        except PeerUnavailable as exc:
            out.status, out.message, out.peer = "unavailable", exc.message, exc.peer
            out.unconfirmed = tool.writes and exc.reached
        except PeerError as exc:
            out.status, out.message, out.peer = "error", exc.message, exc.peer
        except MeshOff as exc:
            out.status, out.message = "unavailable", str(exc)
        elapsed = time.perf_counter() - started
        out.duration_ms = round(elapsed * 1000, 2)
        if self._observe is not None and tool.peers:
            self._observe(
                "registry+orchestrator" if len(tool.peers) > 1 else tool.peers[0], elapsed
            )
        if not out.answered:
            log.info(
                "tool_failed",
                tool=call.tool,
                status=out.status,
                reason=out.message,
                trace_id=trace_id,
            )
        return out
