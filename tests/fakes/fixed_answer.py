"""A keep-alive HTTP/1.1 server on loopback, in the test's own event loop, that answers every
request with the same JSON: for measuring or checking the client side of a peer call."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


def answer(body: bytes) -> bytes:
    """A whole 200 response carrying `body` as JSON."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


@asynccontextmanager
async def fixed_answer(body: bytes, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve `body` to every request until the block ends; yields the base URL."""
    response = answer(body)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # the requests these tests send have no body
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
