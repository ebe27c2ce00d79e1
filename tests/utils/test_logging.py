"""The log redactor scrubs secrets wherever they are: nested values, exceptions, tracebacks."""

from __future__ import annotations

import logging

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
