"""One turn, one path: every channel hands the gate's Turn to `ConversationService.handle`.

open the session (in the caller's namespace) -> a yes/no for the waiting proposal? -> plan ->
each call to its tool (validated once) -> reads run concurrently, writes become a proposal ->
each tool renders its answer -> the turn is stored atomically -> its frame is published.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import structlog

from app.conversation import replies
from app.conversation.confirmation import answer_of
from app.domain.identity import Caller, session_key, session_name
from app.domain.plan import PendingCall, Plan, PlanContext, Planner, ToolCall
from app.domain.session import AuditEntry, AuditOutcome, SessionInfo
from app.ops.metrics import Metrics
from app.store.engine import unavailable
from app.store.live import LiveSession
from app.store.sessions import UNSET, SessionStore, Unset
from app.tools.base import ArgsInvalid, Channel, Item, ItemStatus, Outcome, Tool
from app.tools.executor import ToolExecutor
from app.tools.explain_last import LAST_TURN
from app.tools.registry import ToolRegistry
from app.tools.render import for_channel
from app.tools.undo import LAST_WRITE
from app.utils.loop_budget import LoopBudget
from app.utils.time import isoformat_z

log = structlog.get_logger(__name__)

ProgressFn = Callable[[str, dict[str, Any]], Awaitable[None]]
PublishFn = Callable[[dict[str, Any]], Awaitable[None]]
PendingChange = PendingCall | Unset | None
"""What a turn does to the waiting proposal: a new one, UNSET (leave it), None (clear it)."""

_PEER_DROPLET_IDS = {"registry": 1, "orchestrator": 10}


class _Scope(TypedDict):
    """The executor's keyword arguments for one turn (prepare and execute take the same)."""

    caller: Caller
    trace_id: str
    session: dict[str, Any]
    session_key: str
    source: str
    route_back: str | None


class SessionAccessDenied(Exception):
    """The caller may not use this session: answered exactly like a missing session (404)."""


class ActionNotRecorded(Exception):
    """A write ran, then the store could not record the turn: the caller must hear that the
    action happened (and check before repeating it), not only that the store is down. Its
    proposal was claimed before it ran, so a later "yes" finds it taken."""

    def __init__(self, tools: Sequence[str]) -> None:
        super().__init__(f"carried out, not recorded: {', '.join(tools)}")
        self.tools = list(tools)


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
    route_back: str | None = None
    """The droplet a mesh envelope asked answers to go to: where a watch made in this turn
    delivers its notification (when ROUTE_BACK_DELIVERY=orchestrator)."""

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


@dataclass(slots=True)
class _Result:
    """What one turn decided, before it is stored."""

    reply: Reply
    audit: list[AuditEntry] = field(default_factory=list)
    pending: PendingChange = UNSET
    context: dict[str, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    """Every call run this turn, for "why?" on the next one."""
    confidence: float | None = None


def pending_view(pending: PendingCall | None, tools: ToolRegistry) -> dict[str, Any] | None:
    """What clients see of a waiting proposal (`pending_confirmation`)."""
    if pending is None:
        return None
    tool = tools.get(pending.call.tool)
    return {
        "proposal_id": pending.proposal_id,
        "tool": pending.call.tool,
        "args": pending.call.args,
        "summary": tool.summary(pending.call.args) if tool is not None else pending.call.tool,
        "preview": pending.preview,
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
        aliases: Callable[[], dict[str, int]],
        publish: PublishFn,
        metrics: Metrics,
        history_window: int = 20,
        max_sessions_per_owner: int | None = None,
        loop_budget: LoopBudget | None = None,
    ) -> None:
        self._loop_budget = loop_budget or LoopBudget()
        budget = self._loop_budget
        metrics.turns_waiting.set_function(lambda: budget.waiting)
        self._max_sessions_per_owner = max_sessions_per_owner
        self._store = store
        self._planner = planner
        self._executor = executor
        self._tools = executor.tools
        self._aliases = aliases
        self._publish = publish
        self._metrics = metrics
        self._history_window = history_window

    @property
    def planner(self) -> Planner:
        return self._planner

    @property
    def tools(self) -> ToolRegistry:
        return self._tools

    def view(self, pending: PendingCall | None) -> dict[str, Any] | None:
        return pending_view(pending, self._tools)

    async def analyze(self, text: str) -> Plan:
        """Plan without executing anything or touching a session."""
        return await self._planner.plan(text, PlanContext(aliases=self._aliases()))

    async def admit(self) -> None:
        """Wait for a turn's place in the event loop's budget (app.utils.loop_budget).

        A channel that has work of its own to do for a turn before `handle` (reading and
        checking the request) asks here first and passes `admitted=True`, so that work is
        spread over the loop's iterations too."""
        await self._loop_budget.turn()

    async def handle(
        self, turn: Turn, *, progress: ProgressFn | None = None, admitted: bool = False
    ) -> Reply:
        started = time.perf_counter()
        if not admitted:
            # Many turns arriving together start over several loop iterations, not one long
            # one (app.utils.loop_budget).
            await self.admit()
        emit = progress or _no_progress
        if turn.session_key is None:
            # A new, server-made id: nobody else knows it until this answer, so no lock.
            key = session_key(turn.caller.identity, secrets.token_urlsafe(18))
            live = await self._open_session(turn, key)
            reply = await self._run_and_record(turn, live, emit)
        else:
            # Read the session once, inside the lock, so a concurrent turn's pending action
            # and history are seen.
            async with self._store.lock(turn.session_key):
                live = await self._open_session(turn, turn.session_key)
                reply = await self._run_and_record(turn, live, emit)
        elapsed = time.perf_counter() - started

        self._metrics.observe_turn(channel=turn.channel, planner=reply.planner, seconds=elapsed)
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

    async def _open_session(self, turn: Turn, key: str) -> LiveSession:
        owner = str(turn.caller.identity)
        # Work the service does for itself (assigned tasks) is not capped like a client.
        quota = None if turn.caller.identity.kind == "system" else self._max_sessions_per_owner
        live = await self._store.turn_state(
            session_id=key, source=turn.source, owner=owner, max_for_owner=quota
        )
        if live.info.owner != owner:
            raise SessionAccessDenied(session_name(key))
        return live

    async def _run_and_record(self, turn: Turn, live: LiveSession, emit: ProgressFn) -> Reply:
        session = live.info
        started = await self._started_before(turn, session.pending)
        if started is not None:
            # Its write was started by a turn whose record never came: this turn runs as if
            # nothing were waiting, and clears it.
            live = LiveSession(info=session.model_copy(update={"pending": None}), turns=live.turns)
        result = await self._run(turn, live, emit)
        if started is not None:
            self._no_longer_waiting(started, result, turn.source)
        if not any(o.call.tool == "explain_last" for o in result.outcomes):
            # "why?" explains the turn before it, so it does not replace what it explains.
            result.context[LAST_TURN] = self._explanation(turn, result)
        try:
            await self._store.record_turn(
                session_id=session.session_id,
                user_text=turn.text,
                answer_text=result.reply.text,
                trace_id=turn.trace_id,
                actions=result.reply.actions,
                audit=result.audit,
                pending=result.pending,
                context_update=result.context,
            )
        except Exception as exc:
            written = [o.call.tool for o in result.outcomes if o.answered and self._writes(o)]
            if written and unavailable(exc):
                # Not in the history, and its proposal still shows as waiting (claimed, so a
                # "yes" sent again runs nothing): the caller is told it ran.
                raise ActionNotRecorded(written) from exc
            raise
        return result.reply

    def _writes(self, outcome: Outcome) -> bool:
        tool = self._tools.get(outcome.call.tool)
        return tool is not None and tool.writes

    # ---- one turn ----------------------------------------------------------------------------

    async def _run(
        self,
        turn: Turn,
        live: LiveSession,
        emit: ProgressFn,
    ) -> _Result:
        channel: Channel = turn.source
        session = live.info
        pending = session.pending
        result = _Result(
            Reply(
                text="",
                session_id=session_name(session.session_id),
                trace_id=turn.trace_id,
                session_key=session.session_id,
            )
        )
        reply = result.reply
        answer = answer_of(turn.text)

        stale = self._stale_confirmation(turn, pending, answer, channel)
        if stale is not None:
            reply.text = stale
            reply.pending_confirmation = self.view(pending)
            return result
        if pending is not None and answer == 1 and not pending.missing:
            return await self._execute_pending(turn, session, pending, result, emit)
        if pending is not None and answer == -1:
            tool = self._tools.get(pending.call.tool)
            reply.text = replies.declined(tool, channel) if tool else for_channel("Okay.", channel)
            reply.actions = [{"tool": pending.call.tool, "status": "declined"}]
            result.audit = [self._audit(turn, session, pending.call, "declined", "declined")]
            result.pending = None
            return result
        if pending is not None and pending.missing and answer == 1:
            # "ok" while a question is open answers nothing: ask the same question again.
            return self._ask_again(pending, result, channel)
        if pending is None and answer == 1:
            reply.text = for_channel(replies.NOTHING_PENDING, channel)
            return result

        await emit("planning", {"step": "planning"})
        if self._history_window <= self._store.history_window:
            turns = live.turns
            history = list(turns[max(0, len(turns) - self._history_window) :])
        else:  # wants more than the store keeps in memory
            stored = await self._store.history(session.session_id, limit=self._history_window)
            history = [m.as_turn() for m in stored]
        context = PlanContext(
            history=history,
            last_task_id=_int_or_none(session.context.get("last_task_id")),
            last_droplet_id=_int_or_none(session.context.get("last_droplet_id")),
            pending=pending,
            aliases=self._aliases(),
        )
        plan = await self._planner.plan(turn.text, context)
        reply.planner = plan.planner
        result.confidence = plan.confidence
        reply.notes = list(plan.notes)

        if plan.kind == "answer":
            reply.text = for_channel(plan.answer or "", channel)
            if pending is not None and not pending.missing:
                reply.text += "\n\n" + self._waiting_line(pending, channel)
                reply.pending_confirmation = self.view(pending)
            return result
        if plan.kind == "ask":
            return self._ask(turn, session, plan, result, channel)
        return await self._run_calls(turn, session, plan, pending, result, emit)

    def _ask(
        self, turn: Turn, session: SessionInfo, plan: Plan, result: _Result, channel: Channel
    ) -> _Result:
        call = plan.calls[0] if plan.calls else None
        tool = self._tools.get(call.tool) if call is not None else None
        if call is None or tool is None:
            result.reply.text = for_channel(
                "I did not understand that. Say **help** to see what I can do.", channel
            )
            return result
        if not tool.allowed(turn.caller):
            return self._forbidden(turn, session, tool, call, result, plan.planner, channel)
        missing = plan.missing or tool.missing(call.args)
        new = self._proposal(turn, call, missing)
        result.reply.text = for_channel(tool.question(missing, channel), channel)
        result.reply.pending_confirmation = self.view(new)
        result.reply.actions = [{"tool": call.tool, "status": "awaiting_details"}]
        result.pending = new
        result.context = {"pending_planner": plan.planner}
        return result

    def _ask_again(self, pending: PendingCall, result: _Result, channel: Channel) -> _Result:
        tool = self._tools.get(pending.call.tool)
        question = tool.question(pending.missing, channel) if tool else "I need more details."
        result.reply.text = for_channel(f"I still need an answer first. {question}", channel)
        result.reply.pending_confirmation = self.view(pending)
        return result

    async def _run_calls(
        self,
        turn: Turn,
        session: SessionInfo,
        plan: Plan,
        pending: PendingCall | None,
        result: _Result,
        emit: ProgressFn,
    ) -> _Result:
        channel: Channel = turn.source
        reply = result.reply
        reads: list[ToolCall] = []
        writes: list[tuple[Tool[Any], ToolCall]] = []
        problems: list[str] = []
        for call in plan.calls:
            tool = self._tools.get(call.tool)
            # A write may come without all it needs (a model's plan, a partial request): the
            # operator is asked for the rest, as with the offline planner's own questions.
            issues = self._tools.problems(call, partial=tool is not None and tool.writes)
            if tool is None or issues:
                problems.append(_readable(call.tool, issues))
                reply.actions.append({"tool": call.tool, "status": "invalid"})
                continue
            if tool.writes:
                writes.append((tool, call))
            else:
                reads.append(call)

        outcomes: list[Outcome] = []
        if reads:
            for call in reads:
                await emit("calling", self._calling(call))
            scope = self._scope(turn, session)
            if len(reads) == 1:
                # Most turns read once: run it in the turn's own task; gather would make a new
                # one for it (some 50 K instructions, about 1% of a read turn).
                outcomes = [await self._executor.execute(reads[0], **scope)]
            else:
                outcomes = list(
                    await asyncio.gather(*(self._executor.execute(c, **scope) for c in reads))
                )
            for out in outcomes:
                reply.actions.append({"tool": out.call.tool, "status": out.status})
                result.audit.append(self._audit_outcome(turn, session, out, plan.planner))
                self._metrics.count_tool_call(tool=out.call.tool, outcome=out.status)

        await emit("formatting", {"step": "formatting"})
        parts = [self._say(out, channel) for out in outcomes]
        if problems:
            parts.append(
                for_channel("I could not use part of that request: " + "; ".join(problems), channel)
            )

        proposed = False
        if writes:
            tool, call = writes[0]
            proposed = await self._propose_write(turn, session, plan, tool, call, result, parts)
            if len(writes) > 1 and proposed:
                parts.append(
                    for_channel("One change at a time: ask for the next one after this.", channel)
                )
        if not proposed and pending is not None and not pending.missing:
            parts.append(self._waiting_line(pending, channel))
            reply.pending_confirmation = self.view(pending)
        # A question still open (details) is kept, but not repeated after an unrelated answer.

        reply.text = "\n\n".join(p for p in parts if p) or for_channel("Done.", channel)
        for out in outcomes:
            result.context.update(out.context)
        result.outcomes = outcomes
        return result

    async def _propose_write(
        self,
        turn: Turn,
        session: SessionInfo,
        plan: Plan,
        tool: Tool[Any],
        call: ToolCall,
        result: _Result,
        parts: list[str],
    ) -> bool:
        """Turn a write into a proposal (True), or say why there is none (False).

        The proposal holds exactly what a yes will do: a filter ("all pending tasks for
        droplet 14") is resolved into the concrete list first, and that list is shown.
        """
        channel: Channel = turn.source
        reply = result.reply
        if not tool.allowed(turn.caller):
            self._forbidden(turn, session, tool, call, result, plan.planner, channel)
            parts.append(reply.text)
            return False
        missing = tool.missing(call.args)
        if missing:
            new = self._proposal(turn, call, missing)
            parts.append(for_channel(tool.question(missing, channel), channel))
            reply.pending_confirmation = self.view(new)
            reply.actions.append({"tool": call.tool, "status": "awaiting_details"})
            result.pending = new
            result.context["pending_planner"] = plan.planner
            return True
        prepared = await self._executor.prepare(call, **self._scope(turn, session))
        if prepared.answer is not None:
            parts.append(for_channel(prepared.answer, channel))
            reply.actions.append({"tool": call.tool, "status": "nothing_to_do"})
            return False
        if prepared.args is not None:
            call = ToolCall(tool=call.tool, args=dict(prepared.args))
        new = self._proposal(turn, call, [], preview=prepared.preview)
        parts.append(
            replies.confirm(
                tool.propose(tool.parse(call.args), channel),
                channel,
                preview=prepared.spoken if channel == "voice" else prepared.preview,
            )
        )
        reply.pending_confirmation = self.view(new)
        reply.actions.append({"tool": call.tool, "status": "awaiting_confirmation"})
        result.pending = new
        result.context["pending_planner"] = plan.planner
        return True

    def _forbidden(
        self,
        turn: Turn,
        session: SessionInfo,
        tool: Tool[Any],
        call: ToolCall,
        result: _Result,
        planner: str,
        channel: Channel,
    ) -> _Result:
        result.reply.text = for_channel(
            f"You do not have permission to {tool.action_for(call.args)}: that needs the "
            f"'{tool.permission}' permission.",
            channel,
        )
        result.reply.actions.append({"tool": call.tool, "status": "forbidden"})
        result.audit.append(
            self._audit(turn, session, call, "declined", "no write permission", planner=planner)
        )
        return result

    async def _execute_pending(
        self,
        turn: Turn,
        session: SessionInfo,
        pending: PendingCall,
        result: _Result,
        emit: ProgressFn,
    ) -> _Result:
        channel: Channel = turn.source
        reply = result.reply
        call = pending.call
        tool = self._tools.get(call.tool)
        try:
            if tool is None:
                raise ArgsInvalid([f"unknown tool {call.tool!r}"])
            tool.parse(call.args)
        except ArgsInvalid as exc:
            reply.text = for_channel(
                "That action is no longer valid: " + "; ".join(exc.problems), channel
            )
            reply.actions = [{"tool": call.tool, "status": "invalid"}]
            result.pending = None
            return result
        await emit("calling", self._calling(call))
        if tool.writes and not await self._claim(session, pending):
            return self._already_confirmed(turn, session, pending, result)
        # The executor checks the caller's permission itself: a "yes" from a caller without
        # `write` executes nothing, whoever proposed it.
        out = await self._executor.execute(call, **self._scope(turn, session))
        self._metrics.count_tool_call(tool=call.tool, outcome=out.status)
        await emit("formatting", {"step": "formatting"})
        reply.text = self._say(out, channel)
        reply.actions = [{"tool": call.tool, "status": out.status}]
        planner = str(session.context.get("pending_planner") or "rules")
        reply.planner = planner
        result.outcomes = [out]
        result.audit = (
            [self._audit_item(turn, session, out, item, planner) for item in out.items]
            if out.items
            else [self._audit_outcome(turn, session, out, planner)]
        )
        if tool.writes and out.answered:
            # What "undo" reverses: the created tasks, or the tool alone (a cancel, a message:
            # the answer to "undo" is then an honest "cannot").
            result.context[LAST_WRITE] = {"tool": call.tool, **(out.undo or {})}
        result.context.update(out.context)
        if out.status == "unavailable" and not out.unconfirmed:
            # Nothing changed and the peer may be back in a moment: keep exactly this proposal,
            # so "yes" again retries it instead of "nothing is waiting".
            if tool.writes:
                await self._store.release_proposal(
                    proposal_id=self._proposal_id(pending), session_id=session.session_id
                )
            reply.text += "\n\n" + for_channel(
                "Nothing was changed; say **yes** again to retry, or **no** to drop it.", channel
            )
            reply.pending_confirmation = self.view(pending)
            result.pending = UNSET
        else:
            # Done, refused, or perhaps done (no answer said): it is not offered again.
            result.pending = None
        return result

    async def _started_before(self, turn: Turn, pending: PendingCall | None) -> PendingCall | None:
        """The waiting proposal, when its write was already started: claimed by a turn whose
        record never came (a store failure, a killed process). A "no" then cannot say nothing
        changed, nor another request that it still waits. Not asked for a "yes", whose own
        claim finds it taken. One read, only while a proposal waits."""
        if (
            pending is None
            or pending.missing
            or pending.proposal_id is None
            or answer_of(turn.text) == 1
        ):
            return None
        return pending if await self._store.proposal_claimed(pending.proposal_id) else None

    def _no_longer_waiting(self, started: PendingCall, result: _Result, channel: Channel) -> None:
        tool = self._tools.get(started.call.tool)
        what = tool.summary(started.call.args) if tool is not None else started.call.tool
        note = for_channel(replies.no_longer_waiting(what), channel)
        result.reply.text = f"{note}\n\n{result.reply.text}" if result.reply.text else note
        result.reply.actions.insert(0, {"tool": started.call.tool, "status": "already_confirmed"})
        if isinstance(result.pending, Unset):
            result.pending = None  # stored as waiting until now

    async def _claim(self, session: SessionInfo, pending: PendingCall) -> bool:
        """Take the proposal before its write runs (app/store/claims.py): False when it was
        taken before, by a turn whose record never came (a store failure, a killed process)."""
        return await self._store.claim_proposal(
            proposal_id=self._proposal_id(pending),
            session_id=session.session_id,
            tool=pending.call.tool,
        )

    @staticmethod
    def _proposal_id(pending: PendingCall) -> str:
        # A proposal without an id is never confirmed (_stale_confirmation asks again).
        assert pending.proposal_id is not None
        return pending.proposal_id

    def _already_confirmed(
        self, turn: Turn, session: SessionInfo, pending: PendingCall, result: _Result
    ) -> _Result:
        call = pending.call
        result.reply.text = for_channel(replies.ALREADY_CONFIRMED, turn.source)
        result.reply.actions = [{"tool": call.tool, "status": "already_confirmed"}]
        result.audit = [self._audit(turn, session, call, "declined", "already confirmed")]
        result.pending = None
        return result

    # ---- pieces ------------------------------------------------------------------------------

    @staticmethod
    def _scope(turn: Turn, session: SessionInfo) -> _Scope:
        """Who runs a tool, in which conversation, and where its later news goes."""
        return {
            "caller": turn.caller,
            "trace_id": turn.trace_id,
            "session": session.context,
            "session_key": session.session_id,
            "source": turn.source,
            "route_back": turn.route_back,
        }

    def _explanation(self, turn: Turn, result: _Result) -> dict[str, Any]:
        """What "why?" says about this turn: planner, confidence, each call and its peers."""
        calls = []
        for out in result.outcomes:
            tool = self._tools.get(out.call.tool)
            calls.append(
                {
                    "tool": out.call.tool,
                    "args": out.call.args,
                    "status": out.status,
                    "peers": list(tool.peers) if tool is not None else [],
                    "duration_ms": out.duration_ms,
                }
            )
        for action in result.reply.actions[len(result.outcomes) :]:
            calls.append({"tool": action.get("tool"), "args": {}, "status": action.get("status")})
        return {
            "text": turn.text[:500],
            "planner": result.reply.planner,
            "confidence": result.confidence,
            "trace_id": turn.trace_id,
            "calls": calls,
        }

    def _say(self, out: Outcome, channel: Channel) -> str:
        tool = self._tools.get(out.call.tool)
        if out.answered and tool is not None:
            return for_channel(tool.render(out, channel), channel)
        return replies.failure(tool, out, channel)

    def _calling(self, call: ToolCall) -> dict[str, Any]:
        tool = self._tools.get(call.tool)
        peer = tool.peers[0] if tool is not None and tool.peers else None
        return {
            "step": "calling",
            "tool": call.tool,
            "droplet": _PEER_DROPLET_IDS[peer] if peer else None,
        }

    def _waiting_line(self, pending: PendingCall, channel: Channel) -> str:
        tool = self._tools.get(pending.call.tool)
        what = tool.summary(pending.call.args) if tool else pending.call.tool
        return for_channel(f"(Still waiting for your **yes** or **no** to {what}.)", channel)

    @staticmethod
    def _proposal(
        turn: Turn, call: ToolCall, missing: list[str], *, preview: str | None = None
    ) -> PendingCall:
        """A new proposal: its own id, bound to the identity it is shown to."""
        return PendingCall(
            call=call,
            missing=missing,
            proposal_id=secrets.token_urlsafe(12),
            proposed_by=str(turn.caller.identity),
            preview=preview,
        )

    def _stale_confirmation(
        self, turn: Turn, pending: PendingCall | None, answer: int, channel: Channel
    ) -> str | None:
        """Why a yes/no cannot act on what is waiting, or None when it may.

        A confirmation naming a proposal acts only on that proposal; a waiting proposal acts
        only for the identity it was shown to (and one stored without an id, by an older
        version, must be asked again).
        """
        if turn.proposal_id is not None:
            if pending is None:
                return for_channel(
                    "That proposal is no longer waiting: nothing was changed.", channel
                )
            if pending.proposal_id != turn.proposal_id:
                return for_channel(
                    "That is not the proposal waiting now, so nothing was changed. "
                    + self._waiting_line(pending, channel),
                    channel,
                )
        if pending is None or answer == 0:
            return None
        if pending.proposal_id is None or pending.proposed_by != str(turn.caller.identity):
            return for_channel(
                "That proposal was not made to you, so nothing was changed; "
                "ask for the change yourself.",
                channel,
            )
        return None

    def _audit(
        self,
        turn: Turn,
        session: SessionInfo,
        call: ToolCall,
        outcome: AuditOutcome,
        detail: str | None,
        *,
        planner: str | None = None,
        duration_ms: float | None = None,
    ) -> AuditEntry:
        pending_planner = session.context.get("pending_planner")
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
            planner=planner or str(pending_planner or "rules"),
        )

    def _audit_item(
        self, turn: Turn, session: SessionInfo, out: Outcome, item: Item, planner: str
    ) -> AuditEntry:
        """One record per element of a bulk action: each task's own fate is on file."""
        outcome: AuditOutcome = _ITEM_AUDIT[item.status]
        args: dict[str, Any] = {"task_id": item.id}
        if item.new_id is not None:
            args["new_task_id"] = item.new_id
        detail = item.message or (None if item.status == "done" else item.status)
        return self._audit(
            turn,
            session,
            ToolCall(tool=out.call.tool, args=args),
            outcome,
            detail,
            planner=planner,
            duration_ms=out.duration_ms,
        )

    def _audit_outcome(
        self, turn: Turn, session: SessionInfo, out: Outcome, planner: str
    ) -> AuditEntry:
        outcome: AuditOutcome = (
            "ok" if out.status == "ok" else "degraded" if out.status == "degraded" else "error"
        )
        return self._audit(
            turn,
            session,
            out.call,
            outcome,
            out.message,
            planner=planner,
            duration_ms=out.duration_ms,
        )


_ITEM_AUDIT: dict[ItemStatus, AuditOutcome] = {
    "done": "ok",
    "already_finished": "declined",
    "refused": "declined",
    "failed": "error",
    "unavailable": "error",
}
"""An element the Orchestrator would not act on was declined; one that broke is an error."""


async def _no_progress(_step: str, _data: dict[str, Any]) -> None:
    return None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _readable(tool: str, issues: Sequence[str]) -> str:
    return f"{tool}: {'; '.join(issues) or 'unknown tool'}"
