"""The peer HTTP path's per-request cost that depends on what is installed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx2
import pytest

from app.mesh.peer_http import exchange
from app.mesh.peers import PeerUnavailable
from app.utils.http_transport import outbound_client
from tests.fakes.fixed_answer import fixed_answer


class _Counting(MetaPathFinder):
    def __init__(self) -> None:
        self.searches: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        self.searches.append(fullname)
        return None  # let the real finders answer


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with fixed_answer(b'{"droplets":[],"count":0}') as url:
        yield url


async def test_peer_requests_do_not_search_sys_path(
    monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    # httpcore (plain httpx) imported sniffio on every request when it was missing: a failed
    # import that searched all of sys.path (~30 us, several times per peer call). The client we
    # ship must import nothing per request, whether or not sniffio is installed.
    async with httpx2.AsyncClient(timeout=5.0) as client:
        first = await exchange(client, "GET", f"{base_url}/droplets", peer="registry", label="x")
        assert first.body == {"droplets": [], "count": 0}
        finder = _Counting()
        monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
        for _ in range(3):
            response = await exchange(
                client, "GET", f"{base_url}/droplets", peer="registry", label="x"
            )
            assert response.status_code == 200
    assert finder.searches == []


@pytest.mark.parametrize(
    ("url", "params", "sent"),
    [
        (
            "http://peer/tasks",
            {"limit": 50, "offset": 0, "status": "in progress"},
            "http://peer/tasks?limit=50&offset=0&status=in+progress",
        ),
        (
            "http://peer/tasks",
            {"flag": True, "ratio": 1.5, "text": "a&b=c/d?é+%"},
            "http://peer/tasks?flag=true&ratio=1.5&text=a%26b%3Dc%2Fd%3F%C3%A9%2B%25",
        ),
        (
            "http://peer/tasks?status=failed",
            {"limit": 5, "status": "done"},
            "http://peer/tasks?limit=5&status=done",
        ),
    ],
)
async def test_a_query_reaches_the_peer_as_httpx2_encodes_params(
    url: str, params: dict[str, str | int | float], sent: str
) -> None:
    # exchange encodes `params` into a URL it parses once; the peer must see what httpx2's own
    # `params=` would have sent, a URL that already has a query included.
    seen: list[httpx2.URL] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url)
        return httpx2.Response(200, json={"ok": True})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        await exchange(client, "GET", url, peer="orchestrator", label="x", params=params)
        await client.get(url, params=params)
    assert seen[0] == seen[1] == httpx2.URL(sent), seen


# ---- whether a failed request reached the peer ------------------------------------------------


@asynccontextmanager
async def _server(reply: bytes | None) -> AsyncIterator[str]:
    """Reads a request, then sends `reply` and closes (None: never answers)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if reply is None:
                await asyncio.sleep(3600)
            else:
                writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def _post(url: str) -> PeerUnavailable:
    async with outbound_client(timeout=0.3) as client:
        with pytest.raises(PeerUnavailable) as caught:
            await exchange(client, "POST", url + "/tasks", peer="orchestrator", label="x")
    return caught.value


async def test_a_refused_connection_never_reached_the_peer() -> None:
    async with _server(None) as url:
        pass  # closed: nothing listens on its port now
    assert (await _post(url)).reached is False


@pytest.mark.parametrize(
    "reply",
    [
        None,  # taken, never answered: timed out
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 99\r\n\r\n{",
    ],
    ids=["timeout", "500", "cut-off"],
)
async def test_a_request_the_peer_took_may_have_been_acted_on(reply: bytes | None) -> None:
    async with _server(reply) as url:
        assert (await _post(url)).reached is True
