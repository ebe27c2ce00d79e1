"""What a model is told of the conversation: the recent turns, cleaned and cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.conversation.planners.llm_common import MAX_TURN_CHARS, recent_history
from app.domain.plan import HistoryTurn, PlanContext


def _reference(text: str, limit: int) -> str:
    # The rule as first written: every non-printable character a space, then cut.
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _told(text: str) -> str:
    [(role, told)] = recent_history(PlanContext(history=[HistoryTurn(role="user", text=text)]))
    assert role == "user"
    return told


def test_an_answer_table_keeps_its_words_and_loses_its_line_breaks() -> None:
    table = "**3 droplets**\n\n| ID | Name |\n|---:|---|\n| 1 | registry |\r\n\t| 10 | orch |"
    assert _told(table) == _reference(table, MAX_TURN_CHARS)
    assert "\n" not in _told(table) and "| 1 | registry |" in _told(table)


def test_unicode_that_is_not_printable_becomes_a_space_too() -> None:
    # No-break space, zero-width joiner, a line separator, a private-use and an unassigned
    # code point, a lone surrogate: none printable, none a control character.
    text = "a\u00a0b\u200dc\u2028d\ue000e\U000e0080f\ud800g\x85h"
    assert _told(text) == "a b c d e f g h"


def test_a_long_turn_is_cut_with_an_ellipsis_at_the_limit() -> None:
    text = "x\n" * MAX_TURN_CHARS
    told = _told(text)
    assert len(told) == MAX_TURN_CHARS and told.endswith("…")
    assert told == _reference(text, MAX_TURN_CHARS)
    exact = "y" * MAX_TURN_CHARS
    assert _told(exact) == exact


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.text(
        alphabet=st.one_of(
            st.characters(codec="utf-8"),
            st.characters(max_codepoint=0xA0),
            st.sampled_from(["\n", "\r", "\t", "\x7f", "\u00a0", "\u200b", "\ud800", "é"]),
        ),
        min_size=1,
        max_size=3 * MAX_TURN_CHARS,
    ).filter(lambda t: t.strip() != "")
)
def test_any_text_is_told_exactly_as_the_first_rule_says(text: str) -> None:
    assert _told(text) == _reference(text, MAX_TURN_CHARS)
