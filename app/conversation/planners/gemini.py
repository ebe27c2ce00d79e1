"""The Gemini planner: the catalogue's tools as function declarations, over generateContent.

Posted with one httpx2 client per planner; the request's constant parts (the instructions' fixed
head, the tool declarations, tool and generation config) are serialised once, at construction,
and each call serialises only the conversation and the context block. Nothing is ever run by the
model side: a proposed call is only read, and every write passes our confirmation gate.
Wire shapes: shared/contracts/llm.md.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog
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

log = structlog.get_logger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash"
# What google-genai 3.6.1 used when nothing was configured, and the variables it read: a
# deployment that relied on them keeps working without the SDK.
_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_DEFAULT_API_VERSION = "v1"
_BASE_URL_ENV = "GOOGLE_GEMINI_BASE_URL"
_API_VERSION_ENV = "GOOGLE_GENAI_API_VERSION"
_MAX_OUTPUT_TOKENS = 1024
_MALFORMED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})
_PLANNER = "gemini"


def thinking_config_for(model: str) -> dict[str, Any] | None:
    """Thinking off (or as low as the model allows): planning is a lookup, not a puzzle."""
    name = model.lower().removeprefix("models/")
    if name.startswith("gemini-2.5-pro"):
        return {"thinkingBudget": 128}  # the Pro minimum; 0 is refused
    if name.startswith("gemini-2.5"):
        return {"thinkingBudget": 0}
    if name.startswith("gemini-3"):
        return {"thinkingLevel": "LOW" if "pro" in name else "MINIMAL"}
    return None  # older or unknown models reject a thinking config


def _generation_config(*, temperature: float, model: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "temperature": temperature,
        **extra,
        "maxOutputTokens": _MAX_OUTPUT_TOKENS,
    }
    thinking = thinking_config_for(model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _instruction(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}], "role": "user"}


class GeminiPlanner(ModelClient):
    """Plans a turn with one Gemini generateContent call (two for a one-time correction)."""

    name = _PLANNER

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
        super().__init__(
            model=model,
            headers={"content-type": "application/json", "x-goog-api-key": secret_text(api_key)},
            timeout_s=timeout_s,
            retry_backoff_s=retry_backoff_s,
            tools=tools,
        )
        root = (base_url or os.environ.get(_BASE_URL_ENV) or _DEFAULT_BASE_URL).rstrip("/")
        version = api_version or os.environ.get(_API_VERSION_ENV) or _DEFAULT_API_VERSION
        # A tuned model is addressed as `tunedModels/...`; anything else is a base model name.
        path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        self._model_url = f"{root}/{version}/{path}"
        self._generate_url = f"{self._model_url}:generateContent"
        self._stream_url = f"{self._model_url}:streamGenerateContent?alt=sse"
        declarations = [
            {
                "name": str(d["name"]),
                "description": str(d["description"]),
                "parametersJsonSchema": d["parameters"],
            }
            for d in self._tools.declarations()
        ]
        # Serialised once: per call only the contents and the context block are.
        self._instruction_head = escaped(instructions(self._tools))
        self._plan_tail = (
            '"}],"role":"user"},'
            + members(
                {
                    "tools": [{"functionDeclarations": declarations}],
                    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
                    "generationConfig": _generation_config(
                        temperature=0.0, model=model, candidateCount=1
                    ),
                }
            )
            + "}"
        )
        self._summary_tail = (
            members(
                {
                    "systemInstruction": _instruction(SUMMARY_PROMPT),
                    "generationConfig": _generation_config(temperature=0.2, model=model),
                }
            )
            + "}"
        )

    def _plan_body(self, contents: str, context: str) -> bytes:
        """The generateContent body around `contents` (a JSON array) and the escaped context."""
        return (
            '{"contents":'
            + contents
            + ',"systemInstruction":{"parts":[{"text":"'
            + self._instruction_head
            + context
            + self._plan_tail
        ).encode()

    async def plan(self, text: str, context: PlanContext) -> Plan:
        contents: list[dict[str, Any]] = [
            {"parts": [{"text": turn_text}], "role": "model" if role == "assistant" else "user"}
            for role, turn_text in recent_history(context)
        ]
        contents.append({"parts": [{"text": text}], "role": "user"})
        context_text = escaped(context_block(context))

        async def send(contents_json: str) -> dict[str, Any]:
            return await self._post(
                self._generate_url, self._plan_body(contents_json, context_text)
            )

        return await self._plan(_GeminiExchange(contents=dumps(contents), send=send))

    async def summarize_stream(self, text_facts: str) -> AsyncIterator[str]:
        """Phrase deterministic facts for chat, streamed; PlannerFailure if the model fails."""
        contents = dumps([{"parts": [{"text": text_facts}], "role": "user"}])
        body = ('{"contents":' + contents + "," + self._summary_tail).encode()
        async for piece in self._streamed(self._stream_url, body, _chunk_texts):
            yield piece


def _parts(candidate: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A candidate's content and its parts; PlannerFailure when they are not objects."""
    content = candidate.get("content")
    if content is None:
        return None, []
    if not isinstance(content, dict):
        raise unreadable(_PLANNER, "content not an object")
    parts = content.get("parts") or []
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise unreadable(_PLANNER, "parts not a list of objects")
    return content, parts


def _text_of(parts: list[dict[str, Any]]) -> str:
    """The answer's text: thought summaries are the model's notes to itself, not an answer."""
    texts = (part.get("text") for part in parts if not part.get("thought"))
    return "".join(text for text in texts if isinstance(text, str))


def _chunk_texts(chunk: dict[str, Any]) -> list[str]:
    """The first candidate's text in one streamed chunk."""
    candidates = chunk.get("candidates") or []
    if not isinstance(candidates, list):
        raise unreadable(_PLANNER, "candidates not a list")
    if not candidates:
        return []  # a chunk with only usage metadata or prompt feedback
    if not isinstance(candidates[0], dict):
        raise unreadable(_PLANNER, "candidate not an object")
    return [_text_of(_parts(candidates[0])[1])]


def _first_candidate(response: dict[str, Any]) -> dict[str, Any]:
    candidates = response.get("candidates") or []
    if not isinstance(candidates, list):
        raise unreadable(_PLANNER, "candidates not a list")
    if not candidates:
        feedback = response.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            log.info("gemini_prompt_blocked", block_reason=str(feedback["blockReason"]))
        raise PlannerFailure("empty")
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise unreadable(_PLANNER, "candidate not an object")
    return candidate


def _call_of(part: dict[str, Any]) -> tuple[str | None, ToolCall]:
    """A functionCall part as (its id, the call); malformed_call when it is not one."""
    call = part["functionCall"]
    if not isinstance(call, dict):
        raise PlannerFailure("malformed_call", retryable=True)
    name, args, ident = call.get("name"), call.get("args"), call.get("id")
    if not isinstance(name, str) or not name or not isinstance(args, dict | None):
        raise PlannerFailure("malformed_call", retryable=True)
    return (ident if isinstance(ident, str) else None), ToolCall(tool=name, args=dict(args or {}))


class _GeminiExchange:
    """The requests of one turn: remembers the model's last turn to replay with tool results."""

    def __init__(self, *, contents: str, send: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self._contents = contents
        self._send = send
        self._last_turn: dict[str, Any] | None = None
        self._last_calls: list[tuple[str | None, ToolCall]] = []

    async def __call__(self, feedback: Sequence[dict[str, Any]] | None) -> Proposal:
        contents = self._contents
        if feedback is not None and self._last_turn is not None:
            # The model's own turn goes back exactly as it came (it may carry thought
            # signatures), then one functionResponse per call, in order.
            responses = [
                {
                    "functionResponse": {
                        **({"id": ident} if ident is not None else {}),
                        "name": call.tool,
                        "response": result,
                    }
                }
                for (ident, call), result in zip(self._last_calls, feedback, strict=True)
            ]
            replay = dumps([self._last_turn, {"parts": responses, "role": "user"}])
            contents = contents[:-1] + "," + replay[1:]
        return self._read(await self._send(contents))

    def _read(self, response: dict[str, Any]) -> Proposal:
        candidate = _first_candidate(response)
        if candidate.get("finishReason") in _MALFORMED:
            # Nothing of a malformed call is kept: the retry resends the same conversation.
            raise PlannerFailure("malformed_call", retryable=True)
        content, parts = _parts(candidate)
        calls = [_call_of(part) for part in parts if part.get("functionCall") is not None]
        text = _text_of(parts)
        if not calls and not text.strip():
            raise PlannerFailure("empty")
        if calls and content is not None:
            self._last_turn = content
            self._last_calls = calls
        return Proposal(calls=tuple(call for _, call in calls), text=text or None)
