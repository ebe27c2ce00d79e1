"""Outbound HTTP: httpx2's own transport, on a network backend whose idle-connection probe is cheap.

Why: before and after every request, httpcore2's connection pool asks each idle keep-alive
connection whether the peer has closed it (`get_extra_info("is_readable")`). Through anyio that
question first rebuilds the socket's whole attribute table (a `getpeername` system call and half
a dozen closures) to find the socket, then polls it. At 64 clients on the write pair the
Orchestrator's pool held 12-14 connections, so every request paid for 25 such probes or so: 5.5%
of the service's CPU (py-spy), 3-4% on the read mix (6-8 connections). Measured alone, a GET
through httpx2 with 20 idle connections in the pool cost 0.94-1.1 ms of CPU, 0.56-0.66 ms with
one.

Here each connection finds its socket once and keeps a `poll` object registered for it, so a
probe is one system call: 0.67-0.77 ms per GET with 20 idle connections, within 0.1 ms of one
connection, and 2.3% of the CPU on the write pair at 64 clients. Everything else (connecting,
TLS, reads and writes with their timeouts, the errors they raise) is httpcore2's own anyio
backend, delegated to unchanged, and everything above it is httpx2's own transport.

httpx2 2.16 (pinned) takes no network backend, so the transport's pool is replaced by an
identical one built with this backend (`outbound_transport`); a test fails if httpx2 stops
using that pool. The upstream fix (pydantic/httpx2#1169, unreleased: the pool tracks its idle
connections instead of probing them all) makes this module unnecessary.

The Registry's, the Orchestrator's and the model planners' clients are built by
`outbound_client`. A client given a transport ignores the proxy variables (HTTPS_PROXY, ...), so
where any is set it leaves the transport to httpx2, which honours them.
"""

from __future__ import annotations

import select
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
"""httpx2's defaults, spelled out because the pool is built here."""


# The signatures below are httpcore2's network interface, timeouts included (ASYNC109).


class ProbedStream(httpcore2.AsyncNetworkStream):
    """An anyio stream from httpcore2, answering "is_readable" from a socket found once."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._probe = select.poll()
        if self._socket is not None and self._socket.fileno() >= 0:
            self._probe.register(self._socket, select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore2.AsyncNetworkStream:
        return ProbedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # A socket that is gone counts as readable (as httpcore2 answers it), so the pool
            # drops it; its number may belong to another socket by now, so it is not polled.
            sock = self._socket
            return sock is None or sock.fileno() < 0 or bool(self._probe.poll(0))
        return self._inner.get_extra_info(info)


class ProbedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's anyio backend, its streams wrapped in `ProbedStream`."""

    def __init__(self) -> None:
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return ProbedStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return ProbedStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def outbound_transport(*, verify: ssl.SSLContext | bool = True) -> httpx2.AsyncHTTPTransport:
    """httpx2's transport, its connection pool on `ProbedBackend` (see the module docstring)."""
    # One context for both pools: building it loads the CA bundle (~30 ms of start-up).
    context = httpx2.create_ssl_context(verify=verify)
    transport = httpx2.AsyncHTTPTransport(verify=context, limits=LIMITS)
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=context,
        max_connections=LIMITS.max_connections,
        max_keepalive_connections=LIMITS.max_keepalive_connections,
        keepalive_expiry=LIMITS.keepalive_expiry,
        network_backend=ProbedBackend(),
    )
    return transport


def outbound_client(*, timeout: float, verify: ssl.SSLContext | bool = True) -> httpx2.AsyncClient:
    """An httpx2 client on `outbound_transport`, or, where the environment names a proxy, on
    httpx2's own transport, which routes through it (as httpx2 reads them: urllib's rules)."""
    if urllib.request.getproxies():
        return httpx2.AsyncClient(timeout=timeout, verify=verify)
    return httpx2.AsyncClient(timeout=timeout, transport=outbound_transport(verify=verify))
