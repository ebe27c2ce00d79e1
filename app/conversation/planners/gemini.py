"""The Gemini planner: the catalogue's tools as function declarations, through the async SDK.

Automatic function calling stays disabled: the SDK must never run anything itself, since every
write passes our confirmation gate. Wire shapes: shared/contracts/llm.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import SecretStr

from app.conversation.planners.llm_common import (
    PROBE_TIMEOUT_S,
    SUMMARY_PROMPT,
    PlannerFailure,
    Proposal,
    looks_like_timeout,
    model_retry,
    parse_retry_after,
    plan_with_model,
    recent_history,
    system_instruction,
)
from app.domain.plan import Plan, PlanContext, ToolCall
from app.tools.registry import ToolRegistry, default_tools

log = structlog.get_logger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash"
# The SDK's own timeout is a backstop; asyncio.timeout below is the deadline that counts, so it
# fires first and a timeout is always reported the same way.
_SDK_TIMEOUT_GRACE_S = 1.0
# A turn may take a retry or a correction, but never more than this many timeouts in all.
_TURN_DEADLINE_FACTOR = 2.0
_MAX_OUTPUT_TOKENS = 1024
_MALFORMED = frozenset(
    {types.FinishReason.MALFORMED_FUNCTION_CALL, types.FinishReason.UNEXPECTED_TOOL_CALL}
)


def thinking_config_for(model: str) -> types.ThinkingConfig | None:
    """Thinking off (or as low as the model allows): planning is a lookup, not a puzzle."""
    name = model.lower().removeprefix("models/")
    if name.startswith("gemini-2.5-pro"):
        return types.ThinkingConfig(thinking_budget=128)  # the Pro minimum; 0 is refused
    if name.startswith("gemini-2.5"):
        return types.ThinkingConfig(thinking_budget=0)
    if name.startswith("gemini-3"):
        level = types.ThinkingLevel.LOW if "pro" in name else types.ThinkingLevel.MINIMAL
        return types.ThinkingConfig(thinking_level=level)
    return None  # older or unknown models reject a thinking config


def _failure_from_api_error(exc: genai_errors.APIError) -> PlannerFailure:
    retry_after = None
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        retry_after = parse_retry_after(headers.get("retry-after"))
    if exc.code == 429:
        return PlannerFailure("rate_limited", retryable=True, retry_after_s=retry_after)
    if exc.code == 408:
        return PlannerFailure("timeout")
    if isinstance(exc.code, int) and exc.code >= 500:
        return PlannerFailure("upstream_error", retryable=True)
    return PlannerFailure("rejected")


class GeminiPlanner:
    """Plans a turn with one Gemini generateContent call (two for a one-time correction)."""

    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        api_version: str | None = None,
        retry_backoff_s: float = 0.25,
        tools: ToolRegistry | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.model = model
        self._tools = tools or default_tools()
        self._timeout_s = timeout_s
        self._retry = model_retry(retry_backoff_s)
        self._turn_deadline_s = _TURN_DEADLINE_FACTOR * timeout_s
        http_options = types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            timeout=int((timeout_s + _SDK_TIMEOUT_GRACE_S) * 1000),
        )
        self._client = genai.Client(api_key=key, vertexai=False, http_options=http_options)
        self._tool = types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name=str(d["name"]),
                    description=str(d["description"]),
                    parameters_json_schema=d["parameters"],
                )
                for d in self._tools.declarations()
            ]
        )
        self._thinking = thinking_config_for(model)

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()

    async def probe(self) -> tuple[bool, str | None]:
        """Does the configured model answer? `models.get` costs no tokens and fails the same way
        a plan would (wrong key, unknown model, service down)."""
        config = types.GetModelConfig(
            http_options=types.HttpOptions(timeout=int(PROBE_TIMEOUT_S * 1000))
        )
        try:
            await self._client.aio.models.get(model=self.model, config=config)
        except genai_errors.APIError as exc:
            return False, f"model {self.model} answered HTTP {exc.code}"
        except Exception as exc:
            # Connection refused, DNS, timeout: no upstream text, only what kind of failure.
            return False, f"model {self.model} unreachable ({type(exc).__name__})"
        return True, None

    def _config(self, context: PlanContext) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            system_instruction=system_instruction(context, self._tools),
            tools=[self._tool],
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=types.FunctionCallingConfigMode.AUTO
                )
            ),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            temperature=0.0,
            candidate_count=1,
            max_output_tokens=_MAX_OUTPUT_TOKENS,
            thinking_config=self._thinking,
        )

    async def plan(self, text: str, context: PlanContext) -> Plan:
        contents = [
            types.Content(
                role="model" if role == "assistant" else "user",
                parts=[types.Part.from_text(text=turn_text)],
            )
            for role, turn_text in recent_history(context)
        ]
        contents.append(types.Content(role="user", parts=[types.Part.from_text(text=text)]))
        exchange = _GeminiExchange(
            client=self._client,
            model=self.model,
            contents=contents,
            config=self._config(context),
            timeout_s=self._timeout_s,
        )
        return await plan_with_model(
            exchange,
            planner=self.name,
            model=self.model,
            retry=self._retry,
            turn_deadline_s=self._turn_deadline_s,
            tools=self._tools,
        )

    async def summarize_stream(self, text_facts: str) -> AsyncIterator[str]:
        """Phrase deterministic facts for chat, streamed; PlannerFailure if the model fails."""
        config = types.GenerateContentConfig(
            system_instruction=SUMMARY_PROMPT,
            temperature=0.2,
            max_output_tokens=_MAX_OUTPUT_TOKENS,
            thinking_config=self._thinking,
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                stream = await self._client.aio.models.generate_content_stream(
                    model=self.model, contents=text_facts, config=config
                )
        except Exception as exc:
            raise _translate(exc) from exc
        try:
            while True:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        chunk = await anext(stream)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise _translate(exc) from exc
                if chunk.text:
                    yield chunk.text
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()


def _translate(exc: Exception) -> PlannerFailure:
    if isinstance(exc, PlannerFailure):
        return exc
    if isinstance(exc, TimeoutError) or looks_like_timeout(exc):
        return PlannerFailure("timeout")
    if isinstance(exc, genai_errors.APIError):
        return _failure_from_api_error(exc)
    # Connection refused, reset, a response the SDK could not parse: transient as far as we know.
    log.warning("gemini_transport_error", error_type=type(exc).__name__)
    return PlannerFailure("upstream_error", retryable=True)


class _GeminiExchange:
    """The requests of one turn: remembers the model's last turn to replay with tool results."""

    def __init__(
        self,
        *,
        client: genai.Client,
        model: str,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
        timeout_s: float,
    ) -> None:
        self._client = client
        self._model = model
        self._contents = contents
        self._config = config
        self._timeout_s = timeout_s
        self._last_turn: types.Content | None = None
        self._last_calls: list[types.FunctionCall] = []

    async def __call__(self, feedback: Sequence[dict[str, Any]] | None) -> Proposal:
        contents = list(self._contents)
        if feedback is not None and self._last_turn is not None:
            # The model's own turn goes back unchanged (it may carry thought signatures), then
            # one functionResponse per call, in order.
            responses = [
                types.Part(
                    function_response=types.FunctionResponse(
                        id=call.id, name=call.name, response=result
                    )
                )
                for call, result in zip(self._last_calls, feedback, strict=True)
            ]
            contents += [self._last_turn, types.Content(role="user", parts=responses)]
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.aio.models.generate_content(
                    model=self._model, contents=contents, config=self._config
                )
        except Exception as exc:
            raise _translate(exc) from exc
        return self._read(response)

    def _read(self, response: types.GenerateContentResponse) -> Proposal:
        candidates = response.candidates or []
        if not candidates:
            raise PlannerFailure("empty")
        candidate = candidates[0]
        if candidate.finish_reason in _MALFORMED:
            # Nothing of a malformed call is kept: the retry resends the same conversation.
            raise PlannerFailure("malformed_call", retryable=True)
        content = candidate.content
        parts = (content.parts if content is not None else None) or []
        calls = [part.function_call for part in parts if part.function_call is not None]
        if any(not call.name for call in calls):
            raise PlannerFailure("malformed_call", retryable=True)
        text = "".join(part.text for part in parts if part.text and not part.thought)
        if not calls and not text.strip():
            raise PlannerFailure("empty")
        if calls and content is not None:
            self._last_turn = content
            self._last_calls = calls
        return Proposal(
            calls=tuple(
                ToolCall(tool=call.name or "", args=dict(call.args or {})) for call in calls
            ),
            text=text or None,
        )
