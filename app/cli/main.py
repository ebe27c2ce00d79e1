"""`chat-orchestrator` (also `python -m app.cli`): talk to droplet 12 from a terminal, or start it.

    chat-orchestrator chat [--url URL] [--session ID] [--token JWT]   interactive, over /ws
    chat-orchestrator ask "show me all droplets" [--json] [...]      one turn, POST /api/chat
    chat-orchestrator serve                                         the service (app.main)
    chat-orchestrator sandbox [sandbox options]                     the local mesh
    chat-orchestrator db migrate | revision | backup DEST | restore SRC   the session store

`--url` takes the service's base URL in any of its forms (`http://host:8012`, `ws://host:8012/ws`,
`host:8012`); `CHAT_ORCHESTRATOR_URL` and `CHAT_ORCHESTRATOR_TOKEN` set the defaults.
Exit codes of `ask` and `chat`: 0 success, 1 the service answered with an error, 2 bad usage,
3 the service could not be reached.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import typer
from rich.console import Console

from app.cli.render import clean, render_answer, render_error, render_note, render_pending
from app.store.cli import build_db_cli

DEFAULT_URL = "http://localhost:8012"
EXIT_SERVER_ERROR = 1
EXIT_UNREACHABLE = 3

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        "-u",
        envvar="CHAT_ORCHESTRATOR_URL",
        help="Base URL of the Chat Orchestrator (http(s):// or ws(s)://).",
    ),
]
SessionOption = Annotated[
    str | None, typer.Option("--session", "-s", help="Continue this session (default: a new one).")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        "-t",
        envvar="CHAT_ORCHESTRATOR_TOKEN",
        help="Bearer JWT, when the service runs with CHAT_AUTH=jwt.",
    ),
]


def endpoints(url: str) -> tuple[str, str]:
    """(HTTP base, WebSocket URL) from whatever form of the service URL the user typed."""
    raw = url.strip()
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https", "ws", "wss"} or not parts.netloc:
        raise typer.BadParameter(f"not an http(s) or ws(s) URL: {url}", param_hint="--url")
    secure = scheme in {"https", "wss"}
    path = parts.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    http_base = urlunsplit(("https" if secure else "http", parts.netloc, path, "", ""))
    ws_url = urlunsplit(("wss" if secure else "ws", parts.netloc, f"{path}/ws", "", ""))
    return http_base, ws_url


def _error_message(response: httpx2.Response) -> str:
    """The message of the standard error body, or the status line when the body is not ours."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} {response.reason_phrase}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"HTTP {response.status_code} {error.get('code', '')}: {error.get('message', '')}"
    return f"HTTP {response.status_code} {response.reason_phrase}"


def chat(
    url: UrlOption = DEFAULT_URL, session: SessionOption = None, token: TokenOption = None
) -> None:
    """Chat interactively over the WebSocket (markdown answers, live progress, y/n prompts)."""
    from app.cli.repl import ChatConnectionError, ChatRepl

    _, ws_url = endpoints(url)
    console = Console()
    repl = ChatRepl(console=console, ws_url=ws_url, session_id=session, token=token)
    try:
        code = repl.run()
    except ChatConnectionError as exc:
        render_error(Console(stderr=True), exc)
        raise typer.Exit(EXIT_SERVER_ERROR if exc.refused else EXIT_UNREACHABLE) from None
    raise typer.Exit(code)


def ask(
    message: Annotated[str, typer.Argument(help="What to ask, e.g. 'show me all droplets'.")],
    url: UrlOption = DEFAULT_URL,
    session: SessionOption = None,
    token: TokenOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the response object as JSON (for scripts).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 60.0,
) -> None:
    """Ask one question over REST and print the answer; non-zero exit on any error."""
    http_base, _ = endpoints(url)
    errors = Console(stderr=True)
    body: dict[str, Any] = {"message": message}
    if session:
        body["session_id"] = session
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx2.post(f"{http_base}/api/chat", json=body, headers=headers, timeout=timeout)
    except httpx2.HTTPError as exc:
        render_error(errors, f"cannot reach {http_base}: {exc or type(exc).__name__}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_error or not isinstance(data, dict):
        render_error(
            errors,
            _error_message(response)
            if response.is_error
            else f"not a JSON answer from {http_base}",
        )
        if as_json and data is not None:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
        raise typer.Exit(EXIT_SERVER_ERROR)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    render_answer(Console(), data)
    session_id = clean(data.get("session_id", ""))
    pending = data.get("pending_confirmation")
    if isinstance(pending, dict):
        render_pending(Console(), pending)
        if not pending.get("missing"):
            render_note(
                errors,
                f"to confirm: chat-orchestrator ask yes --session {session_id}  "
                f"(or: ask no --session {session_id})",
                style="yellow",
            )
    render_note(errors, f"session: {session_id}")


def serve() -> None:
    """Run the Chat Orchestrator, configured from the environment / .env (python -m app.main)."""
    from app.main import main as serve_main

    serve_main()


def sandbox(ctx: typer.Context) -> None:
    """Run the sandbox Registry and Orchestrator (options as for python -m sandbox)."""
    # The sandbox is a development and test tool: a source checkout has it, the production
    # image does not, and nothing else in app/ imports it.
    try:
        from sandbox.__main__ import main as sandbox_main
    except ModuleNotFoundError as exc:
        if exc.name != "sandbox":
            raise
        typer.echo(
            "the sandbox is not part of this installation (it ships with the source, not the "
            "image); run it from a checkout: make sandbox",
            err=True,
        )
        raise typer.Exit(2) from None
    raise typer.Exit(sandbox_main(list(ctx.args)))


def build_cli() -> typer.Typer:
    cli = typer.Typer(
        name="chat-orchestrator",
        help="Talk to the droplet mesh through the Chat Orchestrator (droplet 12), or start it.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    cli.command()(chat)
    cli.command()(ask)
    cli.command()(serve)
    cli.command(
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            "help_option_names": [],
        }
    )(sandbox)
    cli.add_typer(build_db_cli(), name="db")
    return cli


def main() -> None:
    build_cli()(prog_name="chat-orchestrator")


if __name__ == "__main__":
    main()
