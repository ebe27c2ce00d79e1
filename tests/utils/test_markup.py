"""Markdown escaping and speech cleaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.utils.markup import (
    _MD_ESCAPES,
    _MD_SPECIAL,
    ago,
    escape_markdown,
    join_words,
    markdown_link,
    number_word,
    plain_name,
    to_voice,
    when,
)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("| evil |", "\\| evil \\|"),
        ("`code` *b* _i_ [x](y) ~s~", "\\`code\\` \\*b\\* \\_i\\_ \\[x\\](y) \\~s\\~"),
        ("a\nb\tc", "a b c"),
        ("R&D", "R&amp;D"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_escape_markdown(raw: str, escaped: str) -> None:
    assert escape_markdown(raw) == escaped


def test_escape_markdown_truncates_before_escaping() -> None:
    assert escape_markdown("abcdefghij", limit=5) == "abcd…"


def test_markdown_link_only_for_plain_http_urls() -> None:
    assert markdown_link("https://github.com/x/y") == "<https://github.com/x/y>"
    assert markdown_link("javascript:alert(1)") == "javascript:alert(1)"
    assert markdown_link("https://x.io/a>b") == "https://x.io/a&gt;b"


def test_to_voice_drops_markdown_emoji_and_urls() -> None:
    assert to_voice("**Done** ✅ see https://x.io/a_b #7 | `x` 👍🏽") == "Done see a link 7 x"
    assert to_voice("R&D_team") == "R and D team"
    assert to_voice("a ,b  .") == "a, b."


def test_plain_name_and_numbers() -> None:
    assert plain_name("<script>") == "script"
    assert plain_name("🔥") == "unnamed"
    assert number_word(7, capital=True) == "Seven"
    assert number_word(21) == "21"
    assert join_words(["A", "B", "C"]) == "A, B and C"
    assert join_words(["A"]) == "A"


def test_times() -> None:
    assert ago(12) == "12 s ago"
    assert ago(400, spoken=True) == "6 minutes ago"
    assert ago(7200) == "2 h ago"
    assert ago(1, spoken=True) == "1 second ago"
    moment = datetime(2025, 11, 7, 16, 5, tzinfo=timezone(timedelta(hours=2)))
    assert when(moment) == "2025-11-07 14:05 UTC"
    assert when(datetime(2025, 11, 7, 14, 5), spoken=True) == "14:05 UTC on November 7"
    assert when(datetime(2025, 11, 7, 14, 5, tzinfo=UTC)) == "2025-11-07 14:05 UTC"


def _escape_reference(text: str, *, limit: int | None = None) -> str:
    """escape_markdown as first written, one character pass at a time: the fast path for
    plain ASCII must give exactly this."""
    import re
    import unicodedata

    zero_width = frozenset("\u200b\u200c\u200d\u2060\ufe0e\ufe0f")
    flat = re.sub(r"\s+", " ", "".join(ch for ch in text if ch not in zero_width)).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: max(1, limit - 1)].rstrip() + "…"
    flat = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in flat)
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", flat)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet=st.characters(max_codepoint=127), max_size=80),
        st.text(max_size=80),
    ),
    limit=st.one_of(st.none(), st.integers(min_value=1, max_value=70)),
)
def test_escape_markdown_equals_the_reference(text: str, limit: int | None) -> None:
    assert escape_markdown(text, limit=limit) == _escape_reference(text, limit=limit)


def test_a_cell_is_left_as_is_exactly_when_no_character_needs_escaping() -> None:
    """The check that skips the translation sees every character the translation changes."""
    for code in range(0x110000):
        char = chr(code)
        assert (char.translate(_MD_ESCAPES) != char) == bool(_MD_SPECIAL.search(char)), hex(code)
    assert escape_markdown("task_routing | x") == "task\\_routing \\| x"
    assert escape_markdown("Visibility Deck") == "Visibility Deck"
