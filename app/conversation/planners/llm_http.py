"""The model planners' HTTP plumbing: one client, compact JSON bodies, statuses as PlannerFailure.

The planners speak the providers' REST APIs with httpx2 directly (shared/contracts/llm.md): an SDK
rebuilt and validated the whole request (the tool catalogue included) through its own models on
every call, which cost more CPU than the rest of a turn (docs/performance.md, issue 17).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, overload

import httpx2
import structlog
from pydantic import SecretStr

from app.conversation.planners.llm_common import (
    PROBE_TIMEOUT_S,
    TURN_DEADLINE_FACTOR,
    ModelRound,
    PlannerFailure,
    model_retry,
    parse_retry_after,
    plan_with_model,
)
from app.domain.plan import Plan
from app.tools.registry import ToolRegistry, default_tools
from app.utils.http_transport import outbound_client, parsed_url

log = structlog.get_logger(__name__)

# httpx2's own timeout is a backstop; the asyncio.timeout around each request is the deadline
# that counts, so it fires first and a timeout is always reported the same way.
_CLIENT_TIMEOUT_GRACE_S = 1.0
_SSE_DATA = "data:"
_SSE_DONE = "[DONE]"


def new_client(*, timeout_s: float) -> httpx2.AsyncClient:
    """The one connection pool a planner keeps for its model server (closed by `aclose`)."""
    return outbound_client(timeout=timeout_s + _CLIENT_TIMEOUT_GRACE_S)


def dumps(value: Any) -> str:
    """Compact ASCII JSON: what every request body is made of."""
    return json.dumps(value, separators=(",", ":"))


def escaped(text: str) -> str:
    """`text` as the inside of a JSON string literal. Escaping works character by character, so
    a string's literal is the concatenation of its pieces' insides: a constant prefix is escaped
    once and only the variable rest per call."""
    return dumps(text)[1:-1]


def members(constant: Mapping[str, Any]) -> str:
    """The inside of a JSON object (`"a":1,"b":2`), to close a body whose head varies."""
    return dumps(dict(constant))[1:-1]


def failure_for_status(status: int, headers: httpx2.Headers) -> PlannerFailure:
    """The same reasons whichever provider answered."""
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return PlannerFailure("rate_limited", retryable=True, retry_after_s=retry_after)
    if status == 408:
        return PlannerFailure("timeout")
    if status >= 500:
        return PlannerFailure("upstream_error", retryable=True)
    return PlannerFailure("rejected")


def translate(exc: BaseException, *, planner: str) -> PlannerFailure:
    """An exception raised while talking to the model server, as a PlannerFailure."""
    if isinstance(exc, PlannerFailure):
        return exc
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return PlannerFailure("timeout")
    # The event keeps its per-provider name (gemini_transport_error, openai_transport_error).
    log.warning(f"{planner}_transport_error", error_type=type(exc).__name__)
    # Connection refused or reset, a broken response: transient as far as we know. Anything
    # else is our own bug, and asking again would not help.
    return PlannerFailure("upstream_error", retryable=isinstance(exc, httpx2.HTTPError))


def unreadable(planner: str, what: str) -> PlannerFailure:
    """A 2xx whose body is not what the contract says: retried once, like a transport error."""
    log.warning("llm_unreadable_response", planner=planner, problem=what)
    return PlannerFailure("upstream_error", retryable=True)


async def post_json(
    client: httpx2.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    planner: str,
) -> dict[str, Any]:
    """POST a JSON body and return the JSON object answered; PlannerFailure for anything else."""
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.post(parsed_url(url), content=body, headers=headers)
    except Exception as exc:
        raise translate(exc, planner=planner) from exc
    if response.status_code >= 300:
        raise failure_for_status(response.status_code, response.headers)
    return _json_object(response.content, planner=planner, what="")


def _json_object(data: str | bytes, *, planner: str, what: str) -> dict[str, Any]:
    """`data` as a JSON object; the upstream error naming `what` (an answer, an event) if not."""
    try:
        value = json.loads(data)
    except ValueError:
        raise unreadable(planner, f"{what}not JSON") from None
    if not isinstance(value, dict):
        raise unreadable(planner, f"{what}not a JSON object")
    return value


async def post_sse(
    client: httpx2.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    planner: str,
) -> AsyncGenerator[dict[str, Any], None]:
    """POST and yield each server-sent event's JSON object, until the stream (or `[DONE]`) ends.

    `timeout_s` bounds the wait for the response and then for each event, not the whole stream.
    """
    request = client.build_request("POST", parsed_url(url), content=body, headers=headers)
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.send(request, stream=True)
    except Exception as exc:
        raise translate(exc, planner=planner) from exc
    try:
        if response.status_code >= 300:
            raise failure_for_status(response.status_code, response.headers)
        lines = response.aiter_lines()
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    line = await anext(lines)
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise translate(exc, planner=planner) from exc
            if not line.startswith(_SSE_DATA):
                continue  # blank separators, comments, `event:` lines
            data = line[len(_SSE_DATA) :].strip()
            if data == _SSE_DONE:
                return
            yield _json_object(data, planner=planner, what="event ")
    finally:
        await response.aclose()


async def model_answers(
    client: httpx2.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    model: str,
    timeout_s: float,
) -> tuple[bool, str | None]:
    """A model look-up (no tokens spent) for a health probe: (answers, why not)."""
    try:
        response = await client.get(url, headers=headers, timeout=timeout_s)
    except Exception as exc:
        # Connection refused, DNS, timeout: no upstream text, only what kind of failure.
        return False, f"model {model} unreachable ({type(exc).__name__})"
    if response.status_code >= 300:
        return False, f"model {model} answered HTTP {response.status_code}"
    return True, None


class ModelClient:
    """What both model planners share: the one kept-alive client and its settings, posting a
    plan request or a streamed summary, closing, and asking whether the configured model
    answers (`_model_url`: a look-up that costs no tokens and fails the way a plan would, for
    a wrong key, an unknown model or a service that is down)."""

    name: str
    _model_url: str

    def __init__(
        self,
        *,
        model: str,
        headers: dict[str, str],
        timeout_s: float,
        retry_backoff_s: float,
        tools: ToolRegistry | None,
    ) -> None:
        self.model = model
        self._headers = headers
        self._tools = tools or default_tools()
        self._timeout_s = timeout_s
        self._retry = model_retry(retry_backoff_s)
        # A turn may take a retry or a correction, but never more than this many timeouts.
        self._turn_deadline_s = TURN_DEADLINE_FACTOR * timeout_s
        self._client = new_client(timeout_s=timeout_s)

    async def _post(self, url: str, body: bytes) -> dict[str, Any]:
        return await post_json(
            self._client,
            url,
            body=body,
            headers=self._headers,
            timeout_s=self._timeout_s,
            planner=self.name,
        )

    async def _plan(self, exchange: ModelRound) -> Plan:
        return await plan_with_model(
            exchange,
            planner=self.name,
            model=self.model,
            retry=self._retry,
            turn_deadline_s=self._turn_deadline_s,
            tools=self._tools,
        )

    async def _streamed(
        self, url: str, body: bytes, pieces: Callable[[dict[str, Any]], Iterable[str]]
    ) -> AsyncIterator[str]:
        """The non-empty text pieces of a streamed answer, `pieces` reading each event."""
        events = post_sse(
            self._client,
            url,
            body=body,
            headers=self._headers,
            timeout_s=self._timeout_s,
            planner=self.name,
        )
        try:
            async for event in events:
                for piece in pieces(event):
                    if piece:
                        yield piece
        finally:
            await events.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def probe(self) -> tuple[bool, str | None]:
        return await model_answers(
            self._client,
            self._model_url,
            headers=self._headers,
            model=self.model,
            timeout_s=PROBE_TIMEOUT_S,
        )


@overload
def secret_text(value: str | SecretStr) -> str: ...
@overload
def secret_text(value: str | SecretStr | None) -> str | None: ...
def secret_text(value: str | SecretStr | None) -> str | None:
    """An API key as text, whether it came as a plain string or from settings."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value
