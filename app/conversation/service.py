"""One turn, one path: every channel hands a Turn to `ConversationService.handle`.

load session -> confirm/decline a pending write -> plan -> validate against the catalogue ->
run reads concurrently / hold writes for confirmation -> format -> persist atomically -> publish.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from app.conversation.planners.rules import is_affirmative, is_negative
from app.domain.identity import Caller, session_key, session_name
from app.domain.plan import PendingCall, Plan, PlanContext, Planner, ToolCall
from app.domain.session import AuditEntry, SessionInfo
from app.ops.metrics import Metrics
from app.store.sessions import UNSET, SessionStore, Unset
from app.tools.catalogue import get_spec, missing_arguments, validation_errors
from app.tools.executor import ToolExecutor, ToolOutcome, peers_of
from app.utils.time import isoformat_z

log = structlog.get_logger(__name__)

Channel = Literal["chat", "voice"]
ProgressFn = Callable[[str, dict[str, Any]], Awaitable[None]]
PublishFn = Callable[[dict[str, Any]], Awaitable[None]]


class SessionAccessDenied(Exception):
    """The caller may not use this session: answered exactly like a missing session (404)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One message to answer. Made only by the gate (`app.channels.gate.Gate.turn`)."""

    text: str
    trace_id: str
    caller: Caller
    """Who is speaking and what they may do; the owner of any session this turn creates."""
    session_key: str | None = None
    """The session in the caller's namespace; None starts a new one with a server-made id."""
    source: Channel = "chat"
    """How to format the answer and which kind of session it is."""
    channel: str = "rest"
    """Where it came in: rest, ws, process, message, task (for metrics and audit)."""
    origin: str | None = None
    """The WebSocket connection that sent it, which gets the answer directly."""
    proposal_id: str | None = None
    """For a confirmation: the proposal the sender was shown (None: the one waiting)."""

    @property
    def actor(self) -> str:
        return str(self.caller.identity)


@dataclass(slots=True)
class Reply:
    text: str
    session_id: str
    """The id the client sees (its name in the owner's namespace)."""
    trace_id: str
    session_key: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    pending_confirmation: dict[str, Any] | None = None
    planner: str = "rules"
    notes: list[str] = field(default_factory=list)
    timestamp: str = field(default_factory=isoformat_z)


class Renderer(Protocol):
    def outcomes(self, outcomes: Sequence[ToolOutcome], *, channel: Channel) -> str: ...

    def confirmation(self, call: ToolCall, *, channel: Channel) -> str: ...

    def question(self, call: ToolCall, missing: Sequence[str], *, channel: Channel) -> str: ...

    def plain(self, text: str, *, channel: Channel) -> str: ...


def pending_view(pending: PendingCall | None) -> dict[str, Any] | None:
    """What clients see of a pending write (`pending_confirmation`)."""
    if pending is None:
        return None
    return {
        "proposal_id": pending.proposal_id,
        "tool": pending.call.tool,
        "args": pending.call.args,
        "missing": pending.missing,
        "awaiting": "details" if pending.missing else "confirmation",
    }


class ConversationService:
    def __init__(
        self,
        *,
        store: SessionStore,
        planner: Planner,
        executor: ToolExecutor,
        renderer: Renderer,
        aliases: Callable[[], dict[str, int]],
        publish: PublishFn,
        metrics: Metrics,
        history_window: int = 20,
        max_sessions_per_owner: int | None = None,
    ) -> None:
        self._max_sessions_per_owner = max_sessions_per_owner
        self._store = store
        self._planner = planner
        self._executor = executor
        self._renderer = renderer
        self._aliases = aliases
        self._publish = publish
        self._metrics = metrics
        self._history_window = history_window

    @property
    def planner(self) -> Planner:
        return self._planner

    async def analyze(self, text: str) -> Plan:
        """Plan without executing anything or touching a session."""
        return await self._planner.plan(text, PlanContext(aliases=self._aliases()))

    async def handle(self, turn: Turn, *, progress: ProgressFn | None = None) -> Reply:
        started = time.perf_counter()
        emit = progress or _no_progress
        if turn.session_key is None:
            # A new, server-made id: nobody else knows it until this answer, so no lock.
            key = session_key(turn.caller.identity, secrets.token_urlsafe(18))
            session = await self._open_session(turn, key)
            reply = await self._run_and_record(turn, session, emit)
        else:
            # Read the session once, inside the lock, so a concurrent turn's pending action
            # and history are seen.
            async with self._store.lock(turn.session_key):
                session = await self._open_session(turn, turn.session_key)
                reply = await self._run_and_record(turn, session, emit)
        elapsed = time.perf_counter() - started

        self._metrics.turns.labels(turn.channel, reply.planner).inc()
        self._metrics.turn_latency.labels(turn.channel).observe(elapsed)
        await self._publish(
            {
                "kind": "session",
                "session_key": reply.session_key,
                "origin": turn.origin,
                "frame": {
                    "type": "message",
                    "session_id": reply.session_id,
                    "timestamp": reply.timestamp,
                    "role": "assistant",
                    "in_reply_to": turn.text,
                    "content": reply.text,
                    "actions": reply.actions,
                    "pending_confirmation": reply.pending_confirmation,
                    "trace_id": reply.trace_id,
                },
            }
        )
        log.info(
            "chat_turn",
            channel=turn.channel,
            planner=reply.planner,
            tools=[a["tool"] for a in reply.actions],
            duration_ms=round(elapsed * 1000, 2),
            trace_id=turn.trace_id,
        )
        return reply

    async def _open_session(self, turn: Turn, key: str) -> SessionInfo:
        owner = str(turn.caller.identity)
        # Work the service does for itself (assigned tasks) is not capped like a client.
        quota = None if turn.caller.identity.kind == "system" else self._max_sessions_per_owner
        session = await self._store.get_or_create(
            session_id=key, source=turn.source, owner=owner, max_for_owner=quota
        )
        if session.owner != owner:
            raise SessionAccessDenied(session_name(key))
        return session

    async def _run_and_record(self, turn: Turn, session: SessionInfo, emit: ProgressFn) -> Reply:
        reply, audit, pending, context = await self._run(turn, session, emit)
        await self._store.record_turn(
            session_id=session.session_id,
            user_text=turn.text,
            answer_text=reply.text,
            trace_id=turn.trace_id,
            actions=reply.actions,
            audit=audit,
            pending=pending,
            context_update=context,
        )
        return reply

    async def _run(
        self, turn: Turn, session: SessionInfo, emit: ProgressFn
    ) -> tuple[Reply, list[AuditEntry], PendingCall | Unset | None, dict[str, Any]]:
        channel: Channel = turn.source
        pending = session.pending
        reply = Reply(
            text="",
            session_id=session_name(session.session_id),
            trace_id=turn.trace_id,
            session_key=session.session_id,
        )

        stale = self._stale_confirmation(turn, pending, channel)
        if stale is not None:
            reply.text = stale
            reply.pending_confirmation = pending_view(pending)
            return reply, [], UNSET, {}
        if pending is not None and not pending.missing and is_affirmative(turn.text):
            return await self._execute_pending(turn, session, pending, reply, emit)
        if pending is not None and is_negative(turn.text):
            reply.text = self._renderer.plain(
                f"Okay, I dropped it: nothing was {_verb_past(pending.call.tool)}.",
                channel=channel,
            )
            entry = self._audit(turn, session, pending.call, "declined", "declined by the user")
            reply.actions = [{"tool": pending.call.tool, "status": "declined"}]
            return reply, [entry], None, {}
        # "cancel that" with nothing pending means the last task, so only a bare "yes" stops here.
        if pending is None and is_affirmative(turn.text):
            reply.text = self._renderer.plain(
                "There is nothing waiting for your confirmation.", channel=channel
            )
            return reply, [], UNSET, {}

        await emit("planning", {"step": "planning"})
        history = await self._store.history(session.session_id, limit=self._history_window)
        context = PlanContext(
            history=[m.as_turn() for m in history],
            last_task_id=_int_or_none(session.context.get("last_task_id")),
            last_droplet_id=_int_or_none(session.context.get("last_droplet_id")),
            pending=pending,
            aliases=self._aliases(),
        )
        plan = await self._planner.plan(turn.text, context)
        reply.planner = plan.planner
        reply.notes = list(plan.notes)

        if plan.kind == "answer":
            reply.text = self._renderer.plain(plan.answer or "", channel=channel)
            if pending is not None:
                reply.text += "\n\n" + self._still_waiting(pending, channel)
                reply.pending_confirmation = pending_view(pending)
            return reply, [], UNSET, {}

        if plan.kind == "ask":
            call = plan.calls[0] if plan.calls else None
            if call is None or get_spec(call.tool) is None:
                reply.text = self._renderer.plain(
                    "I did not understand that. Say **help** to see what I can do.",
                    channel=channel,
                )
                return reply, [], UNSET, {}
            missing = plan.missing or missing_arguments(call)
            new_pending = self._proposal(turn, call, missing)
            reply.text = self._renderer.question(call, missing, channel=channel)
            reply.pending_confirmation = pending_view(new_pending)
            return reply, [], new_pending, {"pending_planner": plan.planner}

        return await self._run_calls(turn, session, plan, reply, emit, pending)

    async def _run_calls(
        self,
        turn: Turn,
        session: SessionInfo,
        plan: Plan,
        reply: Reply,
        emit: ProgressFn,
        pending: PendingCall | None,
    ) -> tuple[Reply, list[AuditEntry], PendingCall | Unset | None, dict[str, Any]]:
        channel: Channel = turn.source
        reads: list[ToolCall] = []
        writes: list[ToolCall] = []
        problems: list[str] = []
        for call in plan.calls:
            spec = get_spec(call.tool)
            errors = validation_errors(call)
            if spec is None or errors:
                problems.append(f"{call.tool}: {'; '.join(errors) or 'unknown tool'}")
                reply.actions.append({"tool": call.tool, "status": "invalid"})
                continue
            (writes if spec.writes else reads).append(call)

        outcomes: list[ToolOutcome] = []
        audit: list[AuditEntry] = []
        if reads:
            for call in reads:
                await emit(
                    "calling",
                    {"step": "calling", "tool": call.tool, "droplet": _peer_for(call.tool)},
                )
            outcomes = list(
                await asyncio.gather(
                    *(
                        self._executor.execute(call, caller=turn.caller, trace_id=turn.trace_id)
                        for call in reads
                    )
                )
            )
            for outcome in outcomes:
                reply.actions.append({"tool": outcome.call.tool, "status": outcome.status})
                audit.append(self._audit_outcome(turn, session, outcome, plan.planner))
                self._metrics.tool_calls.labels(outcome.call.tool, outcome.status).inc()

        await emit("formatting", {"step": "formatting"})
        parts: list[str] = []
        if outcomes:
            parts.append(self._renderer.outcomes(outcomes, channel=channel))
        if problems:
            parts.append(
                self._renderer.plain(
                    "I could not use part of that request: " + "; ".join(problems), channel=channel
                )
            )

        new_pending: PendingCall | Unset | None = UNSET
        if writes:
            call = writes[0]
            if not turn.caller.can("write"):
                parts.append(
                    self._renderer.plain(
                        f"You do not have permission to {_verb(call.tool)}: that needs the "
                        "'write' permission.",
                        channel=channel,
                    )
                )
                reply.actions.append({"tool": call.tool, "status": "forbidden"})
                audit.append(
                    self._audit(
                        turn, session, call, "declined", "no write permission", planner=plan.planner
                    )
                )
            else:
                new_pending = self._proposal(turn, call, [])
                parts.append(self._renderer.confirmation(call, channel=channel))
                reply.pending_confirmation = pending_view(new_pending)
                reply.actions.append({"tool": call.tool, "status": "awaiting_confirmation"})
                if len(writes) > 1:
                    parts.append(
                        self._renderer.plain(
                            "One change at a time: ask for the next one after this.",
                            channel=channel,
                        )
                    )
        elif pending is not None:
            parts.append(self._still_waiting(pending, channel))
            reply.pending_confirmation = pending_view(pending)

        reply.text = "\n\n".join(p for p in parts if p) or self._renderer.plain(
            "Done.", channel=channel
        )
        context = _context_from(outcomes)
        if isinstance(new_pending, PendingCall):
            context["pending_planner"] = plan.planner
        return reply, audit, new_pending, context

    async def _execute_pending(
        self,
        turn: Turn,
        session: SessionInfo,
        pending: PendingCall,
        reply: Reply,
        emit: ProgressFn,
    ) -> tuple[Reply, list[AuditEntry], PendingCall | Unset | None, dict[str, Any]]:
        channel: Channel = turn.source
        call = pending.call
        errors = validation_errors(call)
        if errors:
            reply.text = self._renderer.plain(
                "That action is no longer valid: " + "; ".join(errors), channel=channel
            )
            reply.actions = [{"tool": call.tool, "status": "invalid"}]
            return reply, [], None, {}
        await emit(
            "calling", {"step": "calling", "tool": call.tool, "droplet": _peer_for(call.tool)}
        )
        # The executor checks the caller's permission itself: a "yes" from a caller without
        # `write` executes nothing, whoever proposed it.
        outcome = await self._executor.execute(call, caller=turn.caller, trace_id=turn.trace_id)
        self._metrics.tool_calls.labels(call.tool, outcome.status).inc()
        await emit("formatting", {"step": "formatting"})
        reply.text = self._renderer.outcomes([outcome], channel=channel)
        reply.actions = [{"tool": call.tool, "status": outcome.status}]
        planner = str(session.context.get("pending_planner") or "rules")
        reply.planner = planner
        entry = self._audit_outcome(turn, session, outcome, planner)
        return reply, [entry], None, _context_from([outcome])

    @staticmethod
    def _proposal(turn: Turn, call: ToolCall, missing: list[str]) -> PendingCall:
        """A new proposal: its own id, bound to the identity it is shown to."""
        return PendingCall(
            call=call,
            missing=missing,
            proposal_id=secrets.token_urlsafe(12),
            proposed_by=str(turn.caller.identity),
        )

    def _stale_confirmation(
        self, turn: Turn, pending: PendingCall | None, channel: Channel
    ) -> str | None:
        """Why a yes/no cannot act on what is waiting, or None when it may.

        A confirmation naming a proposal acts only on that proposal; a waiting proposal acts
        only for the identity it was shown to (and one stored without an id, by an older
        version, must be asked again).
        """
        if turn.proposal_id is not None:
            if pending is None:
                return self._renderer.plain(
                    "That proposal is no longer waiting: nothing was changed.", channel=channel
                )
            if pending.proposal_id != turn.proposal_id:
                return self._renderer.plain(
                    "That is not the proposal waiting now, so nothing was changed. "
                    + self._still_waiting(pending, channel),
                    channel=channel,
                )
        if pending is None or not (is_affirmative(turn.text) or is_negative(turn.text)):
            return None
        if pending.proposal_id is None or pending.proposed_by != str(turn.caller.identity):
            return self._renderer.plain(
                "That proposal was not made to you, so nothing was changed; "
                "ask for the change yourself.",
                channel=channel,
            )
        return None

    def _still_waiting(self, pending: PendingCall, channel: Channel) -> str:
        if pending.missing:
            return self._renderer.question(pending.call, pending.missing, channel=channel)
        return self._renderer.plain(
            f"(Still waiting for your **yes** or **no** to {_verb(pending.call.tool)}.)",
            channel=channel,
        )

    def _audit(
        self,
        turn: Turn,
        session: SessionInfo,
        call: ToolCall,
        outcome: Literal["ok", "error", "declined"],
        detail: str | None,
        *,
        planner: str | None = None,
        duration_ms: float | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            actor=turn.actor,
            session_id=session.session_id,
            source=turn.channel,
            tool=call.tool,
            args=call.args,
            outcome=outcome,
            detail=detail,
            duration_ms=duration_ms,
            trace_id=turn.trace_id,
            planner=planner or str(session.context.get("pending_planner") or "rules"),
        )

    def _audit_outcome(
        self, turn: Turn, session: SessionInfo, outcome: ToolOutcome, planner: str
    ) -> AuditEntry:
        return self._audit(
            turn,
            session,
            outcome.call,
            "ok" if outcome.status == "ok" else "error",
            outcome.message,
            planner=planner,
            duration_ms=outcome.duration_ms,
        )


async def _no_progress(_step: str, _data: dict[str, Any]) -> None:
    return None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _context_from(outcomes: Sequence[ToolOutcome]) -> dict[str, Any]:
    update: dict[str, Any] = {}
    for outcome in outcomes:
        update.update(outcome.context)
    return update


_VERBS = {
    "create_task": ("create the task", "created"),
    "cancel_task": ("cancel the task", "cancelled"),
    "send_message": ("send the message", "sent"),
}


def _verb(tool: str) -> str:
    return _VERBS.get(tool, (f"run {tool}", "done"))[0]


def _verb_past(tool: str) -> str:
    return _VERBS.get(tool, (f"run {tool}", "done"))[1]


_PEER_DROPLET_IDS = {"registry": 1, "orchestrator": 10}


def _peer_for(tool: str) -> int | None:
    peers = peers_of(tool)
    return _PEER_DROPLET_IDS[peers[0]] if peers else None
