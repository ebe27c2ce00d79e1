"""unwatch: stop the caller's watches (by id, task, droplet or all), never anyone else's."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.plan import ToolCall
from app.domain.watch import Watch
from app.store.watches import WatchStore
from app.tools.base import ArgsInvalid
from app.tools.executor import ToolExecutor
from app.tools.unwatch import Unwatch
from tests.tools.support import (
    NOBODY,
    READER,
    TOOLS,
    WRITER,
    LiveMesh,
    WatchDesk,
    assert_speakable,
    mesh_off,
    plain_schema_problems,
    say,
    tool,
    watch_desk,
)

NAME = "unwatch"
UNWATCH = Unwatch()


@pytest.fixture
async def desk(store: WatchStore, live: LiveMesh) -> WatchDesk:
    return watch_desk(store, live)


async def watched(desk: WatchDesk, args: dict[str, Any], *, reader: bool = False) -> Watch:
    out = await desk.run("watch", args, caller=READER if reader else WRITER)
    assert out.status == "ok", out.message
    watch: Watch = out.result
    return watch


async def setup(desk: WatchDesk) -> tuple[list[Watch], list[Watch]]:
    """The operator watches droplet 16, task 5 and (on failure) droplet 14's tasks; the viewer
    watches task 5 and droplet 16 too."""
    mine = [
        await watched(desk, {"droplet_id": 16, "event": "up"}),
        await watched(desk, {"task_id": 5, "event": "done"}),
        await watched(desk, {"droplet_id": 14, "event": "failed"}),
    ]
    theirs = [
        await watched(desk, {"task_id": 5}, reader=True),
        await watched(desk, {"droplet_id": 16}, reader=True),
    ]
    return mine, theirs


async def active(store: WatchStore, owner: str = "user:operator") -> list[Watch]:
    return await store.active(owner=owner)


async def test_by_id(desk: WatchDesk, store: WatchStore, live: LiveMesh) -> None:
    mine, theirs = await setup(desk)
    out = await desk.run(NAME, {"watch_id": mine[1].id})
    assert out.status == "ok", out.message
    assert out.result == [mine[1]]
    assert await active(store) == [mine[0], mine[2]]
    assert await active(store, "user:viewer") == theirs


async def test_another_owners_watch_is_not_stopped_even_by_its_id(
    desk: WatchDesk, store: WatchStore, live: LiveMesh
) -> None:
    mine, theirs = await setup(desk)
    out = await desk.run(NAME, {"watch_id": theirs[0].id})
    assert out.status == "ok"
    assert out.result == []
    assert say(NAME, out.result, "chat") == "No such watch: nothing was stopped."
    assert await active(store, "user:viewer") == theirs
    assert await active(store) == mine


async def test_by_task(desk: WatchDesk, store: WatchStore, live: LiveMesh) -> None:
    mine, theirs = await setup(desk)
    out = await desk.run(NAME, {"task_id": 5})
    assert out.result == [mine[1]]
    assert await active(store) == [mine[0], mine[2]]
    assert await active(store, "user:viewer") == theirs


async def test_by_droplet(desk: WatchDesk, store: WatchStore, live: LiveMesh) -> None:
    mine, theirs = await setup(desk)
    out = await desk.run(NAME, {"droplet_id": 16})
    assert out.result == [mine[0]]
    assert await active(store) == mine[1:]
    assert await active(store, "user:viewer") == theirs


async def test_task_and_droplet_must_both_match(
    desk: WatchDesk, store: WatchStore, live: LiveMesh
) -> None:
    mine, _ = await setup(desk)
    out = await desk.run(NAME, {"task_id": 5, "droplet_id": 16})
    assert out.result == []
    assert await active(store) == mine


@pytest.mark.parametrize("args", [{"all": True}, {}])
async def test_all_of_the_callers_watches(
    desk: WatchDesk, store: WatchStore, live: LiveMesh, args: dict[str, Any]
) -> None:
    mine, theirs = await setup(desk)
    out = await desk.run(NAME, args)
    assert out.result == mine
    assert await active(store) == []
    assert await active(store, "user:viewer") == theirs


async def test_nothing_watched_nothing_stopped(desk: WatchDesk) -> None:
    out = await desk.run(NAME, {"all": True})
    assert out.status == "ok" and out.result == []
    assert say(NAME, [], "voice") == "No such watch: nothing was stopped."


# ---- the answer ----------------------------------------------------------------------------------


async def test_the_answer_for_chat_and_voice(desk: WatchDesk) -> None:
    mine, _ = await setup(desk)
    out = await desk.run(NAME, {"all": True})
    said = say(NAME, out.result, "chat")
    assert said.startswith("Stopped 3 watch")  # the noun is misspelt: see the report
    assert said.endswith(
        ": I won't tell you when droplet 16 is back; when task 5 finishes; "
        "when a task of droplet 14 fails."
    )
    assert say(NAME, out.result, "voice") == said
    assert_speakable(said)
    one = say(NAME, mine[:1], "voice")
    assert one == "Stopped 1 watch: I won't tell you when droplet 16 is back."


async def test_only_five_are_named(desk: WatchDesk) -> None:
    for n in range(1, 8):
        await watched(desk, {"droplet_id": n})
    out = await desk.run(NAME, {})
    said = say(NAME, out.result, "voice")
    assert said.startswith("Stopped 7 watch")
    assert ": I won't tell you when droplet 1 changes status; when droplet 2" in said
    assert said.endswith("when droplet 5 changes status.")
    assert_speakable(said)


# ---- permission, availability, arguments ---------------------------------------------------------


async def test_nobody_without_read_stops_nothing(
    desk: WatchDesk, store: WatchStore, live: LiveMesh
) -> None:
    mine, _ = await setup(desk)
    out = await desk.run(NAME, {"all": True}, caller=NOBODY)
    assert out.status == "forbidden"
    assert await active(store) == mine


async def test_without_a_store_there_are_none_here() -> None:
    bare = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    out = await bare.execute(ToolCall(tool=NAME, args={"all": True}), caller=WRITER, trace_id="t")
    assert (out.status, out.message) == ("invalid", "watches are not kept on this droplet")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"watch_id": 0}, "watch_id: Input should be greater than or equal to 1"),
        ({"task_id": 0}, "task_id: Input should be greater than or equal to 1"),
        ({"droplet_id": -1}, "droplet_id: Input should be greater than or equal to 1"),
        ({"all": "maybe"}, "all: Input should be a valid boolean, unable to interpret input"),
        ({"everyone": True}, "everyone: is not an argument of this tool"),
    ],
)
def test_invalid_arguments_are_refused(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        UNWATCH.parse(args)
    assert problem in caught.value.problems


async def test_an_invalid_call_stops_nothing(
    desk: WatchDesk, store: WatchStore, live: LiveMesh
) -> None:
    mine, _ = await setup(desk)
    out = await desk.run(NAME, {"watch_id": 0})
    assert out.status == "invalid"
    assert await active(store) == mine


def test_schema_and_permission() -> None:
    assert plain_schema_problems(UNWATCH.schema()) == []
    assert tool(NAME).required() == ()
    assert not UNWATCH.writes and UNWATCH.permission == "read"
    assert UNWATCH.allowed(READER) and not UNWATCH.allowed(NOBODY)
