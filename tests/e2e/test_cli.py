"""The command-line client in a real terminal (a pseudo-terminal) and as a one-shot for scripts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pexpect
import pytest

from tests.e2e.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\r")


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_ORCHESTRATOR_")}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "HOME": str(tmp_path),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "TERM": "xterm-256color",
            "COLUMNS": "120",
            "LINES": "40",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.pop("NO_COLOR", None)
    return env


class Terminal:
    """A pexpect child read through an ANSI filter: waits for text as a person would see it."""

    def __init__(self, child: pexpect.spawn[str]) -> None:
        self.child = child
        self.seen = ""

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the screen showed:\n{self.seen}")
            try:
                chunk = self.child.read_nonblocking(4096, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if text not in self.seen:
                    raise AssertionError(f"exited before {text!r}:\n{self.seen}") from None
                break
            self.seen += ANSI.sub("", chunk)
        shown, _, self.seen = self.seen.partition(text)
        return shown + text


def chat(tmp_path: Path, *args: str) -> Terminal:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "app.cli", "chat", *args],
        env=cli_env(tmp_path),
        cwd=str(tmp_path),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=30,
    )
    return Terminal(child)


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=cli_env(tmp_path),
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_chat_repl_table_and_a_confirmed_action(
    live_server: str, tmp_path: Path, sandbox: Any
) -> None:
    term = chat(tmp_path, "--url", live_server)
    term.wait_for("Connected to")
    term.wait_for("you> ")
    term.child.sendline("show me all droplets")
    # A mesh event may arrive first and redraw the prompt: wait for the answer itself.
    screen = term.wait_for("list_droplets")
    screen += term.wait_for("you> ")
    assert "Registry" in screen and "Orchestrator" in screen

    term.child.sendline("create a build task for droplet 16 priority 2")
    screen = term.wait_for("Confirm? [y/n] ")
    assert "create_task" in screen
    term.child.sendline("y")
    term.wait_for("create_task ok")
    term.wait_for("you> ")

    token = sandbox.mint_token(droplet_id=12)
    listed = httpx2.get(
        f"{sandbox.orchestrator_url}/tasks",
        params={"task_type": "build"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["payload"]["tasks"]
    assert any(t["priority"] == 2 for t in listed)

    # Up recalls the last line (readline history); /session shows the session kept.
    term.child.send("\x1b[A")
    term.child.send("\r")
    screen = term.wait_for("Confirm? [y/n] ")
    assert "create_task" in screen
    term.child.sendline("n")
    term.wait_for("declined")
    term.wait_for("you> ")
    term.child.sendline("/session")
    term.wait_for("session: ")
    assert re.match(r"\S+", term.wait_for("\n"))

    term.child.sendeof()
    term.child.expect(pexpect.EOF, timeout=15)
    term.child.close()
    assert term.child.exitstatus == 0
    assert (tmp_path / "state" / "chat-orchestrator" / "history").exists()


def test_clients_send_the_token_when_chat_auth_is_on(
    start_live_server: Callable[..., str], sandbox: Any, tmp_path: Path
) -> None:
    url = start_live_server(chat_auth="jwt")
    token = sandbox.mint_token(droplet_id=12, permissions=("read", "write"))
    denied = run_cli(tmp_path, "ask", "show me all droplets", "--url", url)
    assert denied.returncode == 1
    assert "HTTP 401" in denied.stderr
    allowed = run_cli(tmp_path, "ask", "show me all droplets", "--url", url, "--token", token)
    assert allowed.returncode == 0, allowed.stderr
    assert "Registry" in allowed.stdout

    refused = run_cli(tmp_path, "chat", "--url", url)
    assert refused.returncode == 1
    assert "refused" in refused.stderr
    term = chat(tmp_path, "--url", url, "--token", token)
    term.wait_for("you> ")
    term.child.sendline("show me all droplets")
    term.wait_for("Registry")
    term.wait_for("you> ")
    term.child.sendline("/quit")
    term.child.expect(pexpect.EOF, timeout=15)


def test_chat_shows_model_summaries_as_they_arrive(
    summarizing_server: tuple[str, Any], tmp_path: Path
) -> None:
    from tests.fakes.gemini import text_chunks

    url, fake = summarizing_server
    fake.push(
        text_chunks("Seven droplets ", "are registered."), text_chunks("Six tasks, ", "one failed.")
    )
    term = chat(tmp_path, "--url", url)
    term.wait_for("you> ")
    term.child.sendline("show me all droplets")
    term.wait_for("in short (model):")
    term.wait_for("Seven droplets are registered.")
    term.child.sendline("list the tasks")
    term.wait_for("Six tasks, one failed.")
    term.child.sendline("/quit")
    term.child.expect(pexpect.EOF, timeout=15)


def test_chat_shows_mesh_alerts_while_the_prompt_waits(
    live_server: str, sandbox: Any, tmp_path: Path
) -> None:
    term = chat(tmp_path, "--url", live_server)
    term.wait_for("you> ")
    term.child.send("show me")  # half-typed: the alert must not eat it
    httpx2.post(
        f"{sandbox.orchestrator_url}/_sandbox/droplets/14/stop-heartbeats"
    ).raise_for_status()
    term.wait_for("(droplet 14)")
    term.wait_for("you> show me")
    term.child.sendline(" all droplets")
    # Other sandbox droplets may go inactive meanwhile and print their own alert (and prompt):
    # wait for the answer itself, not just the next prompt.
    term.wait_for("Registry")
    term.wait_for("you> ")
    term.child.sendline("/quit")
    term.child.expect(pexpect.EOF, timeout=15)


def test_chat_exits_non_zero_when_the_service_is_unreachable(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "chat", "--url", f"http://127.0.0.1:{unused_port()}")
    assert result.returncode == 3
    assert "cannot reach" in result.stderr


def test_ask_prints_the_answer(live_server: str, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "ask", "show me all droplets", "--url", live_server)
    assert result.returncode == 0, result.stderr
    assert "Registry" in result.stdout
    assert "list_droplets" in result.stdout
    assert "session:" in result.stderr


def test_ask_json_prints_the_response_object_and_keeps_the_session(
    live_server: str, tmp_path: Path
) -> None:
    ws_url = live_server.replace("http://", "ws://") + "/ws"
    first = run_cli(
        tmp_path, "ask", "create a build task for droplet 16 priority 2", "--url", ws_url, "--json"
    )
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert {"response", "session_id", "trace_id", "actions", "pending_confirmation"} <= body.keys()
    assert body["pending_confirmation"]["tool"] == "create_task"

    second = run_cli(
        tmp_path, "ask", "no", "--url", live_server, "--session", body["session_id"], "--json"
    )
    assert second.returncode == 0, second.stderr
    answer = json.loads(second.stdout)
    assert answer["session_id"] == body["session_id"]
    assert answer["actions"] == [{"tool": "create_task", "status": "declined"}]


def test_ask_exits_non_zero_on_errors(live_server: str, tmp_path: Path) -> None:
    unreachable = run_cli(tmp_path, "ask", "hello", "--url", f"http://127.0.0.1:{unused_port()}")
    assert unreachable.returncode == 3
    assert "cannot reach" in unreachable.stderr

    rejected = run_cli(tmp_path, "ask", "hello", "--url", live_server, "--session", "bad id!")
    assert rejected.returncode == 1
    assert "HTTP 422" in rejected.stderr

    rejected_json = run_cli(tmp_path, "ask", "   ", "--url", live_server, "--json")
    assert rejected_json.returncode == 1
    assert json.loads(rejected_json.stdout)["status"] == "error"


def _wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited early with {process.returncode}")
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def _interrupt(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_starts_the_service(tmp_path: Path) -> None:
    port = unused_port()
    env = cli_env(tmp_path) | {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MESH_ENABLED": "false",
        "DATA_DIR": str(tmp_path / "data"),
        "ENVIRONMENT": "development",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process)
        page = httpx2.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and "Chat Orchestrator" in page.text
    finally:
        assert _interrupt(process) == 0


def test_sandbox_starts_the_mesh(tmp_path: Path) -> None:
    registry, orchestrator = unused_port(), unused_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "sandbox",
            "--registry-port",
            str(registry),
            "--orchestrator-port",
            str(orchestrator),
            "--key-dir",
            str(tmp_path / "keys"),
        ],
        env=cli_env(tmp_path),
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{registry}/health", process)
        _wait_healthy(f"http://127.0.0.1:{orchestrator}/health", process)
        assert (tmp_path / "keys" / "orchestrator_private_key.pem").exists()
    finally:
        assert _interrupt(process) == 0
