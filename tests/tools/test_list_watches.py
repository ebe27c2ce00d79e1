"""list_watches: the caller's active watches, from the real watch store."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.plan import ToolCall
from app.domain.watch import Watch
from app.store.watches import WatchStore
from app.tools.base import ArgsInvalid
from app.tools.executor import ToolExecutor
from app.tools.list_watches import ListWatches
from app.utils.markup import when
from app.utils.time import utcnow
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
    watch_desk,
)

NAME = "list_watches"
LIST = ListWatches()


async def watched(desk: WatchDesk, *calls: dict[str, Any], reader: bool = False) -> list[Watch]:
    made = []
    for args in calls:
        out = await desk.run("watch", args, caller=READER if reader else WRITER)
        assert out.status == "ok", out.message
        made.append(out.result)
    return made


async def test_only_the_callers_watches_are_listed(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live)
    mine = await watched(desk, {"droplet_id": 16, "event": "up"}, {"task_id": 5, "event": "done"})
    theirs = await watched(desk, {"droplet_id": 14, "event": "down"}, reader=True)
    out = await desk.run(NAME)
    assert out.status == "ok", out.message
    assert out.result == mine
    viewer = await desk.run(NAME, caller=READER)
    assert viewer.result == theirs


async def test_the_list_for_chat_and_voice(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live)
    first, second = await watched(
        desk, {"droplet_id": 16, "event": "up"}, {"task_id": 5, "event": "done"}
    )
    listed = (await desk.run(NAME)).result
    head, lines = say(NAME, listed, "chat").split("\n\n")
    assert head == "**2 watches**:"
    assert lines == (
        f"- **{first.id}**: when droplet 16 is back (until {when(first.expires_at)})\n"
        f"- **{second.id}**: when task 5 finishes (until {when(second.expires_at)})"
    )
    voice = say(NAME, listed, "voice")
    assert voice.startswith("Two watch")
    assert voice.endswith(": I'll tell you when droplet 16 is back; when task 5 finishes.")
    assert_speakable(voice)


async def test_voice_reads_at_most_five(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live)
    await watched(desk, *({"droplet_id": n} for n in range(1, 8)))
    listed = (await desk.run(NAME)).result
    assert len(listed) == 7
    voice = say(NAME, listed, "voice")
    assert voice.startswith("Seven watch")
    assert ": I'll tell you when droplet 1 changes status; when droplet 2" in voice
    assert voice.endswith("when droplet 5 changes status.")
    assert_speakable(voice)
    assert say(NAME, listed, "chat").count("\n- **") == 7


async def test_nothing_watched(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live).run(NAME)
    assert out.status == "ok" and out.result == []
    said = "You are not watching anything. Say, for example, tell me when droplet 16 is back."
    assert say(NAME, [], "chat") == said
    assert say(NAME, [], "voice") == said
    assert_speakable(said)


async def test_fired_and_expired_watches_are_not_listed(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live)
    fired, kept = await watched(desk, {"task_id": 1}, {"task_id": 2})
    assert fired.id is not None
    assert await store.claim(fired.id, now=utcnow())
    expired = await watch_desk(store, live, ttl_s=0).run("watch", {"task_id": 3})
    assert expired.status == "ok"
    assert (await desk.run(NAME)).result == [kept]


async def test_without_a_store_there_are_none_here() -> None:
    bare = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    out = await bare.execute(ToolCall(tool=NAME, args={}), caller=WRITER, trace_id="t")
    assert (out.status, out.message) == ("invalid", "watches are not kept on this droplet")


async def test_nobody_without_read_sees_nothing(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live).run(NAME, caller=NOBODY)
    assert out.status == "forbidden"
    assert out.result is None


def test_it_takes_no_argument() -> None:
    assert plain_schema_problems(LIST.schema()) == []
    assert LIST.schema()["properties"] == {}
    with pytest.raises(ArgsInvalid) as caught:
        LIST.parse({"owner": "user:someone"})
    assert caught.value.problems == ["owner: is not an argument of this tool"]
    assert not LIST.writes and LIST.permission == "read"
