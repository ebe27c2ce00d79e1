"""Every door holds: each numbered attack of the security review, tried as an attacker would.

A production configuration (ENVIRONMENT=production, CHAT_AUTH=jwt, real secrets) served by the
shipped server on a real loopback port, wired to the sandbox mesh. Each test makes the attack
and asserts it fails, and that the legitimate use of the same door still works.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from app.domain.identity import Identity

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

BUILD = "create a build task for droplet 16 priority 9"


class Prod:
    """A production droplet 12 on loopback, and tokens signed by the mesh's key."""

    def __init__(self, app: Any, sandbox: Any) -> None:
        self.url: str = app.url
        self.ws_url = app.url.replace("http://", "ws://") + "/ws"
        self.sandbox = sandbox
        self._key = sandbox.private_key_path.read_bytes()

    def user(self, sub: str, *permissions: str, ttl: float = 600) -> str:
        now = int(time.time())
        claims = {"sub": sub, "permissions": list(permissions), "iat": now, "exp": now + int(ttl)}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def droplet(self, number: int, *permissions: str, ttl: float = 600) -> str:
        token: str = self.sandbox.mint_token(
            droplet_id=number, permissions=list(permissions), ttl=ttl
        )
        return token

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def chat(self, token: str | None, message: str, **extra: Any) -> httpx2.Response:
        headers = self.bearer(token) if token else {}
        return httpx2.post(
            f"{self.url}/api/chat", json={"message": message, **extra}, headers=headers, timeout=20
        )

    def message(
        self,
        text: str,
        *,
        token: str | None = None,
        source: str = "droplet-16",
        message_type: str = "command",
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        all_headers = {**(self.bearer(token) if token else {}), **(headers or {})}
        envelope = {
            "source": source,
            "target": "droplet-12",
            "message_type": message_type,
            "payload": {"message": text},
        }
        return httpx2.post(f"{self.url}/message", json=envelope, headers=all_headers, timeout=20)

    def tasks(self) -> list[dict[str, Any]]:
        token = self.sandbox.mint_token(droplet_id=1, permissions=["read", "admin"])
        body = httpx2.get(
            f"{self.sandbox.orchestrator_url}/tasks",
            params={"limit": 500},
            headers=self.bearer(token),
            timeout=10,
        ).json()
        tasks: list[dict[str, Any]] = body["payload"]["tasks"]
        return tasks

    @contextlib.contextmanager
    def socket(self, token: str | None, query: str = "") -> Iterator[ClientConnection]:
        params = [p for p in (f"token={token}" if token else "", query) if p]
        url = self.ws_url + ("?" + "&".join(params) if params else "")
        with connect(url, open_timeout=10) as ws:
            assert self.receive(ws)["type"] == "welcome"
            yield ws

    @staticmethod
    def receive(ws: ClientConnection, timeout: float = 20) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        return frame

    def until(self, ws: ClientConnection, kind: str) -> dict[str, Any]:
        for _ in range(30):
            frame = self.receive(ws)
            if frame["type"] == kind:
                return frame
        raise AssertionError(f"no {kind} frame")


@pytest.fixture
def production(live_app: Callable[..., Any], sandbox: Any) -> Callable[..., Prod]:
    def start(**overrides: Any) -> Prod:
        values: dict[str, Any] = {
            "environment": "production",
            "chat_auth": "jwt",
            "log_format": "json",
        }
        values.update(overrides)
        return Prod(live_app(**values), sandbox)

    return start


@pytest.fixture
def prod(production: Callable[..., Prod]) -> Prod:
    return production()


# ---- 1. POST /message builds its turn from the caller, not with can_write=True -----------------


def test_1_message_without_write_proposes_and_executes_nothing(prod: Prod) -> None:
    before = len(prod.tasks())
    reader = prod.droplet(16, "read")
    for token in (reader, None):  # a read-only droplet, and no token from an allow-listed address
        proposal = prod.message(BUILD, token=token)
        assert proposal.status_code == 200, proposal.text
        body = proposal.json()["payload"]
        assert body["actions"] == [{"tool": "create_task", "status": "forbidden"}]
        yes = prod.message("yes", token=token).json()["payload"]
        assert "nothing" in yes["response"].lower()
    assert len(prod.tasks()) == before
    # The legitimate use: a droplet with `write` proposes, and its own yes creates the task.
    writer = prod.droplet(16, "read", "write")
    proposed = prod.message(BUILD, token=writer).json()["payload"]
    assert proposed["actions"] == [{"tool": "create_task", "status": "awaiting_confirmation"}]
    done = prod.message("yes", token=writer).json()["payload"]
    assert done["actions"] == [{"tool": "create_task", "status": "ok"}]
    assert len(prod.tasks()) == before + 1


# ---- 2. Behind a proxy the client address comes from trusted proxies only ---------------------


def test_2_forwarded_addresses_are_believed_only_from_configured_proxies(
    production: Callable[..., Prod],
) -> None:
    outside = {"X-Forwarded-For": "203.0.113.7"}
    # The proxy (loopback here) is trusted: the outside client behind it is not allow-listed.
    behind_proxy = production(forwarded_allow_ips=["127.0.0.1"])
    refused = behind_proxy.message("show me all droplets", headers=outside)
    assert refused.status_code == 401
    assert behind_proxy.message("show me all droplets").status_code == 200  # the proxy itself
    # An untrusted sender cannot claim an address: the header is ignored, its own address used.
    nobody_trusted = production(forwarded_allow_ips=[], inbound_allowlist=["203.0.113.0/24"])
    assert nobody_trusted.message("show me all droplets", headers=outside).status_code == 401


def test_2_the_scale_out_compose_file_trusts_only_its_proxy() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: None)
    compose = yaml.load((ROOT / "docker-compose.scale.yml").read_text(), Loader=Loader)
    env = compose["services"]["chat-orchestrator"]["environment"]
    proxy_ip = compose["services"]["proxy"]["networks"]["front"]["ipv4_address"]
    assert env["FORWARDED_ALLOW_IPS"] == proxy_ip
    assert "front" in compose["services"]["chat-orchestrator"]["networks"]
    # No default that would let a proxied outsider in: the operator names the mesh subnet.
    assert env["INBOUND_ALLOWLIST"].startswith("${INBOUND_ALLOWLIST:?")


# ---- 3. /send needs `write`, never loops back, and the audit keeps the real caller ------------


def test_3_send_needs_write_and_keeps_the_caller_in_the_audit(prod: Prod) -> None:
    payload = {"target": 16, "message_type": "command", "payload": {"message": "hi"}}
    for token in (prod.droplet(18, "read"), prod.user("mallory")):
        refused = httpx2.post(f"{prod.url}/send", json=payload, headers=prod.bearer(token))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "FORBIDDEN"
    writer = prod.droplet(18, "read", "write")
    loop = httpx2.post(
        f"{prod.url}/send", json={**payload, "target": 12}, headers=prod.bearer(writer)
    )
    assert loop.status_code == 422
    # Droplet 16 has no endpoint in the sandbox: the Orchestrator cannot deliver (502), and the
    # attempt is audited under the real caller and the trace id the receiver would have seen.
    sent = httpx2.post(f"{prod.url}/send", json=payload, headers=prod.bearer(writer), timeout=20)
    assert sent.status_code == 502, sent.text
    admin = prod.user("root", "read", "admin")
    audit = httpx2.get(
        f"{prod.url}/api/audit", params={"tool": "relay_message"}, headers=prod.bearer(admin)
    ).json()["entries"]
    assert [(e["actor"], e["outcome"]) for e in audit] == [("droplet:18", "error")]
    assert audit[0]["trace_id"] == sent.headers["x-trace-id"]


def test_3_a_command_relayed_back_to_us_cannot_write(prod: Prod) -> None:
    before = len(prod.tasks())
    # What the Orchestrator delivers from another droplet's /send: no token, allow-listed.
    relayed = prod.message(BUILD, source="droplet-10").json()["payload"]
    assert relayed["actions"] == [{"tool": "create_task", "status": "forbidden"}]
    assert prod.message("yes", source="droplet-10").json()["payload"]["actions"] == []
    assert len(prod.tasks()) == before


# ---- 4. follow and ?session_id= stream only the caller's own sessions -------------------------


def test_4_following_another_identitys_session_streams_nothing(prod: Prod) -> None:
    alice, bob = prod.user("alice", "read", "write"), prod.user("bob", "read", "write")
    sid = prod.chat(alice, "hello").json()["session_id"]
    with prod.socket(bob, f"session_id={sid}") as spy:
        spy.send(json.dumps({"type": "follow", "session_id": sid}))
        assert prod.receive(spy)["type"] == "ack"
        secret_turn = prod.chat(alice, BUILD, session_id=sid).json()
        assert secret_turn["pending_confirmation"]["tool"] == "create_task"
        spy.send(json.dumps({"type": "ping"}))
        assert prod.receive(spy)["type"] == "pong"  # nothing of alice's arrived before it
    # The owner's own second tab does follow it.
    with prod.socket(alice, f"session_id={sid}") as tab:
        prod.chat(alice, "list tasks", session_id=sid)
        assert prod.until(tab, "message")["in_reply_to"] == "list tasks"


# ---- 5. Every session has an owner; a yes executes exactly the proposal its sender saw ---------


def test_5_mesh_sessions_are_not_shared_and_a_swapped_proposal_is_not_executed(prod: Prod) -> None:
    # A tokenless mesh message's session cannot be opened by anyone else.
    prod.message("show me all droplets", source="droplet-10")
    admin_less = prod.user("eve", "read", "write")
    for sid in ("droplet-10:message", "task-1"):
        got = httpx2.get(f"{prod.url}/api/sessions/{sid}", headers=prod.bearer(admin_less))
        assert got.status_code == 404
    # A proposal changed after the user saw it is not executed by the yes for the old one.
    before = len(prod.tasks())
    alice = prod.user("alice", "read", "write")
    first = prod.chat(alice, BUILD).json()
    sid, seen = first["session_id"], first["pending_confirmation"]["proposal_id"]
    swapped = prod.chat(alice, "create a deploy task for droplet 14 priority 1", session_id=sid)
    assert swapped.json()["pending_confirmation"]["proposal_id"] != seen
    stale_yes = prod.chat(alice, "yes", session_id=sid, proposal_id=seen).json()
    assert stale_yes["actions"] == []
    assert "not the proposal" in stale_yes["response"]
    assert len(prod.tasks()) == before
    # The yes for the proposal now shown executes exactly that one, once.
    current = stale_yes["pending_confirmation"]["proposal_id"]
    done = prod.chat(alice, "yes", session_id=sid, proposal_id=current).json()
    assert done["actions"] == [{"tool": "create_task", "status": "ok"}]
    again = prod.chat(alice, "yes", session_id=sid, proposal_id=current).json()
    assert again["actions"] == []
    created = prod.tasks()
    assert len(created) == before + 1
    assert max(created, key=lambda t: int(t["id"]))["task_type"] == "deploy"


# ---- 6. A WebSocket lives no longer than its token ---------------------------------------------


def test_6_a_socket_is_closed_when_its_token_expires(prod: Prod) -> None:
    short = prod.user("alice", "read", "write", ttl=2)
    with prod.socket(short) as ws, pytest.raises(ConnectionClosed) as closed:
        while True:
            prod.receive(ws, timeout=15)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert "expired" in closed.value.rcvd.reason


# ---- 7. Request heads are bounded in size and time ---------------------------------------------


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_7_a_huge_header_is_refused_before_it_is_read(prod: Prod) -> None:
    sock = _raw(prod.url)
    # Just past the 32 KiB bound: the server answers 431 and hangs up instead of reading on.
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 48_000)
    refused = sock.recv(4096)
    assert refused.startswith(b"HTTP/1.1 431")
    assert sock.recv(4096) == b""  # closed
    sock.close()
    normal = httpx2.get(f"{prod.url}/health", headers={"X-Note": "n" * 8000})
    assert normal.status_code == 200


def test_7_a_slow_header_is_closed_after_the_header_timeout(
    production: Callable[..., Prod],
) -> None:
    app = production(header_timeout_s=1.0)
    sock = _raw(app.url)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5
    sock.close()
    assert httpx2.get(f"{app.url}/health").status_code == 200


# ---- 8. Events and heartbeats speak only for their sender, and cannot evict real alerts -------


def test_8_forged_events_and_heartbeats_cannot_impersonate_or_evict(prod: Prod) -> None:
    event: dict[str, Any] = {
        "source": "droplet-1",
        "target": "droplet-12",
        "message_type": "event",
        "payload": {
            "event_type": "registry_down",
            "severity": "critical",
            "summary": "REAL: registry disk full",
        },
    }
    mine = prod.droplet(14, "read")
    impostor = httpx2.post(f"{prod.url}/message", json=event, headers=prod.bearer(mine))
    assert impostor.status_code == 403
    beat = {"source": "droplet-1", "message_type": "status", "payload": {"status": "error"}}
    assert (
        httpx2.post(f"{prod.url}/heartbeat", json=beat, headers=prod.bearer(mine)).status_code
        == 403
    )
    real = httpx2.post(
        f"{prod.url}/message", json=event, headers=prod.bearer(prod.droplet(1, "read"))
    )
    assert real.status_code == 202
    forged = {**event, "payload": {**event["payload"], "summary": "FAKE " + "x" * 60_000}}
    started = time.monotonic()
    statuses = [httpx2.post(f"{prod.url}/message", json=forged).status_code for _ in range(200)]
    took = time.monotonic() - started
    # Rate-limited per sender: 120 a minute. The sliding window counter weighs the previous
    # minute by what is left of it, so a burst straddling a minute boundary may get the
    # share of the limit that the burst's own duration earns, and no more.
    assert statuses.count(202) <= 120 + math.ceil(120 * took / 60) + 1 and 429 in statuses
    alice = prod.user("alice", "read")
    answer = prod.chat(alice, "any alerts?").json()["response"]
    assert answer.index("REAL: registry disk full") < answer.index("FAKE")
    assert "unverified" in answer
    assert "x" * 400 not in answer  # bounded


# ---- 9. Everything that costs work is rate-limited; the session quota counts every channel ----


def test_9_analyze_message_send_heartbeat_are_rate_limited(
    production: Callable[..., Prod],
) -> None:
    app = production(chat_rate_limit_per_minute=5, mesh_rate_limit_per_minute=5)
    alice = app.user("alice", "read", "write")
    # A budget of 5 always lets a fresh key's first 5 through; of the next two, at least one is
    # refused (crossing a minute edge lets one more through; see tests/channels/test_rate_limit.py).
    analyses = [
        httpx2.post(
            f"{app.url}/api/analyze", json={"text": "list tasks"}, headers=app.bearer(alice)
        )
        for _ in range(7)
    ]
    codes = [a.status_code for a in analyses]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]
    droplet = app.droplet(16, "read", "write")
    turns = [app.message("hello", token=droplet).status_code for _ in range(7)]
    assert 1 <= turns.count(429) <= 2
    beat = {"source": "droplet-16", "message_type": "status", "payload": {"status": "active"}}
    beats = [
        httpx2.post(f"{app.url}/heartbeat", json=beat, headers=app.bearer(droplet)).status_code
        for _ in range(7)
    ]
    assert beats[:5] == [200] * 5 and 429 in beats
    sends = [
        httpx2.post(
            f"{app.url}/send",
            json={"target": 14, "payload": {}},
            headers=app.bearer(app.droplet(18, "read", "write")),
        ).status_code
        for _ in range(7)
    ]
    assert 429 in sends
    too_many = next(a for a in analyses if a.status_code == 429)
    assert 1 <= int(too_many.headers["retry-after"]) <= 60


def test_9_the_session_quota_is_atomic_and_counts_every_channel(
    production: Callable[..., Prod],
) -> None:
    app = production(max_sessions_per_identity=20)
    token = app.droplet(18, "read")

    def new_session(i: int) -> int:
        if i % 2:
            return app.chat(token, "hello").status_code
        envelope = {
            "source": "18",
            "message_type": "query",
            "payload": {"message": "hello", "metadata": {"user_id": f"u{i}"}},
        }
        return httpx2.post(
            f"{app.url}/api/process", json=envelope, headers=app.bearer(token), timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        codes = list(pool.map(new_session, range(100)))
    assert codes.count(200) == 20
    assert codes.count(429) == 80
    assert app.message("hello", token=token, source="18").status_code == 429


# ---- 10. WebSockets per identity are capped -----------------------------------------------------


def test_10_websockets_per_identity_are_capped(production: Callable[..., Prod]) -> None:
    app = production(max_ws_per_identity=3)
    alice = app.user("alice", "read")
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(app.socket(alice))
        extra = stack.enter_context(connect(f"{app.ws_url}?token={alice}", open_timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                extra.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        stack.enter_context(app.socket(app.user("bob", "read")))  # others are not affected


# ---- 12. No 500 for any input ------------------------------------------------------------------


def test_12_long_session_ids_and_deep_json_get_standard_errors(prod: Prod) -> None:
    token = prod.droplet(18, "read")
    envelope = {
        "source": "18",
        "message_type": "query",
        "payload": {"message": "hello", "session_id": "s" * 200},
    }
    long_id = httpx2.post(f"{prod.url}/api/process", json=envelope, headers=prod.bearer(token))
    assert long_id.status_code == 422
    assert long_id.json()["error"]["code"] == "INVALID_REQUEST"
    deep = '{"message": "hi", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    rest = httpx2.post(
        f"{prod.url}/api/chat",
        content=deep,
        headers={**prod.bearer(token), "Content-Type": "application/json"},
    )
    assert 400 <= rest.status_code < 500
    with prod.socket(token) as ws:
        ws.send('{"type": "message", "content": ' + "[" * 5000 + "]" * 5000 + "}")
        assert prod.receive(ws)["type"] == "error"
        ws.send('{"type": "ping"}')
        assert prod.receive(ws)["type"] == "pong"


# ---- 13, 14. Users and droplets never collide; session ids cannot be squatted or probed -------


def test_13_a_user_named_18_cannot_read_droplet_18s_sessions(prod: Prod) -> None:
    voice = prod.droplet(18, "read")
    envelope = {
        "source": "18",
        "message_type": "query",
        "payload": {"message": "any alerts?", "metadata": {"user_id": "user-voice-77"}},
    }
    made = httpx2.post(f"{prod.url}/api/process", json=envelope, headers=prod.bearer(voice))
    sid = made.json()["payload"]["session_id"]
    assert sid == "droplet-18:user-voice-77"
    as_user = prod.user("18", "read", "write")
    assert (
        httpx2.get(f"{prod.url}/api/sessions/{sid}", headers=prod.bearer(as_user)).status_code
        == 404
    )
    assert (
        httpx2.get(f"{prod.url}/api/sessions/{sid}", headers=prod.bearer(voice)).status_code == 200
    )


def test_14_a_squatted_session_id_does_not_lock_out_its_real_user(prod: Prod) -> None:
    squatter = prod.user("mallory", "read", "write")
    sid = "droplet-18:user-voice-77"
    assert prod.chat(squatter, "I was here first", session_id=sid).status_code == 200
    voice = prod.droplet(18, "read")
    envelope = {
        "source": "18",
        "message_type": "query",
        "payload": {"message": "hello", "metadata": {"user_id": "user-voice-77"}},
    }
    turn = httpx2.post(f"{prod.url}/api/process", json=envelope, headers=prod.bearer(voice))
    assert turn.status_code == 200
    history = httpx2.get(f"{prod.url}/api/sessions/{sid}", headers=prod.bearer(voice)).json()
    assert next(h["content"] for h in history["history"]) == "hello"
    # "exists but not yours" and "does not exist" are the same answer.
    eve = prod.user("eve", "read")
    theirs = httpx2.get(f"{prod.url}/api/sessions/{sid}", headers=prod.bearer(eve))
    absent = httpx2.get(f"{prod.url}/api/sessions/no-such-thing", headers=prod.bearer(eve))
    assert theirs.status_code == absent.status_code == 404
    assert theirs.json()["error"]["code"] == absent.json()["error"]["code"] == "NOT_FOUND"


# ---- 15. Production refuses weak settings ------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DROPLET_SECRET": "a"}, "DROPLET_SECRET"),
        ({"LLM_API_KEY": "your-llm-api-key"}, "LLM_API_KEY"),
        ({"CHAT_AUTH": "none"}, "CHAT_AUTH"),
        ({"CORS_ORIGINS": "null"}, "CORS_ORIGINS"),
    ],
)
def test_15_production_refuses_to_start_with_weak_settings(
    env: dict[str, str], variable: str, tmp_path: Path
) -> None:
    from app.config import Settings

    clean = {
        k: v
        for k, v in __import__("os").environ.items()
        if k.upper() not in {f.upper() for f in Settings.model_fields}
    }
    values = {
        **clean,
        "ENVIRONMENT": "production",
        "DROPLET_SECRET": "k7Qp2vX9mL4tR8wZ",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.main"],
        cwd=tmp_path,
        env=values,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"configuration error: {variable}")


# ---- 16. `read` is checked -----------------------------------------------------------------------


def test_16_a_token_without_read_reads_nothing(prod: Prod) -> None:
    empty = prod.user("nobody")
    assert prod.chat(empty, "show me all droplets").status_code == 403
    envelope = {"source": "18", "message_type": "query", "payload": {"message": "any alerts?"}}
    assert (
        httpx2.post(
            f"{prod.url}/api/process", json=envelope, headers=prod.bearer(empty)
        ).status_code
        == 403
    )
    assert (
        httpx2.post(
            f"{prod.url}/api/analyze", json={"text": "list tasks"}, headers=prod.bearer(empty)
        ).status_code
        == 403
    )
    with pytest.raises(InvalidStatus), prod.socket(empty):  # refused before the handshake
        pass
    reader = prod.user("reader", "read")
    assert prod.chat(reader, "show me all droplets").json()["actions"] == [
        {"tool": "list_droplets", "status": "ok"}
    ]


# ---- Also: operator endpoints, token lifetime, the page's confirm --------------------------------


def test_docs_and_metrics_are_not_public_in_production(prod: Prod) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx2.get(f"{prod.url}{path}").status_code == 404
    for path in ("/metrics", "/ws/connections"):
        assert httpx2.get(f"{prod.url}{path}").status_code == 401
        user = prod.user("alice", "read", "write")
        assert httpx2.get(f"{prod.url}{path}", headers=prod.bearer(user)).status_code == 403
        admin = prod.user("root", "read", "admin")
        assert httpx2.get(f"{prod.url}{path}", headers=prod.bearer(admin)).status_code == 200


def test_a_token_that_never_expires_is_refused(prod: Prod) -> None:
    forever = prod.user("alice", "read", ttl=10**10)
    refused = prod.chat(forever, "hello")
    assert refused.status_code == 401
    assert "lifetime" in refused.json()["error"]["message"]


def test_the_confirm_frame_executes_the_proposal_it_names(prod: Prod) -> None:
    before = len(prod.tasks())
    alice = prod.user("alice", "read", "write")
    with prod.socket(alice) as ws:
        ws.send(json.dumps({"type": "message", "content": BUILD, "session_id": "page-1"}))
        proposal = prod.until(ws, "message")["pending_confirmation"]
        ws.send(
            json.dumps(
                {"type": "confirm", "session_id": "page-1", "proposal_id": "not-the-one-you-saw"}
            )
        )
        assert prod.until(ws, "message")["actions"] == []
        ws.send(
            json.dumps(
                {"type": "confirm", "session_id": "page-1", "proposal_id": proposal["proposal_id"]}
            )
        )
        assert prod.until(ws, "message")["actions"] == [{"tool": "create_task", "status": "ok"}]
    assert len(prod.tasks()) == before + 1


def test_identity_kinds_have_distinct_namespaces() -> None:
    assert Identity("user", "18").namespace != Identity("droplet", "18").namespace


# ---- 17. A watch's notification reaches its owner only (issue 16's frames) ------------------


def test_17_a_watch_notification_reaches_only_its_owner(
    production: Callable[..., Prod],
) -> None:
    prod = production(watch_check_interval_s=0.2)
    maker = prod.droplet(41, "read", "write")
    created = httpx2.post(
        f"{prod.sandbox.orchestrator_url}/tasks",
        json={
            "task_type": "verify",
            "title": "Watched",
            "priority": 4,
            "required_capability": "nobody_has_this",
            "payload": {"target_droplet_id": 14},
        },
        headers=prod.bearer(maker),
        timeout=10,
    )
    created.raise_for_status()
    task_id = int(created.json()["payload"]["task_id"])
    alice, bob = prod.user("alice", "read", "write"), prod.user("bob", "read", "write")
    sid = prod.chat(alice, f"tell me when task {task_id} is done").json()["session_id"]
    with (
        prod.socket(bob, f"session_id={sid}") as spy,
        prod.socket(alice, f"session_id={sid}") as tab,
    ):
        httpx2.delete(
            f"{prod.sandbox.orchestrator_url}/tasks/{task_id}",
            headers=prod.bearer(maker),
            timeout=10,
        ).raise_for_status()
        note = prod.until(tab, "notification")
        assert f"Task {task_id}" in note["text"]
        spy.send(json.dumps({"type": "ping"}))
        assert prod.receive(spy)["type"] == "pong"  # nothing of alice's arrived before it
