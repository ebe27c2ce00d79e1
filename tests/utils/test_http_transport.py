"""Outbound HTTP through httpx2 on aiohttp's connections: requests leave exactly as httpx2
built them, connections are kept alive but never reused once the peer closed them, and every
failure arrives as the httpx2 error callers catch."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.config import Settings
from app.conversation.planners.llm_http import new_client
from app.utils.http_transport import AiohttpTransport, SharedTls, outbound_client, parsed_url
from app.wiring.mesh import build_mesh
from tests.fakes.certs import self_signed
from tests.fakes.fixed_answer import answer, fixed_answer

BODY = b'{"status":"ok"}'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable in the environment (a client would go through it instead)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass
class Seen:
    """What a recording server saw: each request's raw bytes and the client port it came from."""

    requests: list[bytes] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def _recording(
    response: bytes = answer(BODY), *, per_connection: int | None = None
) -> AsyncIterator[tuple[str, Seen]]:
    """Answers every request with `response` (no "connection: close": the client keeps the
    connection), closing a connection after `per_connection` requests when given."""
    seen = Seen()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("peername")[1]
        served = 0
        try:
            while per_connection is None or served < per_connection:
                seen.requests.append(await _read_request(reader))
                seen.ports.append(port)
                writer.write(response)
                await writer.drain()
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            seen.closed.set()

    async with _server(serve) as base_url:
        yield base_url, seen


def _header(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if line.split(b":", 1)[0].strip().lower() == name
    ]


def _on_aiohttp(client: httpx2.AsyncClient) -> bool:
    return isinstance(client._transport, AiohttpTransport)


async def test_requests_leave_exactly_as_httpx2_built_them() -> None:
    async with (
        _recording() as (base_url, seen),
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
    ):
        sent = {"text": "zwölf / twelve", "n": 12}
        response = await client.post(
            f"{base_url}/tasks/a%2Fb",
            params={"q": "a b/c", "limit": 5},
            json=sent,
            headers={"X-Trace-Id": "t-1", "Authorization": "Bearer x"},
        )
        bare = await client.post(f"{base_url}/empty")
    assert bare.status_code == 200
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.reason_phrase == "OK" and response.http_version == "HTTP/1.1"
    raw = seen.requests[0]
    # The path and query as httpx2 encoded them: "%2F" stays encoded, nothing is re-quoted.
    assert raw.split(b"\r\n", 1)[0] == b"POST /tasks/a%2Fb?q=a+b%2Fc&limit=5 HTTP/1.1"
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1]) == sent
    assert _header(raw, b"content-type") == [b"application/json"]
    assert _header(raw, b"content-length") == [str(len(raw.split(b"\r\n\r\n", 1)[1])).encode()]
    assert _header(raw, b"x-trace-id") == [b"t-1"]
    assert _header(raw, b"authorization") == [b"Bearer x"]
    assert _header(raw, b"host") == [base_url.removeprefix("http://").encode()]
    # httpx2's User-Agent only; aiohttp adds none of its own, nor a Content-Type to a bare POST.
    assert _header(raw, b"user-agent") == [f"python-httpx2/{httpx2.__version__}".encode()]
    assert _header(seen.requests[1], b"content-type") == []


async def test_connections_are_kept_alive_and_reused() -> None:
    async with (
        _recording() as (base_url, seen),
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
    ):
        for path in ("/one", "/two", "/three"):
            assert (await client.get(f"{base_url}{path}")).json() == {"status": "ok"}
    assert len(seen.ports) == 3 and len(set(seen.ports)) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_connection_the_server_closed_while_idle_is_not_reused(method: str) -> None:
    async with (
        _recording(per_connection=1) as (base_url, seen),
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
    ):
        first = await client.request(method, f"{base_url}/one", json={"n": 1})
        async with asyncio.timeout(5):
            await seen.closed.wait()
        await asyncio.sleep(0.05)  # the close reaches the client's side of the connection
        # Sent on the closed connection, this would fail ("server disconnected"); a POST is
        # not resent by anyone, so it must go out on a new connection the first time.
        second = await client.request(method, f"{base_url}/two", json={"n": 2})
    assert first.json() == second.json() == {"status": "ok"}
    assert len(seen.requests) == 2 and seen.ports[0] != seen.ports[1]


async def test_closing_the_client_closes_its_connections() -> None:
    async with _recording() as (base_url, seen):
        client = httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0)
        await client.get(f"{base_url}/one")
        assert not seen.closed.is_set()
        await client.aclose()
        async with asyncio.timeout(5):
            await seen.closed.wait()  # the server read the end of the connection


async def test_tls_is_verified_with_the_given_context(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with fixed_answer(BODY, tls=server_side) as base_url:
        async with httpx2.AsyncClient(transport=AiohttpTransport(verify=trusting)) as client:
            assert (await client.get(f"{base_url}/one")).json() == {"status": "ok"}
        async with httpx2.AsyncClient(transport=AiohttpTransport()) as client:
            with pytest.raises(httpx2.ConnectError, match=r"(?i)certificate"):
                await client.get(f"{base_url}/one")  # self-signed: not in the CA bundle
        async with httpx2.AsyncClient(transport=AiohttpTransport(verify=False)) as client:
            assert (await client.get(f"{base_url}/one")).json() == {"status": "ok"}
    assert base_url.startswith("https://")


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with _server(_never_answers) as base_url:
        pass  # closed again: nothing listens on its port now
    async with httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"{base_url}/one")


async def _never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.read()  # until the client gives up and closes
    finally:
        writer.close()


async def test_a_peer_that_does_not_answer_is_a_read_timeout() -> None:
    async with (
        _server(_never_answers) as base_url,
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=0.2) as client,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(f"{base_url}/one")
        assert loop.time() - started < 2.0


def _answering(response: bytes) -> Handler:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(response)
            await writer.drain()
        finally:
            writer.close()

    return serve


@pytest.mark.parametrize(
    "response",
    [
        b"",  # closed without a word
        b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"cut',  # closed mid-body
        b"HELLO THERE\r\n\r\n",  # not HTTP
    ],
    ids=["no-answer", "cut-body", "not-http"],
)
async def test_a_broken_answer_is_a_remote_protocol_error(response: bytes) -> None:
    async with (
        _server(_answering(response)) as base_url,
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
    ):
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"{base_url}/one", json={})  # a POST: not resent


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_request_whose_connection_drops_is_not_sent_again_by_the_transport(
    method: str,
) -> None:
    received: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await _read_request(reader))
        finally:
            writer.close()  # before any answer: the request may or may not have been done

    async with (
        _server(drop) as base_url,
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
    ):
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.request(method, f"{base_url}/tasks/7")
    # Sending it again is the caller's retry policy's decision: a cancel must not go twice.
    assert len(received) == 1


async def test_an_encoded_answer_is_decoded_once_by_httpx2() -> None:
    body = gzip.compress(BODY)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n"
    async with (
        _recording(head % len(body) + body) as (base_url, _),
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
    ):
        response = await client.get(f"{base_url}/one")
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"status": "ok"}


async def test_a_streamed_answer_arrives_chunk_by_chunk() -> None:
    more = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            await more.wait()  # the second chunk only once the client has the first
            writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    async with (
        _server(serve) as base_url,
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as client,
        client.stream("GET", f"{base_url}/events") as response,
    ):
        chunks = []
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            more.set()
    assert b"".join(chunks) == b"firstsecond" and chunks[0] == b"first"


async def test_a_peer_that_stops_mid_body_is_a_read_timeout() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{"status":')
            await writer.drain()
            await reader.read()  # the rest never comes
        finally:
            writer.close()

    async with (
        _server(stall) as base_url,
        httpx2.AsyncClient(transport=AiohttpTransport(), timeout=0.2) as client,
    ):
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(f"{base_url}/one")


def test_a_url_is_parsed_once_and_shared() -> None:
    url = "http://127.0.0.1:8000/tasks/7?limit=5"
    first = parsed_url(url)
    assert parsed_url(url) is first  # httpx2 only copies a URL it is given parsed
    assert (first.host, first.port, first.path, first.query) == (
        "127.0.0.1",
        8000,
        "/tasks/7",
        b"limit=5",
    )
    assert parsed_url("http://127.0.0.1:8000/tasks/8").path == "/tasks/8"


async def test_the_peer_and_model_clients_are_built_on_it(no_proxy: None) -> None:
    settings = Settings(
        _env_file=None, registry_url="http://r.invalid", orchestrator_url="http://o"
    )
    mesh = build_mesh(settings)
    assert mesh.registry is not None and mesh.orchestrator is not None
    clients = [mesh.registry._client, mesh.orchestrator._client, new_client(timeout_s=5.0)]
    try:
        async with fixed_answer(BODY) as base_url:
            for client in clients:
                assert _on_aiohttp(client)
                assert (await client.get(f"{base_url}/any")).json() == {"status": "ok"}
    finally:
        await mesh.aclose()
        await clients[2].aclose()


async def test_a_proxy_named_by_the_environment_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with fixed_answer(BODY) as proxy_url:  # answers whatever it is asked to fetch
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        async with outbound_client(timeout=5.0) as client:
            response = await client.get("http://peer.invalid/any")  # no such host
            assert not _on_aiohttp(client)
    assert response.json() == {"status": "ok"}


async def test_without_a_proxy_the_client_is_on_aiohttp(no_proxy: None) -> None:
    async with fixed_answer(BODY) as base_url, outbound_client(timeout=5.0) as client:
        assert _on_aiohttp(client)
        assert (await client.get(f"{base_url}/any")).json() == {"status": "ok"}


async def test_a_tls_context_is_made_by_the_first_https_request_and_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Making one costs ~50 ms, which start-up paid for every client (plain http included).
    made: list[object] = []
    create = httpx2.create_ssl_context

    def counting(**kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs.get("verify"))
        return create(**kwargs)

    monkeypatch.setattr(httpx2, "create_ssl_context", counting)
    cert, key = self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the context is made
    shared = SharedTls()
    async with (
        httpx2.AsyncClient(transport=AiohttpTransport(verify=shared)) as one,
        httpx2.AsyncClient(transport=AiohttpTransport(verify=shared)) as other,
    ):
        async with fixed_answer(BODY) as plain_url:
            assert (await one.get(f"{plain_url}/one")).status_code == 200
        assert made == []
        async with fixed_answer(BODY, tls=server_side) as tls_url:
            for client in (one, other, one):
                assert (await client.get(f"{tls_url}/one")).json() == {"status": "ok"}
    assert made == [True]


async def test_making_the_tls_context_does_not_hold_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Made on a worker thread: the loop goes on while the CA bundle loads. Here the making
    # waits until the loop has run on; made on the loop itself, it would wait for ever.
    create = httpx2.create_ssl_context
    started, release = threading.Event(), threading.Event()

    def waiting(**kwargs: Any) -> ssl.SSLContext:
        started.set()
        if not release.wait(timeout=10):
            raise TimeoutError("the event loop was held")
        return create(**kwargs)

    monkeypatch.setattr(httpx2, "create_ssl_context", waiting)
    shared = SharedTls()
    making = asyncio.create_task(shared.made())
    assert await asyncio.to_thread(started.wait, 10)
    release.set()
    context = await making
    assert isinstance(context, ssl.SSLContext)
    assert await shared.made() is context
