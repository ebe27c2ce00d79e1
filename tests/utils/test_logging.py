"""The log redactor scrubs secrets wherever they are: nested values, exceptions, tracebacks."""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog

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


class _Counting:
    """A processor that counts the events that reach the processors."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        self.events.append(str(event.get("event")))
        return event


@pytest.mark.parametrize(
    ("level", "written"),
    [
        ("DEBUG", ["d", "i", "w", "e"]),
        ("INFO", ["i", "w", "e"]),
        ("WARNING", ["w", "e"]),
        ("ERROR", ["e"]),
    ],
)
def test_events_below_the_level_skip_the_processors(
    level: str, written: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level=level, json_lines=True)
    counting = _Counting()
    config = structlog.get_config()
    # First, before the level filter: an event below the level must not reach the processors
    # at all (the logger asks the level before building it).
    structlog.configure(processors=[counting, *config["processors"]])
    log = structlog.get_logger("test.levels")
    log.debug("d", n=1)
    log.info("i", n=2)
    log.warning("w", n=3)
    log.error("e", n=4)
    assert counting.events == written
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [r["event"] for r in records if r.get("logger") == "test.levels"] == written
