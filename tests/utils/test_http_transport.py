"""Outbound HTTP through httpx2's transport on the probed backend: every connection is one of
ours, over plain TCP and TLS, and a connection the server closed while idle is never reused."""

from __future__ import annotations

import asyncio
import select
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest

from app.config import Settings
from app.conversation.planners.llm_http import new_client
from app.utils.http_transport import ProbedStream, outbound_client, outbound_transport
from app.wiring.mesh import build_mesh
from tests.fakes.certs import self_signed
from tests.fakes.fixed_answer import answer, fixed_answer

BODY = b'{"status":"ok"}'


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable in the environment (a client would go through it instead)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _stream(response: httpx2.Response) -> ProbedStream:
    stream = response.extensions["network_stream"]
    assert isinstance(stream, ProbedStream), type(stream)
    return stream


async def test_requests_go_through_the_probed_backend_and_reuse_their_connection() -> None:
    async with (
        fixed_answer(BODY) as base_url,
        httpx2.AsyncClient(transport=outbound_transport()) as client,
    ):
        first = await client.get(f"{base_url}/one")
        second = await client.get(f"{base_url}/two")
    assert first.json() == second.json() == {"status": "ok"}
    assert _stream(first) is _stream(second)  # kept alive, probed idle, and used again


async def test_tls_connections_are_probed_too(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with (
        fixed_answer(BODY, tls=server_side) as base_url,
        httpx2.AsyncClient(transport=outbound_transport(verify=trusting)) as client,
    ):
        first = await client.get(f"{base_url}/one")
        second = await client.get(f"{base_url}/two")
    assert base_url.startswith("https://")
    assert first.json() == {"status": "ok"}
    assert _stream(first).get_extra_info("ssl_object") is not None
    assert _stream(first) is _stream(second)


@asynccontextmanager
async def _one_answer_per_connection() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server that answers one request per connection as if keeping it alive, then closes
    it; yields its base URL and an event set once it has closed a connection."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(BODY))  # no "connection: close": the client keeps it
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
            closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", closed
    finally:
        server.close()
        await server.wait_closed()


async def test_a_connection_the_server_closed_while_idle_is_dropped_not_reused() -> None:
    async with (
        _one_answer_per_connection() as (base_url, closed),
        httpx2.AsyncClient(transport=outbound_transport()) as client,
    ):
        stream = _stream(await client.get(f"{base_url}/one"))
        async with asyncio.timeout(5):
            await closed.wait()
        sock = stream.get_extra_info("socket")
        if sock.fileno() >= 0:  # not closed by the pool yet: until the server's close arrives
            select.select([sock], [], [], 5.0)
        assert stream.get_extra_info("is_readable") is True
        # Sent on the closed connection, this would fail ("server disconnected").
        second = await client.get(f"{base_url}/two")
        assert second.json() == {"status": "ok"}
        assert _stream(second) is not stream


async def test_a_closed_stream_counts_as_readable_so_the_pool_drops_it() -> None:
    async with (
        fixed_answer(BODY) as base_url,
        httpx2.AsyncClient(transport=outbound_transport()) as client,
    ):
        stream = _stream(await client.get(f"{base_url}/one"))
        assert stream.get_extra_info("is_readable") is False  # idle, open, nothing to read
        await stream.aclose()
        assert stream.get_extra_info("is_readable") is True


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
                _stream(await client.get(f"{base_url}/any"))
    finally:
        for client in clients:
            await client.aclose()


async def test_a_proxy_named_by_the_environment_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with fixed_answer(BODY) as proxy_url:  # answers whatever it is asked to fetch
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        async with outbound_client(timeout=5.0) as client:
            response = await client.get("http://peer.invalid/any")  # no such host
    assert response.json() == {"status": "ok"}
    assert not isinstance(response.extensions["network_stream"], ProbedStream)


async def test_without_a_proxy_the_client_is_on_the_probed_backend(no_proxy: None) -> None:
    async with fixed_answer(BODY) as base_url, outbound_client(timeout=5.0) as client:
        _stream(await client.get(f"{base_url}/any"))
