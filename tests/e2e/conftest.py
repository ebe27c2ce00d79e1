"""End-to-end fixtures: droplet 12 really listening on loopback, wired to a sandbox mesh, and a
headless Debian chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.config import Settings
from tests.e2e.tcp_proxy import TcpProxy

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INACTIVE_AFTER_S = 2.0
"""Seconds without a heartbeat before the sandbox Orchestrator marks a droplet inactive: short,
so that stopping a droplet's heartbeats turns into an alert within a test's patience."""


@pytest.fixture
def sandbox(sandbox_key_dir: Path) -> Iterator[Any]:
    """The suite's sandbox mesh, with a short inactive window for the alert scenarios."""
    from sandbox.testing import mesh

    with mesh(
        key_dir=sandbox_key_dir, inactive_after=INACTIVE_AFTER_S, router_interval=0.2
    ) as handle:
        yield handle


def _bound_socket() -> socket.socket:
    from sandbox.testing import tcp_listener

    return tcp_listener("127.0.0.1", 0)


@pytest.fixture
def proxy_socket() -> Iterator[socket.socket]:
    """The port of the cuttable proxy, bound early so the service can allow it as an origin."""
    sock = _bound_socket()
    yield sock
    sock.close()


@pytest.fixture
def start_live_server(
    mesh_settings: Callable[..., Settings], proxy_socket: socket.socket
) -> Iterator[Callable[..., str]]:
    """`start_live_server(**settings)` -> the base URL of droplet 12 served by uvicorn in a
    thread, wired to the sandbox mesh; stopped after the test."""
    from app.factory import create_app
    from sandbox.testing import ServerThread

    servers: list[ServerThread] = []

    def _start(**overrides: Any) -> str:
        sock = _bound_socket()
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        proxy_origin = f"http://127.0.0.1:{proxy_socket.getsockname()[1]}"
        values: dict[str, Any] = {
            "port": port,
            "droplet_url": url,
            "cors_origins": [url, proxy_origin],
        }
        values.update(overrides)
        server = ServerThread(create_app(mesh_settings(**values)), sock, name="droplet-12")
        server.start()
        servers.append(server)
        return url

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(start_live_server: Callable[..., str]) -> str:
    """Base URL (http://127.0.0.1:<port>) of droplet 12, chat authentication off."""
    return start_live_server()


@pytest.fixture
def proxied_server(live_server: str, proxy_socket: socket.socket) -> Iterator[TcpProxy]:
    """The live server behind a TCP proxy whose connections a test can cut (a dropped socket)."""
    port = int(live_server.rsplit(":", 1)[1])
    proxy = TcpProxy(proxy_socket, upstream=("127.0.0.1", port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def summarizing_server(start_live_server: Callable[..., str]) -> Iterator[tuple[str, Any]]:
    """(URL, fake Gemini) of a droplet 12 that streams model summaries (LLM_SUMMARIZE)."""
    from tests.fakes.gemini import FakeGemini

    with FakeGemini() as fake:
        url = start_live_server(
            gemini_api_key="test-key", gemini_base_url=fake.base_url, llm_summarize=True
        )
        yield url, fake


@pytest.fixture
def orchestrator(sandbox: Any) -> Iterator[httpx2.Client]:
    """An HTTP client for the sandbox Orchestrator, authenticated as droplet 12."""
    token = sandbox.mint_token(droplet_id=12)
    client = httpx2.Client(
        base_url=sandbox.orchestrator_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    )
    yield client
    client.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    # Per test, not per session: Playwright's sync API keeps an event loop marked as running on
    # this thread while it is open, which would break every asyncio test that runs after it.
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (scripts/ensure-browser.sh)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


class PageProblems:
    """What must never happen on the page: script errors, CSP violations, dialogs (XSS)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        # A dropped socket is logged by the browser itself while the page reconnects.
        if message.type == "error" and "WebSocket connection" not in message.text:
            self.errors.append(f"console: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """`open_page(url, width=, height=, color_scheme=, connected=True)` -> a Playwright page,
    once its WebSocket is open (unless `connected=False`).

    After the test, the page must have raised no script error, CSP violation or dialog.
    """
    contexts: list[Any] = []
    problems = PageProblems()

    def _open(
        url: str,
        *,
        width: int = 1280,
        height: int = 860,
        color_scheme: str = "light",
        connected: bool = True,
    ) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=color_scheme
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        page.goto(url)
        if connected:
            page.wait_for_selector("body[data-connection=open]")
        return page

    yield _open
    for context in contexts:
        context.close()
    assert problems.dialogs == [], f"a dialog opened (script injection?): {problems.dialogs}"
    assert problems.errors == [], problems.errors
