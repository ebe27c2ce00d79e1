"""Outbound HTTP: httpx2 clients whose requests travel over aiohttp's connections.

Why: one exchange with a peer through httpx2's own transport (httpcore2's pool, h11's pure
Python parser, anyio's streams and cancel scopes) cost 0.55 ms of CPU for a GET and 0.66 ms
for a 10 KB POST on loopback, where the bytes on the wire cost 0.05 ms (measured against the
sandbox Orchestrator, uvloop, one connection). aiohttp's pool and its C parser (llhttp) carry
the same requests for 0.32 and 0.43 ms. Mesh reads, writes and every model call pay it.

What stays httpx2's: the client API the adapters use, auth flows, redirects (not followed),
the timeouts (below), response decoding (`Content-Encoding`: aiohttp hands over the raw bytes)
and the exception types callers catch. What aiohttp does: the connection pool (100
connections, idle ones closed after 5 s, as httpx2's defaults), keep-alive (a connection the
peer closed is noticed by its protocol and never reused), TLS, and HTTP/1.1 on the wire.
aiohttp would send an idempotent request (a GET, a DELETE) again, once, when the connection
drops before the answer; here it does not: whether a request is sent again is the callers'
retry policy's decision (app/utils/retry.py), and a cancel sent twice would be told it can no
longer be cancelled.

Timeouts: httpx2's connect and pool timeouts bound getting a connection (aiohttp rounds one of
over 5 s up to a whole second of the loop's clock), its read timeout each wait for the peer's
bytes. aiohttp has no write timeout: a peer that stops reading shows as a read timeout once the
body no longer fits the socket's buffers, and request bodies here are small JSON.

A client given a transport ignores the proxy variables (HTTPS_PROXY, ...), so where any is set
`outbound_client` leaves the transport to httpx2, which honours them.

aiohttp is imported by the first request, not with this module: importing it costs ~0.1 s of
CPU (~0.2 s while the machine is busy), which start-up to `/health` would otherwise pay. The
first request imports it on a worker thread (app.utils.imports), so the event loop is not
held meanwhile.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import httpx2

from app.utils.imports import import_off_loop

if TYPE_CHECKING:
    import aiohttp

DEFERRED_IMPORTS: Final = ("aiohttp",)
"""Imported by the first request, off the loop (app.ops.deferred_imports warms it at start)."""

_LIMITS: Final = httpx2.Limits()
"""httpx2's defaults: 100 connections, idle ones closed after 5 s (aiohttp caps connections in
all, so its cap of idle ones, 20, does not apply)."""

# aiohttp would add a User-Agent and, to a POST without one, a Content-Type of its own; httpx2
# has already set every header it means to send.
_NOT_ADDED: Final = ("User-Agent", "Content-Type")


@lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx2.URL:
    """`url` parsed once. httpx2 parses a URL given as a string on every request, 9% of a peer
    call's instructions (docs/performance.md, the seventeenth session); an `httpx2.URL`, which
    is immutable, it only copies. The peers' and the models' URLs are few (a path with an id
    makes one per droplet or task, hence the bound)."""
    return httpx2.URL(url)


class SharedTls:
    """A TLS context that several clients share, made by the first https request that needs it
    (httpx2's: the CA bundle, SSL_CERT_FILE and SSL_CERT_DIR, as read then). Making one loads
    the CA bundle and imports httpcore2 for its defaults, ~50 ms that start-up paid before
    `/health` answered, though the mesh is usually plain http (docs/performance.md, the
    eighteenth session)."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = httpx2.create_ssl_context(verify=self._verify)
        return self._context

    async def made(self) -> ssl.SSLContext:
        """`context()`, made on a worker thread the first time, so the event loop is not held
        while the CA bundle loads (OpenSSL lets go of the GIL for that: a 1 ms ticker on the
        loop saw gaps of 7-16 ms at most, against 75-84 ms when made on the loop). Two first
        requests at once may both make one; the one kept is what both get."""
        if self._context is None:
            await asyncio.to_thread(self.context)
        return self.context()


@contextmanager
def _as_httpx(request: httpx2.Request) -> Iterator[None]:
    """aiohttp's errors as the httpx2 errors callers catch (most specific first)."""
    import aiohttp  # imported already: only a lookup

    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # getting or opening a connection
        raise httpx2.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx2.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx2.TimeoutException(str(exc) or "timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unresolvable, TLS handshake
        raise httpx2.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientResponseError as exc:  # an answer that is not HTTP
        raise httpx2.RemoteProtocolError(exc.message, request=request) from exc
    except aiohttp.ClientOSError as exc:  # reset or broken while reading or writing
        raise httpx2.ReadError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx2.TransportError(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx2.AsyncByteStream):
    """The response body as aiohttp reads it, chunk by chunk (streamed answers stay streamed)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport on one `aiohttp.ClientSession` (see the module docstring)."""

    def __init__(self, *, verify: ssl.SSLContext | bool | SharedTls = True) -> None:
        self._tls = verify if isinstance(verify, SharedTls) else SharedTls(verify)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it is made in.
        if self._session is None:
            import aiohttp  # see the module docstring

            connector = aiohttp.TCPConnector(
                limit=_LIMITS.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=_LIMITS.keepalive_expiry or 0.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx2 decodes, by the headers it gets
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx2 keeps the cookies
                skip_auto_headers=_NOT_ADDED,
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
            )
            # No resending of its own (see the module docstring). aiohttp has no public switch;
            # its own test client sets this, and a test here fails if it stops working.
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._session is None:
            await import_off_loop(*DEFERRED_IMPORTS)
        session = self._open()
        from aiohttp import ClientTimeout
        from yarl import URL

        timeouts = request.extensions.get("timeout", {})
        connect, pool = timeouts.get("connect"), timeouts.get("pool")
        timeout = ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        # For http, aiohttp's default (True), which it ignores.
        tls = await self._tls.made() if request.url.scheme == "https" else True
        with _as_httpx(request):
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # as httpx2 encoded it, not again
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                ssl=tls,
            )
        reason = response.reason or ""
        return httpx2.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": reason.encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def outbound_client(
    *, timeout: float, verify: ssl.SSLContext | bool | SharedTls = True
) -> httpx2.AsyncClient:
    """An httpx2 client on `AiohttpTransport`, or, where the environment names a proxy, on
    httpx2's own transport, which routes through it (as httpx2 reads them: urllib's rules)."""
    if urllib.request.getproxies():
        tls = verify.context() if isinstance(verify, SharedTls) else verify
        return httpx2.AsyncClient(timeout=timeout, verify=tls)
    return httpx2.AsyncClient(timeout=timeout, transport=AiohttpTransport(verify=verify))
