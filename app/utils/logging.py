"""structlog set-up: JSON lines in production, a readable console in development.

Our own events are rendered by structlog and written straight to the output stream; only
other libraries' records (uvicorn, httpx2, ...) go through the standard library's logging, with
the same processors and renderer, so every line looks alike. Why not everything through the
standard library, as before: that handed each event to a `LogRecord`, which the formatter then
copied, and looked the level and the logger up again per call; a turn's two INFO lines cost
~130 µs of CPU (~13% of a read turn) that way, and an event below the level still ~6.5 µs.

Loggers are cached on first use (no re-binding per call). A later `configure_logging` (every
app a test builds) still reaches them: the processors list is changed in place and the output
is retargeted, never replaced, so a cached logger always sees the current configuration, and
structlog's `capture_logs` (which also edits that list in place) sees every event.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(secret|token|password|api_key|apikey|authorization|private)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# What every one of the substitutions in `Redactor.scrub` needs to find, in one search: a text
# without any of it is returned as it is (nearly every value of nearly every event).
_SUSPECT_PATTERNS = (r"(?i:bearer)\s", r"eyJ[A-Za-z0-9_-]{5,}\.")
_PLAIN = frozenset({int, float, bool, type(None)})


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
        suspects = [re.escape(v) for v in self._values] + list(_SUSPECT_PATTERNS)
        self._suspect = re.compile("|".join(suspects))
        # Key names come from the code's log calls (and, nested, from the data logged): a
        # bounded memo of the verdict saves a search per key per event.
        self._secret_key: Callable[[str], bool] = functools.lru_cache(maxsize=1024)(
            lambda key: _SECRET_KEYS.search(key) is not None
        )

    def scrub(self, text: str) -> str:
        if self._suspect.search(text) is None:
            return text if type(text) is str else str.__str__(text)
        for value in self._values:
            text = text.replace(value, "[redacted]")
        text = _BEARER.sub(r"\1[redacted]", text)
        return _JWT.sub("[redacted-jwt]", text)

    def _clean(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if type(value) in _PLAIN:  # the common case first: no ABC check for a number
            return value
        if depth >= self.MAX_DEPTH:
            return "[nested too deep]"
        if isinstance(value, Mapping):
            return {
                k: "[redacted]"
                if isinstance(k, str) and self._secret_key(k)
                else self._clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v, depth + 1) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        if isinstance(value, int | float | bool):  # their subclasses (IntEnum, ...)
            return value
        return self.scrub(str(value))

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key in ("exc_info", "stack_info") and not isinstance(value, str):
                continue  # rendered (and then scrubbed) by format_exc_info first
            if key != "event" and self._secret_key(key):
                event_dict[key] = "[redacted]"
            else:
                event_dict[key] = self._clean(value, 0)
        return event_dict


class _LevelFilter:
    """Drops an event below `level` before any other processor runs."""

    def __init__(self, level: str) -> None:
        self._min = structlog.processors.NAME_TO_LEVEL[level.lower()]

    def drops(self, method_name: str) -> bool:
        return structlog.processors.NAME_TO_LEVEL.get(method_name, logging.CRITICAL) < self._min

    def __call__(
        self, _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if self.drops(method_name):
            raise structlog.DropEvent
        return event_dict


class _BoundLogger(structlog.make_filtering_bound_logger(logging.DEBUG)):  # type: ignore[misc]
    """structlog's bound logger, every level passed on to the processors, where `_LevelFilter`
    (first of them) decides: a cached logger follows a change of level, and `capture_logs`
    (which puts its own processor in the filter's place) sees every event. The levels that are
    usually below it ask the filter before the event is built (a turn makes two such calls)."""

    def _dropped(self, method_name: str) -> bool:
        processors = self._processors
        first = processors[0] if processors else None
        return isinstance(first, _LevelFilter) and first.drops(method_name)

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("debug") else super().debug(event, *args, **kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("info") else super().info(event, *args, **kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("warning") else super().warning(event, *args, **kw)


class _Output:
    """Where our rendered lines go: the stream of the handler the standard library's records
    use, under that handler's lock, so lines of both never interleave."""

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self.handler = handler
        """Replaced by each configuration: cached loggers hold this object, not the handler."""

    def write(self, line: str) -> None:
        handler = self.handler
        handler.acquire()
        try:
            handler.stream.write(line + "\n")
            handler.stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream (EPIPE, a finished capture): as the standard library's
            # handler, a log call never fails the code that made it.
            pass
        finally:
            handler.release()


class _LineLogger:
    """structlog's logger: hands the rendered line to the output, whatever the level."""

    __slots__ = ("_output", "name")

    def __init__(self, name: str, output: _Output) -> None:
        self.name = name  # for add_logger_name
        self._output = output

    def msg(self, message: str) -> None:
        self._output.write(message)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class _LineLoggerFactory:
    def __init__(self, output: _Output) -> None:
        self.output = output

    def __call__(self, *args: Any) -> _LineLogger:
        name = args[0] if args and isinstance(args[0], str) else "app"
        return _LineLogger(name, self.output)


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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    config = structlog.get_config()
    factory = config["logger_factory"]
    if isinstance(factory, _LineLoggerFactory):
        factory.output.handler = handler
    else:
        factory = _LineLoggerFactory(_Output(handler))
    # In place: loggers cached since the last configuration hold this very list.
    processors: list[Any] = config["processors"]
    processors[:] = [_LevelFilter(level), *shared, renderer]
    structlog.configure(
        processors=processors,
        logger_factory=factory,
        wrapper_class=_BoundLogger,
        cache_logger_on_first_use=True,
    )
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
