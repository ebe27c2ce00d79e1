"""CLI argument handling that needs no server (the end-to-end runs are in tests/e2e/test_cli.py)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from app.cli.main import build_cli, endpoints


@pytest.mark.parametrize(
    ("url", "http_base", "ws_url"),
    [
        ("http://localhost:8012", "http://localhost:8012", "ws://localhost:8012/ws"),
        ("http://localhost:8012/", "http://localhost:8012", "ws://localhost:8012/ws"),
        ("ws://127.0.0.1:9000/ws", "http://127.0.0.1:9000", "ws://127.0.0.1:9000/ws"),
        ("wss://chat.example.com/ws/", "https://chat.example.com", "wss://chat.example.com/ws"),
        (
            "https://example.com/droplet12",
            "https://example.com/droplet12",
            "wss://example.com/droplet12/ws",
        ),
        ("localhost:8012", "http://localhost:8012", "ws://localhost:8012/ws"),
    ],
)
def test_endpoints_accept_every_form_of_the_url(url: str, http_base: str, ws_url: str) -> None:
    assert endpoints(url) == (http_base, ws_url)


@pytest.mark.parametrize("url", ["ftp://example.com", "http://", "file:///etc/passwd"])
def test_endpoints_refuse_what_is_not_a_service_url(url: str) -> None:
    with pytest.raises(typer.BadParameter):
        endpoints(url)


def test_usage_errors_exit_2() -> None:
    runner = CliRunner()
    assert runner.invoke(build_cli(), ["ask"]).exit_code == 2
    assert runner.invoke(build_cli(), ["ask", "hi", "--url", "ftp://x"]).exit_code == 2
    result = runner.invoke(build_cli(), ["--help"])
    assert result.exit_code == 0
    for command in ("chat", "ask", "serve", "sandbox", "db"):
        assert command in result.output
