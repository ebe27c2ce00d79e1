"""The OpenAI-compatible planner (Ollama, vLLM, llama.cpp, OpenAI): chat completions with tools.

Posted with one httpx2 client per planner; the request's constant parts (model, tools, sampling)
and the instructions' fixed head are serialised once, at construction.

Tool selection is requested without streaming: some servers lose tool-call deltas when streaming
(shared/contracts/llm.md). Arguments arrive as a JSON string and may be invalid; an invalid string
is never replayed to the server (it would poison the conversation), the request is just retried.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from pydantic import SecretStr

from app.conversation.planners.llm_common import (
    SUMMARY_PROMPT,
    PlannerFailure,
    Proposal,
    context_block,
    instructions,
    recent_history,
)
from app.conversation.planners.llm_http import (
    ModelClient,
    dumps,
    escaped,
    members,
    secret_text,
    unreadable,
)
from app.domain.plan import Plan, PlanContext, ToolCall
from app.tools.registry import ToolRegistry

# Local servers ignore the key; one is always sent, as the openai client did.
_NO_KEY = "not-needed"
_MAX_TOKENS = 1024
_PLANNER = "openai"


class OpenAICompatPlanner(ModelClient):
    """Plans a turn with one chat completion (two for a one-time correction)."""

    name = _PLANNER

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
        super().__init__(
            model=model,
            headers={
                "content-type": "application/json",
                "accept": "application/json",
                "authorization": f"Bearer {secret_text(api_key) or _NO_KEY}",
            },
            timeout_s=timeout_s,
            retry_backoff_s=retry_backoff_s,
            tools=tools,
        )
        root = base_url.rstrip("/")
        self._completions_url = f"{root}/chat/completions"
        self._model_url = f"{root}/models/{model}"
        tools_param = [
            {
                "type": "function",
                "function": {
                    "name": str(d["name"]),
                    "description": str(d["description"]),
                    "parameters": dict(d["parameters"]),
                },
            }
            for d in self._tools.declarations()
        ]
        # Serialised once: per call only the context block and the conversation are.
        self._system_head = '{"messages":[{"role":"system","content":"' + escaped(
            instructions(self._tools)
        )
        self._plan_tail = (
            "],"
            + members(
                {
                    "model": model,
                    "tools": tools_param,
                    "tool_choice": "auto",
                    "temperature": 0,
                    "max_tokens": _MAX_TOKENS,
                }
            )
            + "}"
        )
        self._summary_tail = (
            "],"
            + members(
                {"model": model, "temperature": 0.2, "max_tokens": _MAX_TOKENS, "stream": True}
            )
            + "}"
        )

    async def plan(self, text: str, context: PlanContext) -> Plan:
        messages = [
            {"role": "assistant" if role == "assistant" else "user", "content": turn_text}
            for role, turn_text in recent_history(context)
        ]
        messages.append({"role": "user", "content": text})
        # `messages` without its brackets follows the system message, which ends in the context.
        head = self._system_head + escaped(context_block(context)) + '"},' + dumps(messages)[1:-1]

        async def send(replay: str) -> dict[str, Any]:
            return await self._post(
                self._completions_url, (head + replay + self._plan_tail).encode()
            )

        return await self._plan(_OpenAIExchange(send=send))

    async def summarize_stream(self, text_facts: str) -> AsyncIterator[str]:
        """Phrase deterministic facts for chat, streamed; PlannerFailure if the model fails."""
        messages = [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": text_facts},
        ]
        body = ('{"messages":' + dumps(messages)[:-1] + self._summary_tail).encode()
        async for piece in self._streamed(self._completions_url, body, _delta_texts):
            yield piece


def _delta_texts(chunk: dict[str, Any]) -> list[str]:
    """The text of each choice's delta in one streamed chunk."""
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise unreadable(_PLANNER, "choices not a list")
    texts = []
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        piece = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(piece, str):
            texts.append(piece)
    return texts


def _message(completion: dict[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices") or []
    if not isinstance(choices, list):
        raise unreadable(_PLANNER, "choices not a list")
    if not choices:
        raise PlannerFailure("empty")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise unreadable(_PLANNER, "message not an object")
    return message


def _call_of(index: int, item: Any) -> tuple[str, ToolCall]:
    """One entry of `tool_calls` as (its id, the call); malformed_call when it is not one."""
    function = item.get("function") if isinstance(item, dict) else None
    if not isinstance(function, dict) or item.get("type", "function") != "function":
        raise PlannerFailure("malformed_call", retryable=True)
    name, raw = function.get("name"), function.get("arguments") or ""
    if not isinstance(raw, str):
        raise PlannerFailure("malformed_call", retryable=True)
    try:
        args = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        raise PlannerFailure("malformed_call", retryable=True) from None
    if not isinstance(args, dict) or not isinstance(name, str) or not name:
        raise PlannerFailure("malformed_call", retryable=True)
    ident = item.get("id")
    return (ident if isinstance(ident, str) and ident else f"call_{index + 1}"), ToolCall(
        tool=name, args=args
    )


class _OpenAIExchange:
    """The requests of one turn: remembers the last tool calls to answer them with errors."""

    def __init__(self, *, send: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self._send = send
        self._last: tuple[str | None, list[tuple[str, ToolCall]]] | None = None

    def _replay(self, feedback: Sequence[dict[str, Any]]) -> str:
        """The messages that follow the conversation: `,{...},{...}`, or nothing."""
        if self._last is None:
            return ""
        content, calls = self._last
        # Rebuilt from the parsed arguments, so what goes back is always valid JSON.
        assistant = {
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
        results = [
            {"role": "tool", "tool_call_id": ident, "content": json.dumps(result)}
            for (ident, _), result in zip(calls, feedback, strict=True)
        ]
        return "," + dumps([assistant, *results])[1:-1]

    async def __call__(self, feedback: Sequence[dict[str, Any]] | None) -> Proposal:
        replay = self._replay(feedback) if feedback is not None else ""
        return self._read(await self._send(replay))

    def _read(self, completion: dict[str, Any]) -> Proposal:
        message = _message(completion)
        items = message.get("tool_calls") or []
        if not isinstance(items, list):
            raise PlannerFailure("malformed_call", retryable=True)
        calls = [_call_of(index, item) for index, item in enumerate(items)]
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        if not calls and not text.strip():
            raise PlannerFailure("empty")
        if calls:
            self._last = (content if isinstance(content, str) else None, calls)
        return Proposal(calls=tuple(call for _, call in calls), text=text or None)
