"""The hub: frames reach each connection in order, idle connections hold no task, a client
that falls behind is disconnected, queued frames are still written when a socket leaves."""

from __future__ import annotations

import asyncio

from app.channels.ws_hub import CLOSE_TOO_SLOW, Connection, WebSocketHub


class Client:
    def __init__(self, *, stall: asyncio.Event | None = None, fail: bool = False) -> None:
        self.received: list[str] = []
        self.closed: list[tuple[int, str]] = []
        self._stall = stall
        self._fail = fail

    async def send_text(self, text: str) -> None:
        if self._fail:
            raise ConnectionError("gone")
        if self._stall is not None:
            await self._stall.wait()
        self.received.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


def connect(hub: WebSocketHub, client: Client, owner: str | None = "user:a") -> Connection:
    return hub.register(send_text=client.send_text, close=client.close, owner=owner)


def held(conn: Connection) -> tuple[object, object]:
    """What an idle connection should not hold: a writer task, a buffer."""
    return conn.writer, conn.pending


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_arrive_in_order_and_an_idle_connection_holds_no_task() -> None:
    hub = WebSocketHub()
    client = Client()
    conn = connect(hub, client)
    assert held(conn) == (None, None)
    for n in range(5):
        assert hub.send(conn, {"n": n})
    assert conn.writer is not None
    await settle()
    assert [int(t.split(":")[1].strip(" }")) for t in client.received] == [0, 1, 2, 3, 4]
    assert held(conn) == (None, None)  # idle again: nothing held


async def test_mesh_events_reach_everyone_and_session_frames_only_followers() -> None:
    hub = WebSocketHub()
    a, b = Client(), Client()
    ca, cb = connect(hub, a), connect(hub, b, owner="user:b")
    hub.follow(ca, "user:a/main", "main")
    await hub.dispatch({"kind": "mesh", "frame": {"type": "mesh_event"}})
    await hub.dispatch(
        {"kind": "session", "session_key": "user:a/main", "frame": {"type": "reply"}}
    )
    await settle()
    assert [len(a.received), len(b.received)] == [2, 1]
    assert "reply" not in b.received[0]
    assert cb.session_key is None


async def test_a_client_that_falls_behind_is_disconnected_not_buffered_without_end() -> None:
    hub = WebSocketHub(queue_size=3)
    stall = asyncio.Event()
    slow = Client(stall=stall)
    conn = connect(hub, slow)
    results = [hub.send(conn, {"n": n}) for n in range(5)]
    await settle()
    assert results == [True, True, True, False, False]
    assert slow.closed and slow.closed[0][0] == CLOSE_TOO_SLOW
    assert hub.count() == 0 and hub.count_for("user:a") == 0
    stall.set()


async def test_queued_frames_are_written_when_the_socket_leaves() -> None:
    hub = WebSocketHub()
    client = Client()
    conn = connect(hub, client)
    hub.send(conn, {"last": "words"})
    await hub.unregister(conn)
    assert len(client.received) == 1
    assert hub.send(conn, {"after": "leaving"}) is False
    assert (*held(conn), hub.count()) == (None, None, 0)


async def test_a_failing_socket_stops_quietly_and_takes_nothing_more() -> None:
    hub = WebSocketHub()
    broken = Client(fail=True)
    conn = connect(hub, broken)
    assert hub.send(conn, {"n": 1})
    await settle()
    assert conn.gone and conn.writer is None
    assert hub.send(conn, {"n": 2}) is False
    assert broken.closed == []  # the reader side unregisters it


class Direct:
    """A socket the server can write to at once, until `full` (its buffer is over the mark)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.full = False

    def write_now(self, data: bytes) -> bool:
        if self.full:
            return False
        self.written.append(data)
        return True


async def test_an_event_is_written_to_every_socket_at_once_serialised_once() -> None:
    hub = WebSocketHub()
    sockets = [(Client(), Direct()) for _ in range(50)]
    conns = [
        hub.register(send_text=c.send_text, close=c.close, owner=None, write_now=d.write_now)
        for c, d in sockets
    ]
    await hub.dispatch({"kind": "mesh", "frame": {"type": "mesh_event", "n": 1}})
    # Written during the dispatch itself: no writer task, nothing buffered.
    assert all(held(conn) == (None, None) for conn in conns)
    frames = [d.written for _, d in sockets]
    assert all(len(f) == 1 for f in frames)
    assert len({id(f[0]) for f in frames}) == 1  # one encoded frame shared by all
    assert b'"n": 1' in frames[0][0]
    assert all(c.received == [] for c, _ in sockets)


async def test_a_socket_that_cannot_take_a_frame_now_gets_it_through_the_writer_in_order() -> None:
    hub = WebSocketHub()
    client, direct = Client(), Direct()
    conn = hub.register(
        send_text=client.send_text, close=client.close, owner=None, write_now=direct.write_now
    )
    assert hub.send(conn, {"n": 0})
    direct.full = True
    assert hub.send(conn, {"n": 1})
    direct.full = False
    assert hub.send(conn, {"n": 2})  # queued behind 1, not written ahead of it
    assert conn.writer is not None
    await settle()
    assert len(direct.written) == 1 and '"n": 0' in direct.written[0].decode()
    assert ['"n": 1' in t for t in client.received] == [True, False]
    assert '"n": 2' in client.received[1]
    assert held(conn) == (None, None)
    assert hub.send(conn, {"n": 3})  # idle again: straight through
    assert len(direct.written) == 2
