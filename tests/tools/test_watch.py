"""watch: stored for its owner and session in the real watch store, bounded, said plainly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.domain.plan import ToolCall
from app.domain.watch import Watch
from app.store.watches import WatchStore
from app.tools.base import ArgsInvalid, Outcome
from app.tools.executor import ToolExecutor
from app.tools.watch import WatchTool
from tests.tools.support import (
    NOBODY,
    READER,
    READER_SESSION,
    TOOLS,
    WRITER,
    WRITER_SESSION,
    LiveMesh,
    assert_speakable,
    mesh_off,
    plain_schema_problems,
    say,
    tool,
    watch_desk,
)

NAME = "watch"
WATCH = WatchTool()
DAY = 24 * 3600


# ---- stored for the caller and its session -------------------------------------------------------


async def test_a_droplet_watch_is_stored_for_the_caller_and_session(
    store: WatchStore, live: LiveMesh
) -> None:
    desk = watch_desk(store, live, ttl_s=DAY)
    out = await desk.run(NAME, {"droplet_id": 16, "event": "up"})
    assert out.status == "ok", out.message
    watch: Watch = out.result
    assert watch.id is not None
    assert (watch.owner, watch.session_key, watch.source) == (
        "user:operator",
        WRITER_SESSION,
        "chat",
    )
    assert (watch.droplet_id, watch.task_id, watch.event) == (16, None, "up")
    assert watch.expires_at - watch.created_at == timedelta(seconds=DAY)
    assert watch.route_back is None and watch.fired_at is None
    assert out.context == {"last_droplet_id": 16}
    assert await store.active(owner="user:operator") == [watch]
    assert await store.active(owner="user:viewer") == []


async def test_a_task_watch_from_voice_keeps_its_route_back(
    store: WatchStore, live: LiveMesh
) -> None:
    desk = watch_desk(store, live)
    out = await desk.run(
        NAME, {"task_id": 5, "event": "done"}, source="voice", route_back="droplet-18"
    )
    assert out.status == "ok", out.message
    stored = await store.active(owner="user:operator")
    assert stored == [out.result]
    assert (stored[0].source, stored[0].route_back) == ("voice", "droplet-18")
    assert (stored[0].task_id, stored[0].event) == (5, "done")
    assert stored[0].last_seen == "pending"  # the baseline a change is measured from
    assert out.context == {"last_task_id": 5}


@pytest.mark.parametrize(
    ("args", "event", "described"),
    [
        ({}, "failed", "any task fails"),
        ({"event": "change"}, "failed", "any task fails"),
        ({"event": "up"}, "failed", "any task fails"),
        ({"event": "done"}, "done", "any task finishes"),
        ({"task_id": 5}, "change", "task 5 changes status"),
        ({"task_id": 5, "event": "failed"}, "failed", "task 5 fails"),
        ({"droplet_id": 16}, "change", "droplet 16 changes status"),
        ({"droplet_id": 16, "event": "down"}, "down", "droplet 16 goes down"),
        ({"droplet_id": 14, "event": "failed"}, "failed", "a task of droplet 14 fails"),
    ],
)
async def test_the_event_and_what_it_means(
    store: WatchStore, live: LiveMesh, args: dict[str, Any], event: str, described: str
) -> None:
    out = await watch_desk(store, live).run(NAME, args)
    assert out.status == "ok", out.message
    assert out.result.event == event
    assert out.result.describe() == described
    assert [w.event for w in await store.active(owner="user:operator")] == [event]


async def test_a_reader_may_watch_in_its_own_session(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live).run(NAME, {"droplet_id": 16}, caller=READER)
    assert out.status == "ok", out.message
    assert [(w.owner, w.session_key) for w in await store.active(owner="user:viewer")] == [
        ("user:viewer", READER_SESSION)
    ]


async def test_nobody_without_read_may_not(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live).run(NAME, {"droplet_id": 16}, caller=NOBODY)
    assert out.status == "forbidden"
    assert await store.active(owner="anonymous:nobody") == []


# ---- the limit -----------------------------------------------------------------------------------


async def test_the_limit_per_identity(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live, max_watches=2)
    for task_id in (1, 2):
        assert (await desk.run(NAME, {"task_id": task_id})).status == "ok"
    third = await desk.run(NAME, {"task_id": 3})
    assert third.status == "invalid"  # our limit, not the mesh's refusal
    assert third.message == "you already have 2 watches; stop one first"
    assert third.result is None and third.context == {}
    assert [w.task_id for w in await store.active(owner="user:operator")] == [1, 2]
    # Another identity has its own budget.
    assert (await desk.run(NAME, {"task_id": 3}, caller=READER)).status == "ok"


# ---- where watches are not available -------------------------------------------------------------


async def test_without_a_store_or_a_session_there_is_no_watch(
    store: WatchStore, live: LiveMesh
) -> None:
    bare = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    out = await bare.execute(
        ToolCall(tool=NAME, args={"droplet_id": 16}),
        caller=WRITER,
        trace_id="trace-tools-test",
        session_key=WRITER_SESSION,
    )
    assert (out.status, out.message) == ("invalid", "watches are not kept on this droplet")
    no_session = await watch_desk(store, live).executor.execute(
        ToolCall(tool=NAME, args={"droplet_id": 16}), caller=WRITER, trace_id="trace-tools-test"
    )
    assert (no_session.status, no_session.message) == (
        "invalid",
        "watches are not kept on this droplet",
    )
    assert await store.active(owner="user:operator") == []


# ---- the answer ----------------------------------------------------------------------------------


async def test_the_answer_for_chat_and_voice(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live, ttl_s=DAY).run(NAME, {"droplet_id": 16, "event": "up"})
    watch_id = out.result.id
    assert say(NAME, out.result, "chat") == (
        f"👀 I'll tell you when droplet 16 is back (watch **{watch_id}**, for the next 24 h). "
        "Say **what am I watching?** to see your watches."
    )
    voice = say(NAME, out.result, "voice")
    assert voice == "Okay, I'll tell you when droplet 16 is back. I'll watch for 24 hours."
    assert_speakable(voice)


async def test_a_short_watch_is_said_as_at_least_an_hour(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live, ttl_s=1800).run(NAME, {})
    assert say(NAME, out.result, "voice").startswith(
        "Okay, I'll tell you when any task fails. I'll watch for 1 hour"  # "hours": see report
    )
    assert "for the next 1 h" in say(NAME, out.result, "chat")


# ---- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            {"event": "explodes"},
            "event: Input should be 'up', 'down', 'change', 'done' or 'failed'",
        ),
        ({"droplet_id": 0}, "droplet_id: Input should be greater than or equal to 1"),
        ({"task_id": 0}, "task_id: Input should be greater than or equal to 1"),
        ({"until": "tomorrow"}, "until: is not an argument of this tool"),
    ],
)
def test_invalid_arguments_are_refused(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        WATCH.parse(args)
    assert problem in caught.value.problems


async def test_an_invalid_call_stores_nothing(store: WatchStore, live: LiveMesh) -> None:
    out: Outcome = await watch_desk(store, live).run(NAME, {"event": "explodes"})
    assert out.status == "invalid"
    assert await store.active(owner="user:operator") == []


def test_schema_and_defaults() -> None:
    schema = WATCH.schema()
    assert plain_schema_problems(schema) == []
    assert "required" not in schema
    assert schema["properties"]["event"]["default"] == "change"
    assert tool(NAME).slots["event"].default == "change"
    assert not WATCH.writes and WATCH.permission == "read"
    assert WATCH.peers == ("orchestrator",)  # a task watch looks the task up
