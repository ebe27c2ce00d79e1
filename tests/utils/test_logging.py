"""The log redactor scrubs secrets wherever they are: nested values, exceptions, tracebacks."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from app.utils.logging import Redactor, configure_logging

SECRET = "s3cr3t-droplet-key-4711"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQ"


def test_nested_values_are_scrubbed() -> None:
    redact = Redactor([SECRET])
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "payload": {"headers": {"Authorization": f"Bearer {JWT}"}, "list": [f"key={SECRET}"]},
            "items": [{"deep": [[f"Bearer {JWT}"]]}],
            "error": ValueError(f"upstream said {SECRET}"),
            "count": 3,
        },
    )
    text = repr(event)
    assert SECRET not in text and JWT not in text
    assert event["count"] == 3
    assert event["payload"]["headers"]["Authorization"] == "[redacted]"


def test_exception_messages_and_tracebacks_are_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json_lines=True, secrets=[SECRET])
    log = structlog.get_logger("test")
    try:
        raise RuntimeError(f"token {JWT} and secret {SECRET} in the message")
    except RuntimeError as exc:
        log.error("structlog_failure", exc_info=exc)
        logging.getLogger("uvicorn.error").exception("stdlib failure with %s", SECRET)
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err
    assert SECRET not in err
    assert JWT not in err
    assert err.count("[redacted]") >= 3


def _full_scrub(text: str, secrets: list[str]) -> str:
    """The scrub without its shortcut: every substitution on every text."""
    for value in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    text = re.sub(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1[redacted]", text, flags=re.I)
    jwt = r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    return re.sub(jwt, "[redacted-jwt]", text)


_PIECES = st.sampled_from(
    [SECRET, JWT, "Bearer ", "bEaReR\t", "eyJ", "eyJabcde.", "abc.def", " ", "x", "[redacted]", "."]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=8))
def test_the_scrub_shortcut_changes_no_answer(pieces: list[str]) -> None:
    # A text is returned as it is only when none of the substitutions could change it.
    text = "".join(pieces)
    assert Redactor([SECRET, "abc"]).scrub(text) == _full_scrub(text, [SECRET, "abc"])


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_events_below_the_level_are_dropped_ours_and_the_libraries_alike(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="WARNING", json_lines=True)
    log = structlog.get_logger("app.test_levels")
    log.debug("d")
    log.info("i")
    log.warning("w", n=1)
    log.error("e")
    logging.getLogger("uvicorn.error").info("library info")
    logging.getLogger("uvicorn.error").warning("library warning")
    events = [(e["event"], e["level"], e["logger"]) for e in _lines(capsys.readouterr().err)]
    assert events == [
        ("w", "warning", "app.test_levels"),
        ("e", "error", "app.test_levels"),
        ("library warning", "warning", "uvicorn.error"),
    ]


def test_an_event_below_the_level_is_not_even_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # The cheap path a turn's info lines take at WARNING: the level is asked first.
    built: list[str] = []
    original = structlog.BoundLoggerBase._process_event

    def counting(self: Any, method_name: str, event: Any, event_kw: Any) -> Any:
        built.append(method_name)
        return original(self, method_name, event, event_kw)

    monkeypatch.setattr(structlog.BoundLoggerBase, "_process_event", counting)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    configure_logging(level="WARNING", json_lines=True)
    log = structlog.get_logger("app.test_not_built")
    log.debug("d")
    log.info("i", n=1)
    log.warning("w")
    assert built == ["warning"]


def test_a_logger_used_before_a_new_configuration_follows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Loggers are cached on first use; a later configuration (another app in the same
    # process) must still reach them: its level, its secrets and its stream.
    log = structlog.get_logger("app.test_reconfigured")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(level="ERROR", json_lines=True)
    log.warning("dropped at ERROR")
    log.error("kept at ERROR")
    monkeypatch.setattr(sys, "stderr", second)
    configure_logging(level="INFO", json_lines=True, secrets=[SECRET])
    log.info("kept at INFO", detail=f"key {SECRET}")
    assert [e["event"] for e in _lines(first.getvalue())] == ["kept at ERROR"]
    assert [(e["event"], e["detail"]) for e in _lines(second.getvalue())] == [
        ("kept at INFO", "key [redacted]")
    ]


def test_capture_logs_sees_a_cached_logger_at_every_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Tests capture every event whatever level an earlier app configured (the thirteenth
    # session's attempt at cheap filtering broke that: docs/performance.md).
    configure_logging(level="WARNING", json_lines=True)
    log = structlog.get_logger("app.test_captured")
    log.warning("before")  # cached from here on
    with capture_logs() as captured:
        log.info("during", n=2)
        log.debug("detail")
    log.info("after, below the level")
    log.warning("after")
    assert captured == [
        {"event": "during", "n": 2, "log_level": "info"},
        {"event": "detail", "log_level": "debug"},
    ]
    assert [e["event"] for e in _lines(capsys.readouterr().err)] == ["before", "after"]


def test_a_closed_stream_never_fails_the_code_that_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", configured)
    configure_logging(level="INFO", json_lines=True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # where the library reports its own error
    configured.close()  # a capture that ended, a pipe whose reader left
    structlog.get_logger("app.test_closed").info("into a closed stream")
    logging.getLogger("uvicorn.error").error("library line into a closed stream")
