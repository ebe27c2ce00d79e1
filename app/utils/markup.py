"""Pure text helpers for answers: markdown escaping for chat, plain speech for voice."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

# Entities for HTML, a backslash before what markdown would read: one pass with str.translate.
_MD_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", **{ch: "\\" + ch for ch in "\\`*_[]|~"}}
)
# Any character _MD_ESCAPES changes: most cells have none, and one search is cheaper than
# a translate that changes nothing.
_MD_SPECIAL = re.compile(r"[&<>\\`*_\[\]|~]")
_SPACE = re.compile(r"\s+")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+", re.IGNORECASE)
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d+)?(?:[/?#][^\s<>\"'`\\|]*)?$")
# Characters a speech engine would read aloud as symbols, or that are markdown.
_VOICE_DROP = frozenset("#*|_`~<>[]{}^\\")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufe0e\ufe0f")
# Arrows, technical symbols, enclosed numbers, dingbats and emoji: pictures, not words.
_SYMBOL_BLOCKS = ((0x2190, 0x2BFF), (0x1F000, 0x1FAFF), (0x1FB00, 0x1FBFF))

_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)  # fmt: skip


def escape_markdown(text: str, *, limit: int | None = None) -> str:
    """Peer- or user-supplied text made inert in markdown: one line, no HTML, no table breaks.

    Pipes, backticks, emphasis, brackets and backslashes are escaped; angle brackets and
    ampersands become entities, so "<script>" shows as text and "| evil |" stays in its cell.
    """
    # Every table cell of every answer comes through here: plain ASCII (most of them) skips
    # the per-character passes, which only matter for zero-width and control characters.
    plain = text.isascii()
    if plain and text.isprintable() and "  " not in text:
        flat = text  # the only ASCII printable space is " ": nothing to collapse
    else:
        flat = _SPACE.sub(" ", text if plain else "".join(c for c in text if c not in _ZERO_WIDTH))
    flat = flat.strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: max(1, limit - 1)].rstrip() + "…"
    if not (plain and flat.isprintable()):
        flat = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in flat)
    return flat.translate(_MD_ESCAPES) if _MD_SPECIAL.search(flat) else flat


def markdown_link(url: str) -> str:
    """A URL as a clickable autolink when it is a plain http(s) URL, else as escaped text."""
    return f"<{url}>" if _SAFE_URL.match(url) else escape_markdown(url)


def to_voice(text: str) -> str:
    """Text fit for a speech engine: no markdown, emoji, symbols or raw URLs."""
    text = _URL.sub(" a link ", text)
    text = text.replace("&", " and ")
    out: list[str] = []
    for ch in text:
        if ch in _ZERO_WIDTH:
            continue
        category = unicodedata.category(ch)
        if (
            any(lo <= ord(ch) <= hi for lo, hi in _SYMBOL_BLOCKS)
            or ch in _VOICE_DROP
            or category in ("So", "Sk", "Cs", "Co", "Cn", "Cc", "Cf", "Zl", "Zp")
        ):
            out.append(" ")
        elif category == "Mn" and not out:
            continue
        else:
            out.append(ch)
    spoken = "".join(out).replace("://", " ")
    # A token of symbols only ("://", "=>", "--") is noise when read aloud.
    spoken = re.sub(r"(?<!\S)[^\w\s]{2,}(?!\S)|(?<!\S)[^\w\s.,;:!?'\"()-](?!\S)", " ", spoken)
    spoken = _SPACE.sub(" ", spoken).strip()
    spoken = re.sub(r"\s+([.,;:!?])", r"\1", spoken)
    spoken = re.sub(r"([,;])(?=[^\s\d])", r"\1 ", spoken)
    return re.sub(r"([.,;:!?])\1+", r"\1", spoken)


def plain_name(text: str, *, limit: int = 60) -> str:
    """A name to say aloud: symbols dropped, length capped."""
    spoken = to_voice(text)
    if len(spoken) > limit:
        spoken = spoken[:limit].rsplit(" ", 1)[0] or spoken[:limit]
    return spoken or "unnamed"


def number_word(n: int, *, capital: bool = False) -> str:
    """ "seven" for 7 (up to twenty), digits above: how a count is read aloud."""
    word = _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)
    return word[:1].upper() + word[1:] if capital else word


def join_words(items: Sequence[str], *, conjunction: str = "and") -> str:
    """ "A, B and C"."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    return singular if n == 1 else (plural_form or f"{singular}s")


def ago(seconds: float, *, spoken: bool = False) -> str:
    """ "12 s ago" (chat) or "12 seconds ago" (voice)."""
    s = max(0, int(seconds))
    for size, short, long in ((86400, "d", "day"), (3600, "h", "hour"), (60, "min", "minute")):
        if s >= size:
            n = s // size
            return f"{n} {plural(n, long)} ago" if spoken else f"{n} {short} ago"
    return f"{s} {plural(s, 'second')} ago" if spoken else f"{s} s ago"


def when(moment: datetime, *, spoken: bool = False) -> str:
    """An absolute time in UTC; naive times are taken as UTC (the Orchestrator sends them so)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return (
        utc.strftime("%H:%M UTC on %B %d").replace(" 0", " ")
        if spoken
        else utc.strftime("%Y-%m-%d %H:%M UTC")
    )
