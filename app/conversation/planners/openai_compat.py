"""The OpenAI-compatible planner (Ollama, vLLM, llama.cpp, OpenAI): chat completions with tools.

Tool selection is requested without streaming: some servers lose tool-call deltas when streaming
(shared/contracts/llm.md). Arguments arrive as a JSON string and may be invalid; an invalid string
is never replayed to the server (it would poison the conversation), the request is just retried.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
import structlog
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from pydantic import SecretStr

from app.conversation.planners.llm_common import (
    PROBE_TIMEOUT_S,
    SUMMARY_PROMPT,
    PlannerFailure,
    Proposal,
    model_retry,
    parse_retry_after,
    plan_with_model,
    recent_history,
    system_instruction,
)
from app.domain.plan import Plan, PlanContext, ToolCall
from app.tools.registry import ToolRegistry, default_tools

log = structlog.get_logger(__name__)

# Local servers ignore the key, but the client refuses to start without one.
_NO_KEY = "not-needed"
_SDK_TIMEOUT_GRACE_S = 1.0
# A turn may take a retry or a correction, but never more than this many timeouts in all.
_TURN_DEADLINE_FACTOR = 2.0
_MAX_TOKENS = 1024


def _translate(exc: Exception) -> PlannerFailure:
    if isinstance(exc, PlannerFailure):
        return exc
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return PlannerFailure("timeout")
    if isinstance(exc, openai.RateLimitError):
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        return PlannerFailure("rate_limited", retryable=True, retry_after_s=retry_after)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return PlannerFailure("upstream_error", retryable=True)
        return PlannerFailure("rejected")
    if isinstance(exc, openai.APIConnectionError):
        return PlannerFailure("upstream_error", retryable=True)
    log.warning("openai_transport_error", error_type=type(exc).__name__)
    return PlannerFailure("upstream_error")


class OpenAICompatPlanner:
    """Plans a turn with one chat completion (two for a one-time correction)."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | SecretStr | None = None,
        timeout_s: float = 10.0,
        retry_backoff_s: float = 0.25,
        tools: ToolRegistry | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.model = model
        self._registry = tools or default_tools()
        self._timeout_s = timeout_s
        self._retry = model_retry(retry_backoff_s)
        self._turn_deadline_s = _TURN_DEADLINE_FACTOR * timeout_s
        # Retries are ours (once, for transient failures only); the SDK's would double them.
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=key or _NO_KEY,
            timeout=timeout_s + _SDK_TIMEOUT_GRACE_S,
            max_retries=0,
        )
        self._tools: list[ChatCompletionToolParam] = [
            {
                "type": "function",
                "function": {
                    "name": str(d["name"]),
                    "description": str(d["description"]),
                    "parameters": dict(d["parameters"]),
                },
            }
            for d in self._registry.declarations()
        ]

    async def aclose(self) -> None:
        await self._client.close()

    async def probe(self) -> tuple[bool, str | None]:
        """Does the configured model answer? `GET /models/{model}` costs no tokens and fails the
        same way a plan would (wrong key, unknown model, server down)."""
        try:
            await self._client.with_options(timeout=PROBE_TIMEOUT_S).models.retrieve(self.model)
        except openai.APIStatusError as exc:
            return False, f"model {self.model} answered HTTP {exc.status_code}"
        except Exception as exc:
            # Connection refused, DNS, timeout: no upstream text, only what kind of failure.
            return False, f"model {self.model} unreachable ({type(exc).__name__})"
        return True, None

    async def plan(self, text: str, context: PlanContext) -> Plan:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system_instruction(context, self._registry)}
        ]
        for role, turn_text in recent_history(context):
            if role == "assistant":
                messages.append({"role": "assistant", "content": turn_text})
            else:
                messages.append({"role": "user", "content": turn_text})
        messages.append({"role": "user", "content": text})
        exchange = _OpenAIExchange(
            client=self._client,
            model=self.model,
            messages=messages,
            tools=self._tools,
            timeout_s=self._timeout_s,
        )
        return await plan_with_model(
            exchange,
            planner=self.name,
            model=self.model,
            retry=self._retry,
            turn_deadline_s=self._turn_deadline_s,
            tools=self._registry,
        )

    async def summarize_stream(self, text_facts: str) -> AsyncIterator[str]:
        """Phrase deterministic facts for chat, streamed; PlannerFailure if the model fails."""
        try:
            async with asyncio.timeout(self._timeout_s):
                stream = await self._client.chat.completions.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": SUMMARY_PROMPT},
                        {"role": "user", "content": text_facts},
                    ],
                    temperature=0.2,
                    max_tokens=_MAX_TOKENS,
                    stream=True,
                )
        except Exception as exc:
            raise _translate(exc) from exc
        async with stream:
            iterator = stream.__aiter__()
            while True:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise _translate(exc) from exc
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content


class _OpenAIExchange:
    """The requests of one turn: remembers the last tool calls to answer them with errors."""

    def __init__(
        self,
        *,
        client: AsyncOpenAI,
        model: str,
        messages: list[ChatCompletionMessageParam],
        tools: list[ChatCompletionToolParam],
        timeout_s: float,
    ) -> None:
        self._client = client
        self._model = model
        self._messages = messages
        self._tools = tools
        self._timeout_s = timeout_s
        self._last: tuple[str | None, list[tuple[str, ToolCall]]] | None = None

    def _replay(self, feedback: Sequence[dict[str, Any]]) -> list[ChatCompletionMessageParam]:
        if self._last is None:
            return []
        content, calls = self._last
        # Rebuilt from the parsed arguments, so what goes back is always valid JSON.
        assistant: ChatCompletionMessageParam = {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {
                    "id": ident,
                    "type": "function",
                    "function": {"name": call.tool, "arguments": json.dumps(call.args)},
                }
                for ident, call in calls
            ],
        }
        results: list[ChatCompletionMessageParam] = [
            {"role": "tool", "tool_call_id": ident, "content": json.dumps(result)}
            for (ident, _), result in zip(calls, feedback, strict=True)
        ]
        return [assistant, *results]

    async def __call__(self, feedback: Sequence[dict[str, Any]] | None) -> Proposal:
        messages = list(self._messages)
        if feedback is not None:
            messages += self._replay(feedback)
        try:
            async with asyncio.timeout(self._timeout_s):
                completion = await self._client.chat.completions.create(
                    model=self._model,
                    messages=messages,
                    tools=self._tools,
                    tool_choice="auto",
                    temperature=0,
                    max_tokens=_MAX_TOKENS,
                )
        except Exception as exc:
            raise _translate(exc) from exc
        return self._read(completion)

    def _read(self, completion: ChatCompletion) -> Proposal:
        if not completion.choices:
            raise PlannerFailure("empty")
        message = completion.choices[0].message
        calls: list[tuple[str, ToolCall]] = []
        for index, item in enumerate(message.tool_calls or []):
            if not isinstance(item, ChatCompletionMessageFunctionToolCall):
                raise PlannerFailure("malformed_call", retryable=True)
            raw = item.function.arguments or ""
            try:
                args = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError:
                raise PlannerFailure("malformed_call", retryable=True) from None
            if not isinstance(args, dict) or not item.function.name:
                raise PlannerFailure("malformed_call", retryable=True)
            ident = item.id or f"call_{index + 1}"
            calls.append((ident, ToolCall(tool=item.function.name, args=args)))
        text = message.content or ""
        if not calls and not text.strip():
            raise PlannerFailure("empty")
        if calls:
            self._last = (message.content, calls)
        return Proposal(calls=tuple(call for _, call in calls), text=text or None)
