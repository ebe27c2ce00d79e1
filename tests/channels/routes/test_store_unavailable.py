"""The database going away: chat turns answer 503 in the standard shape (REST) or an error
frame with its code (WebSocket), not a 500; when it comes back, turns go on where they left
off. PostgreSQL sits behind a TCP proxy the test closes, so connections drop and new ones are
refused, as when the server stops."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from app.channels.errors import STORE_UNAVAILABLE
from app.config import Settings
from app.factory import create_app
from tests.e2e.tcp_proxy import TcpProxy

PG = ("127.0.0.1", 5432)


class Database:
    """PostgreSQL reachable on a fixed loopback port only while `up`."""

    def __init__(self) -> None:
        self._listener = self._bind(0)
        self.port = int(self._listener.getsockname()[1])
        self._proxy = TcpProxy(self._listener, upstream=PG)
        self._proxy.start()

    @staticmethod
    def _bind(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        return listener

    def down(self) -> None:
        """Open connections drop and new ones are refused."""
        self._proxy.stop()
        self._listener.close()

    def up(self) -> None:
        self._listener = self._bind(self.port)
        self._proxy = TcpProxy(self._listener, upstream=PG)
        self._proxy.start()

    def close(self) -> None:
        self._proxy.stop()
        self._listener.close()


@pytest.fixture
def database() -> Iterator[Database]:
    db = Database()
    try:
        yield db
    finally:
        db.close()


def _client_on(
    settings: Callable[..., Settings],
    pg_database_url: str,
    database: Database,
    **overrides: Any,
) -> Iterator[Any]:
    """A client of droplet 12 whose PostgreSQL is reached through `database`."""
    url = make_url(pg_database_url).set(port=database.port)
    app = create_app(settings(database_url=url.render_as_string(hide_password=False), **overrides))
    with TestClient(app, client=("127.0.0.1", 50000)) as test_client:
        yield test_client


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], pg_database_url: str, database: Database
) -> Iterator[Any]:
    yield from _client_on(make_settings, pg_database_url, database)


def _chat(client: Any, text: str, session_id: str) -> Any:
    return client.post("/api/chat", json={"message": text, "session_id": session_id})


def test_a_turn_while_the_database_is_down_is_a_503_and_nothing_is_lost(
    client: Any, database: Database
) -> None:
    assert _chat(client, "help", "s-1").status_code == 200
    database.down()
    for session_id in ("s-1", "s-new"):  # held in memory, and one the store must create
        answer = _chat(client, "help", session_id)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["status"] == "error"
        assert body["error"]["code"] == "DEPENDENCY_UNAVAILABLE"
        assert body["error"]["message"] == STORE_UNAVAILABLE
    database.up()
    assert _chat(client, "help", "s-1").status_code == 200
    session = client.get("/api/sessions/s-1")
    assert session.status_code == 200, session.text
    texts = [m["content"] for m in session.json()["history"] if m["role"] == "user"]
    assert texts == ["help", "help"]  # the turn refused while down was not half-stored


def test_a_websocket_turn_while_the_database_is_down_gets_an_error_frame(
    client: Any, database: Database
) -> None:
    with client.websocket_connect("/ws?session_id=w-1") as ws:
        assert ws.receive_json()["type"] == "welcome"
        database.down()
        ws.send_text(json.dumps({"type": "message", "content": "help", "session_id": "w-1"}))
        frames = [ws.receive_json()]
        while frames[-1]["type"] not in ("error", "message"):
            frames.append(ws.receive_json())
        error = frames[-1]
        assert error["type"] == "error", frames
        assert error["code"] == "DEPENDENCY_UNAVAILABLE"
        assert error["error"] == STORE_UNAVAILABLE
        database.up()
        ws.send_text(json.dumps({"type": "message", "content": "help", "session_id": "w-1"}))
        frames = [ws.receive_json()]
        while frames[-1]["type"] not in ("error", "message"):
            frames.append(ws.receive_json())
        assert frames[-1]["type"] == "message", frames


@pytest.fixture
def mesh_client_on(
    mesh_settings: Callable[..., Settings], pg_database_url: str, database: Database
) -> Iterator[Any]:
    """The same, wired to the sandbox mesh. Its peer timeout leaves room for the Orchestrator
    held slow below (1 s an answer): at 2 s, on a loaded machine, the heartbeats and task polls
    sent meanwhile timed out, the Orchestrator's breaker opened, and the write was never sent."""
    yield from _client_on(mesh_settings, pg_database_url, database, peer_timeout_s=6.0)


def _down_once_the_task_is_created(
    database: Database, sandbox: Any
) -> tuple[threading.Thread, Any]:
    """The Orchestrator holds its answers 1 s (the peer timeout here is 6 s); the database goes
    down once the task's creation has reached it, so the turn's record is what fails, after
    the write ran."""
    orchestrator = sandbox.count_requests("orchestrator")
    fault = httpx2.post(
        f"{sandbox.orchestrator_url}/_sandbox/fault", json={"mode": "slow", "delay": 1.0}
    )
    assert fault.status_code == 200

    def down_once_created() -> None:
        deadline = time.monotonic() + 30
        while "POST /tasks" not in orchestrator.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        database.down()

    watcher = threading.Thread(target=down_once_created)
    watcher.start()
    return watcher, orchestrator


CREATE = "create a verification task for droplet 14, priority 3"


def test_a_write_that_ran_before_the_store_failed_is_reported_as_carried_out(
    mesh_client_on: Any, database: Database, sandbox: Any
) -> None:
    client = mesh_client_on
    proposed = _chat(client, CREATE, "w-2")
    assert proposed.status_code == 200 and proposed.json()["pending_confirmation"], proposed.text
    watcher, orchestrator = _down_once_the_task_is_created(database, sandbox)
    answer = _chat(client, "yes", "w-2")
    watcher.join()
    assert orchestrator.requests.count("POST /tasks") == 1
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "DEPENDENCY_UNAVAILABLE"
    assert error["details"] == {"carried_out": ["create_task"]}
    assert error["message"].startswith("Carried out (create_task)")
    assert "another yes will not run it again" in error["message"]
    assert "check the result before repeating it" in error["message"]

    # The database back, the proposal it ran still shows as waiting, but it was claimed.
    database.up()
    fault = httpx2.post(f"{sandbox.orchestrator_url}/_sandbox/fault", json={"mode": "none"})
    assert fault.status_code == 200
    again = _chat(client, "yes", "w-2")
    assert again.status_code == 200, again.text
    assert again.json()["actions"] == [{"tool": "create_task", "status": "already_confirmed"}]
    assert orchestrator.requests.count("POST /tasks") == 1
    assert _chat(client, "yes", "w-2").json()["actions"] == []


def test_a_websocket_write_that_ran_before_the_store_failed_is_reported_as_carried_out(
    mesh_client_on: Any, database: Database, sandbox: Any
) -> None:
    with mesh_client_on.websocket_connect("/ws?session_id=w-3") as ws:
        assert ws.receive_json()["type"] == "welcome"

        def turn(text: str) -> dict[str, Any]:
            ws.send_text(json.dumps({"type": "message", "content": text, "session_id": "w-3"}))
            while True:
                received: dict[str, Any] = ws.receive_json()
                if received["type"] in ("error", "message"):
                    return received

        assert turn(CREATE)["pending_confirmation"]
        watcher, orchestrator = _down_once_the_task_is_created(database, sandbox)
        error = turn("yes")
        watcher.join()
        assert orchestrator.requests.count("POST /tasks") == 1
        assert error["type"] == "error", error
        assert error["code"] == "DEPENDENCY_UNAVAILABLE"
        assert error["carried_out"] == ["create_task"]
        assert error["error"].startswith("Carried out (create_task)")
