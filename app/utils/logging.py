"""structlog set-up: JSON lines in production, a readable console in development."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(secret|token|password|api_key|apikey|authorization|private)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


class Redactor:
    """Removes secrets from every event, at any depth: known values, secret-named keys, bearer
    tokens and JWTs in strings, lists, dicts, exception messages and rendered tracebacks.

    It runs after `format_exc_info`, so a traceback is already text when it is scrubbed.
    """

    MAX_DEPTH = 8

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values = tuple(
            sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True)
        )

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "[redacted]")
        text = _BEARER.sub(r"\1[redacted]", text)
        return _JWT.sub("[redacted-jwt]", text)

    def _clean(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if depth >= self.MAX_DEPTH:
            return "[nested too deep]"
        if isinstance(value, Mapping):
            return {
                k: "[redacted]"
                if isinstance(k, str) and _SECRET_KEYS.search(k)
                else self._clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v, depth + 1) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(str(value))

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key in ("exc_info", "stack_info") and not isinstance(value, str):
                continue  # rendered (and then scrubbed) by format_exc_info first
            if _SECRET_KEYS.search(key) and key != "event":
                event_dict[key] = "[redacted]"
            else:
                event_dict[key] = self._clean(value, 0)
        return event_dict


def configure_logging(*, level: str, json_lines: bool, secrets: Iterable[str] = ()) -> None:
    """Route structlog and the standard library (uvicorn, httpx2) through one renderer."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        # Tracebacks become text before the redactor, so secrets in them are scrubbed too.
        structlog.processors.format_exc_info,
        Redactor(secrets),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # An event below the logger's level is dropped before the processors run: a turn's
        # info lines cost nothing at LOG_LEVEL=WARNING.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates our request log line; its error log stays.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    for noisy in ("httpx2", "httpcore2", "aiosqlite", "asyncio", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
