"""`chat-orchestrator chat`: an interactive session over the WebSocket `/ws`.

`input()` with readline owns the terminal while the user types (arrow-key history, line editing,
Ctrl-C); the socket is read by a background thread (app.cli.socket). Mesh events, model
summaries and answers that arrive while the prompt is up are printed above it at once, and the
prompt with what was typed so far is drawn again below them.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.text import Text

from app.cli.render import (
    progress_label,
    render_answer,
    render_error,
    render_event,
    render_note,
    render_notification,
    render_pending,
    render_summary,
)
from app.cli.socket import ChatConnectionError, ChatSocket, Disconnected, Frame

TURN_TIMEOUT_S = 120.0
POLL_S = 0.25
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
PROMPT = "you> "
CONFIRM_PROMPT = "Confirm? [y/n] "
HELP = (
    "Type a request in plain words, e.g. 'show me all droplets' or "
    "'create a build task for droplet 16 priority 2'.\n"
    "Commands: /session (show the session id), /new (start a new session), /help, /quit.\n"
    "Up and Down recall earlier lines; Ctrl-D quits."
)

__all__ = ["ChatConnectionError", "ChatRepl"]


def history_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "chat-orchestrator" / "history"


@dataclass
class _Readline:
    """Arrow-key history via GNU readline when the platform has it (not on plain Windows)."""

    path: Path
    module: Any = None

    def load(self) -> None:
        try:
            import readline
        except ImportError:
            return
        self.module = readline
        readline.set_history_length(1000)
        with contextlib.suppress(OSError):
            readline.read_history_file(self.path)

    def buffer(self) -> str:
        return str(self.module.get_line_buffer()) if self.module is not None else ""

    def forget_last(self) -> None:
        # y/n answers are not worth recalling with Up.
        if self.module is not None and self.module.get_current_history_length():
            self.module.remove_history_item(self.module.get_current_history_length() - 1)

    def save(self) -> None:
        if self.module is None:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.module.write_history_file(self.path)


def _error_text(frame: Frame) -> str:
    text = str(frame.get("error") or "something went wrong")
    retry = frame.get("retry_after_s")
    if isinstance(retry, int | float):
        text += f" (try again in {math.ceil(retry)} s)"
    return text


@dataclass
class ChatRepl:
    console: Console
    ws_url: str
    session_id: str | None = None
    token: str | None = None
    read_line: Callable[[str], str] = input
    _socket: ChatSocket | None = field(default=None, init=False)
    _readline: _Readline = field(default_factory=lambda: _Readline(history_file()), init=False)
    _prompt: str = field(default=PROMPT, init=False)

    # -- connection ----------------------------------------------------------------------------

    def _open(self) -> None:
        url = self.ws_url
        if self.session_id:  # follow the session: its answers from other channels arrive too
            url += f"{'&' if '?' in url else '?'}session_id={self.session_id}"
        socket = ChatSocket(url=url, token=self.token, on_idle_frame=self._show_idle)
        socket.open()
        self._socket = socket

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _reconnect(self) -> None:
        self._close()
        for delay in RECONNECT_DELAYS_S:
            render_note(
                self.console, f"connection lost; reconnecting in {delay:g} s", style="yellow"
            )
            time.sleep(delay)
            try:
                self._open()
            except ChatConnectionError:
                continue
            render_note(self.console, "reconnected", style="green")
            return
        raise ChatConnectionError(f"lost the connection to {self.ws_url}")

    def _connected(self) -> ChatSocket:
        if self._socket is None:
            self._reconnect()
        assert self._socket is not None
        return self._socket

    def _send(self, frame: Frame) -> None:
        try:
            self._connected().send(frame)
        except Disconnected:
            self._reconnect()
            self._connected().send(frame)

    def _ask(self, prompt: str) -> str:
        """A line from the user; frames arriving meanwhile are shown above the prompt."""
        self._prompt = prompt
        socket = self._socket
        with socket.idle() if socket is not None else contextlib.nullcontext():
            return self.read_line(prompt)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        self._open()
        self._readline.load()
        who = f"session {self.session_id}" if self.session_id else "a new session"
        self.console.print(
            Text(f"Connected to {self.ws_url} ({who}). Type /help for help.", style="green")
        )
        try:
            while True:
                try:
                    line = self._ask(PROMPT).strip()
                except EOFError:
                    self.console.print()
                    break
                except KeyboardInterrupt:
                    self.console.print()
                    continue
                if not line:
                    continue
                if line.lower() in {"/quit", "/exit", "quit", "exit"}:
                    break
                if line.startswith("/"):
                    self._command(line)
                    continue
                frame: Frame = {"type": "message", "content": line}
                if self.session_id:
                    frame["session_id"] = self.session_id
                self._turn(frame)
        finally:
            self._readline.save()
            self._close()
        return 0

    def _command(self, line: str) -> None:
        name = line.split()[0].lower()
        if name == "/session":
            render_note(
                self.console, f"session: {self.session_id or '(new; none yet)'}", style="bold"
            )
        elif name == "/new":
            self.session_id = None
            self._close()
            self._open()
            render_note(self.console, "started a new session", style="green")
        elif name == "/help":
            render_note(self.console, HELP, style="")
        else:
            render_error(self.console, f"unknown command {name}; try /help")

    def _show_idle(self, frame: Frame, redraw: bool) -> None:
        """Called by the reader thread while the user is at a prompt."""
        if not self._worth_showing(frame):
            return
        terminal = redraw and self.console.is_terminal
        if terminal:
            sys.stdout.write("\r\x1b[2K")  # the prompt line gives way to the news
            sys.stdout.flush()
        self._show_unrelated(frame)
        if terminal:
            sys.stdout.write(self._prompt + self._readline.buffer())
            sys.stdout.flush()

    @staticmethod
    def _worth_showing(frame: Frame) -> bool:
        kind = frame.get("type")
        return (
            (kind == "event" and isinstance(frame.get("event"), dict))
            or kind == "message"
            or kind == "notification"
            or (kind == "summary" and bool(frame.get("complete")) and bool(frame.get("content")))
            or (kind == "error" and frame.get("trace_id") is None)
        )

    def _show_unrelated(self, frame: Frame) -> None:
        """A frame that is not part of the turn being waited for."""
        if not self._worth_showing(frame):
            return
        kind = frame.get("type")
        if kind == "event":
            render_event(self.console, frame["event"])
        elif kind == "message":
            asked = frame.get("in_reply_to")
            if isinstance(asked, str):
                render_note(self.console, f"(elsewhere) you: {asked}")
            render_answer(self.console, frame)
        elif kind == "summary":
            render_summary(self.console, str(frame["content"]))
        elif kind == "notification":
            render_notification(self.console, frame)
        else:
            render_error(self.console, _error_text(frame))

    def _turn(self, frame: Frame) -> None:
        try:
            self._send(frame)
            answer = self._await_answer()
        except Disconnected:
            render_error(
                self.console, "the connection dropped before the answer arrived; ask again"
            )
            self._reconnect()
            return
        except KeyboardInterrupt:
            self.console.print()
            render_note(self.console, "stopped waiting; the answer will be shown when it arrives")
            return
        if answer is None:
            return
        session_id = answer.get("session_id")
        if isinstance(session_id, str) and session_id:
            self.session_id = session_id
        render_answer(self.console, answer)
        pending = answer.get("pending_confirmation")
        if isinstance(pending, dict):
            self._pending(pending)

    def _await_answer(self) -> Frame | None:
        socket = self._connected()
        trace_id: str | None = None
        deadline = time.monotonic() + TURN_TIMEOUT_S
        with Status("Sending…", console=self.console, spinner="dots") as status:
            while time.monotonic() < deadline:
                for frame in socket.frames(POLL_S):
                    kind = frame.get("type")
                    ours = trace_id is not None and frame.get("trace_id") == trace_id
                    if kind == "ack" and trace_id is None and frame.get("received") != "follow":
                        trace_id = frame.get("trace_id")
                        status.update("Waiting for the Orchestrator…")
                    elif kind == "typing" and ours:
                        status.update("Thinking…")
                    elif kind == "progress" and ours:
                        label = progress_label(frame)
                        self.console.print(Text(f"  · {label}", style="dim"))
                        status.update(f"{label}…")
                    elif kind == "message" and ours:
                        return frame
                    elif kind == "error" and (ours or frame.get("trace_id") is None):
                        render_error(self.console, _error_text(frame))
                        return None
                    else:
                        self._show_unrelated(frame)
        render_error(self.console, f"no answer within {TURN_TIMEOUT_S:g} s")
        return None

    def _pending(self, pending: dict[str, Any]) -> None:
        render_pending(self.console, pending)
        if pending.get("awaiting") == "details" or pending.get("missing"):
            return
        while True:
            try:
                reply = self._ask(CONFIRM_PROMPT).strip().lower()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                render_note(self.console, "left pending; say 'yes' or 'no' when you decide")
                return
            self._readline.forget_last()
            if reply in {"y", "yes"}:
                kind = "confirm"
            elif reply in {"n", "no"}:
                kind = "cancel"
            else:
                render_note(self.console, "please answer y or n", style="yellow")
                continue
            self._turn({"type": kind, "session_id": self.session_id})
            return
