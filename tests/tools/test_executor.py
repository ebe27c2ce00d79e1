"""The executor: permission, typed arguments, a timeout, and peer errors turned into statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from app.domain.identity import Caller, Identity
from app.domain.plan import ToolCall
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.tools.base import Channel, Outcome, OutcomeStatus, Peer, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.executor import ToolExecutor
from app.tools.registry import ToolRegistry
from sandbox.testing import MeshHandle
from tests.mesh.support import set_fault
from tests.tools.support import (
    NOBODY,
    READER,
    TOOLS,
    WRITER,
    live_mesh,
    mesh_off,
)

Behaviour = Callable[[RunContext, Outcome], Awaitable[None]]
ADMIN = Caller(Identity("user", "root"), frozenset({"admin"}))


class ProbeArgs(ToolArgs):
    count: int = 1


class Probe(Tool[ProbeArgs]):
    """A tool that does whatever the test says, and remembers how it was run."""

    name = "probe"
    description = "Does what the test tells it."
    Args = ProbeArgs
    peers: ClassVar[tuple[Peer, ...]] = ("orchestrator",)

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour
        self.runs: list[tuple[ProbeArgs, RunContext]] = []

    async def run(self, args: ProbeArgs, ctx: RunContext, out: Outcome) -> None:
        self.runs.append((args, ctx))
        if self.behaviour is not None:
            await self.behaviour(ctx, out)

    def render(self, out: Outcome, channel: Channel) -> str:
        return "probed"


class WriteProbe(Probe):
    name = "write_probe"
    writes = True
    permission = "write"


class LocalProbe(Probe):
    name = "local_probe"
    peers = ()


class WideProbe(Probe):
    name = "wide_probe"
    peers = ("registry", "orchestrator")


def executor_for(
    *tools: Probe,
    timeout_s: float = 5.0,
    observe: Callable[[str, float], None] | None = None,
) -> ToolExecutor:
    return ToolExecutor(
        tools=ToolRegistry(list(tools)),
        mesh=mesh_off(),
        timeout_s=timeout_s,
        observe_upstream=observe,
    )


async def call(
    executor: ToolExecutor,
    tool: str,
    args: dict[str, Any] | None = None,
    *,
    caller: Caller = WRITER,
    session: dict[str, Any] | None = None,
) -> Outcome:
    return await executor.execute(
        ToolCall(tool=tool, args=args or {}), caller=caller, trace_id="trace-1", session=session
    )


# ---- before running ------------------------------------------------------------------------------


async def test_an_unknown_tool_is_invalid() -> None:
    out = await call(executor_for(Probe()), "format_disk")
    assert out.status == "invalid"
    assert out.message == "unknown tool 'format_disk'"
    assert not out.answered


async def test_a_write_without_the_permission_is_forbidden_and_never_runs() -> None:
    probe = WriteProbe()
    out = await call(executor_for(probe), "write_probe", caller=READER)
    assert out.status == "forbidden"
    assert out.message == "that needs the 'write' permission"
    assert probe.runs == []


async def test_a_read_without_any_permission_is_forbidden() -> None:
    probe = Probe()
    out = await call(executor_for(probe), "probe", caller=NOBODY)
    assert out.status == "forbidden"
    assert out.message == "that needs the 'read' permission"
    assert probe.runs == []


async def test_admin_may_do_anything() -> None:
    probe = WriteProbe()
    out = await call(executor_for(probe), "write_probe", caller=ADMIN)
    assert out.status == "ok"
    assert len(probe.runs) == 1


async def test_the_real_write_tools_check_the_caller() -> None:
    executor = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    for name in ("create_task", "cancel_task", "send_message"):
        out = await call(executor, name, {"task_id": 7}, caller=READER)
        assert out.status == "forbidden", name


async def test_invalid_arguments_are_invalid_and_never_run() -> None:
    probe = Probe()
    out = await call(executor_for(probe), "probe", {"count": "many", "extra": 1})
    assert out.status == "invalid"
    assert out.message is not None
    assert "count: Input should be a valid integer" in out.message
    assert "extra: is not an argument of this tool" in out.message
    assert probe.runs == []


# ---- running -------------------------------------------------------------------------------------


async def test_the_tool_gets_typed_arguments_and_its_context() -> None:
    probe = Probe()
    session = {"last_task_id": 7}
    out = await call(executor_for(probe), "probe", {"count": 3}, session=session)
    assert out.status == "ok"
    ((args, ctx),) = probe.runs
    assert args == ProbeArgs(count=3)
    assert ctx.caller == WRITER
    assert ctx.trace_id == "trace-1"
    assert ctx.session == session
    assert out.call == ToolCall(tool="probe", args={"count": 3})


async def test_the_duration_is_measured() -> None:
    async def slow(_ctx: RunContext, _out: Outcome) -> None:
        await asyncio.sleep(0.03)

    out = await call(executor_for(Probe(slow)), "probe")
    assert out.duration_ms >= 20


async def test_a_tool_that_never_answers_times_out_as_unavailable() -> None:
    async def hang(_ctx: RunContext, _out: Outcome) -> None:
        await asyncio.Event().wait()

    out = await call(executor_for(Probe(hang), timeout_s=0.05), "probe")
    assert out.status == "unavailable"
    assert out.message == "the mesh did not answer within 0.05 seconds"


async def test_a_mesh_that_never_answers_times_out(sandbox: MeshHandle) -> None:
    async with live_mesh(sandbox, timeout_s=0.1) as live:
        await set_fault(sandbox.orchestrator_url, "slow", delay=0.5)
        try:
            out = await live.run("task_status", {"task_id": 1})
        finally:
            await set_fault(sandbox.orchestrator_url, "none")
    assert out.status == "unavailable"
    assert out.message == "the mesh did not answer within 0.1 seconds"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PeerNotFound("orchestrator", "task 9 does not exist", status_code=404), "not_found"),
        (PeerRejected("orchestrator", "task 9 can no longer be cancelled"), "rejected"),
        (PeerUnavailable("registry", "the Registry is unreachable"), "unavailable"),
        (PeerError("orchestrator", "something odd happened"), "error"),
    ],
)
async def test_peer_errors_become_statuses(error: PeerError, status: OutcomeStatus) -> None:
    async def fail(_ctx: RunContext, _out: Outcome) -> None:
        raise error

    out = await call(executor_for(Probe(fail)), "probe")
    assert out.status == status
    assert out.message == error.message
    assert out.peer == error.peer
    assert not out.answered


async def test_a_mesh_that_is_not_configured_is_unavailable() -> None:
    executor = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    expected = "the mesh is not configured on this droplet (MESH_ENABLED=false)"
    for name, args in (
        ("list_droplets", {}),
        ("droplet_status", {"droplet_id": 14}),
        ("task_status", {"task_id": 7}),
        ("system_status", {}),
        ("create_task", {"task_type": "build", "payload": {"target_droplet_id": 3}}),
    ):
        out = await call(executor, name, args)
        assert (out.status, out.message) == ("unavailable", expected), name
    assert (await call(executor, "system_alerts")).status == "ok"


async def test_live_peer_errors_become_statuses(sandbox: MeshHandle) -> None:
    async with live_mesh(sandbox) as live:
        missing = await live.run("task_status", {"task_id": 9999})
        refused = await live.run("cancel_task", {"task_id": 1})
        sandbox.stop_orchestrator()
        down = await live.run("task_status", {"task_id": 1})
    assert (missing.status, missing.peer) == ("not_found", "orchestrator")
    assert (refused.status, refused.peer) == ("rejected", "orchestrator")
    assert (down.status, down.peer) == ("unavailable", "orchestrator")


# ---- observing -----------------------------------------------------------------------------------


async def test_peer_latency_is_observed_per_peer() -> None:
    seen: list[str] = []

    def observe(peer: str, seconds: float) -> None:
        assert seconds >= 0
        seen.append(peer)

    executor = executor_for(Probe(), WideProbe(), LocalProbe(), observe=observe)
    await call(executor, "probe")
    await call(executor, "wide_probe")
    await call(executor, "local_probe")
    assert seen == ["orchestrator", "registry+orchestrator"]


async def test_nothing_is_observed_for_calls_that_never_ran() -> None:
    seen: list[str] = []
    executor = executor_for(WriteProbe(), observe=lambda peer, _s: seen.append(peer))
    await call(executor, "write_probe", caller=READER)
    await call(executor, "write_probe", {"count": "x"})
    await call(executor, "nope")
    assert seen == []


def test_the_executor_exposes_its_tools() -> None:
    executor = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    assert executor.tools is TOOLS
