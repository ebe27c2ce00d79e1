"""Terminal rendering of server text: hostile names stay visible and harmless."""

from __future__ import annotations

import re

from rich.console import Console

from app.channels.routes.web import WEB_DIR
from app.cli.render import _STATUS_WORDS, SafeMarkdown, clean, render_event, status_kind


def _render(renderable: object) -> tuple[str, str]:
    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console.export_text(styles=False, clear=False), console.export_text(styles=True)


def test_control_sequences_and_bidi_overrides_are_removed() -> None:
    assert clean("a\x1b]0;pwned\x07b\x1b[2Jc\u202ed\te\nf") == "a]0;pwnedb[2Jcd\te\nf"


def test_raw_html_is_shown_as_text_not_dropped() -> None:
    plain, _ = _render(SafeMarkdown("| id | name |\n|---|---|\n| 14 | <img src=x onerror=1> |"))
    assert "<img src=x onerror=1>" in plain


def test_rich_markup_in_names_is_not_interpreted() -> None:
    plain, _ = _render(SafeMarkdown("droplet [bold red]evil[/] here"))
    assert "[bold red]evil[/]" in plain
    console = Console(record=True, width=100)
    render_event(console, {"severity": "warning", "kind": "x", "summary": "[blink]boo[/]"})
    assert "[blink]boo[/]" in console.export_text()


def test_status_cells_are_coloured() -> None:
    _, styled = _render(SafeMarkdown("| s |\n|---|\n| ✅ active |\n| failed |"))
    assert "\x1b[1;32m" in styled  # bold green
    assert "\x1b[1;31m" in styled  # bold red


def test_status_kind() -> None:
    assert status_kind("✅ active") == "ok"
    assert status_kind("⚠️ inactive") == "warn"
    assert status_kind("in_progress") == "info"
    assert status_kind("❌") == "bad"
    assert status_kind("cancelled") == "muted"
    assert status_kind("Visibility Deck") is None
    assert status_kind("active " * 10) is None


def test_status_vocabulary_matches_the_web_page() -> None:
    script = (WEB_DIR / "static" / "markdown.js").read_text()
    web: dict[str, str] = {}
    for kind, words in re.findall(r'addStatus\("(\w+)", \[(.*?)\]\);', script, re.S):
        web.update(dict.fromkeys(re.findall(r'"([^"]+)"', words), kind))
    assert web == _STATUS_WORDS


def test_a_notification_and_a_pending_summary_are_shown_as_text() -> None:
    from app.cli.render import render_notification, render_pending

    console = Console(record=True, width=100)
    render_notification(console, {"text": "Droplet 16 is back \x1b[2J[bold]x[/]"})
    render_pending(console, {"tool": "cancel_tasks", "summary": "cancel 2 tasks: 4, 7", "args": {}})
    shown = console.export_text()
    assert "🔔 Droplet 16 is back [2J[bold]x[/]" in shown
    assert "Pending action: cancel_tasks (cancel 2 tasks: 4, 7)" in shown
