"""A fake OpenAI-compatible chat-completions server (Ollama, vLLM, llama.cpp, OpenAI) on loopback.

Speaks `POST /v1/chat/completions`, non-streaming and streaming (`"stream": true`: SSE chunks,
tool-call deltas split by `index`, `data: [DONE]`), as in shared/contracts/llm.md.

Scripting works like the Gemini fake: `push(...)` queues replies served in order, then the
`responder`, then `default`, else a 500 so an unscripted request never looks like a model answer.

    with FakeOpenAI() as fake:
        fake.push(tool_call("create_task", {"task_type": "verify", ...}))
        planner = OpenAICompatPlanner(base_url=fake.base_url, model="qwen2.5")
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tests.fakes._server import RecordedRequest, ScriptedFake

_USAGE = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
_ARG_FRAGMENT = 8


@dataclass(frozen=True, slots=True)
class OpenAIReply:
    """One scripted answer: an assistant message (or none), or an HTTP error, maybe late."""

    message: dict[str, Any] | None = None
    """The assistant message; None means `choices: []`."""
    finish_reason: str = "stop"
    status: int = 200
    error_body: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    """Sent verbatim instead of a completion (a 200 that breaks the contract)."""


def tool_calls(*calls: tuple[str, dict[str, Any] | str]) -> OpenAIReply:
    """Tool calls; a `str` argument is sent verbatim (to script invalid JSON)."""
    items = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args),
            },
        }
        for i, (name, args) in enumerate(calls, start=1)
    ]
    message = {"role": "assistant", "content": None, "tool_calls": items}
    return OpenAIReply(message=message, finish_reason="tool_calls")


def tool_call(name: str, args: dict[str, Any] | None = None) -> OpenAIReply:
    return tool_calls((name, args or {}))


def invalid_arguments(name: str, raw: str = '{"droplet_id": 14,') -> OpenAIReply:
    """A tool call whose `arguments` string is not valid JSON."""
    return tool_calls((name, raw))


def text(value: str) -> OpenAIReply:
    return OpenAIReply(message={"role": "assistant", "content": value})


def json_text(value: Any) -> OpenAIReply:
    return text(json.dumps(value))


def broken(content: bytes | dict[str, Any]) -> OpenAIReply:
    """A 200 whose body breaks the contract: bytes sent verbatim, or a wrongly shaped object."""
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return OpenAIReply(content=raw)


def empty() -> OpenAIReply:
    """`choices: []`."""
    return OpenAIReply(message=None)


def blank() -> OpenAIReply:
    """A choice whose message has neither content nor tool calls."""
    return OpenAIReply(message={"role": "assistant", "content": None}, finish_reason="length")


def error(
    status: int, message: str = "fake error", *, retry_after: float | None = None
) -> OpenAIReply:
    types = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_exceeded",
        500: "server_error",
        503: "server_error",
    }
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    body = {"error": {"message": message, "type": types.get(status, "error"), "code": None}}
    return OpenAIReply(status=status, error_body=body, headers=headers)


def rate_limited(*, retry_after: float | None = None) -> OpenAIReply:
    return error(429, "Rate limit reached", retry_after=retry_after)


def server_error() -> OpenAIReply:
    return error(500, "The server had an error while processing your request.")


def slow(reply: OpenAIReply, delay_s: float) -> OpenAIReply:
    return replace(reply, delay_s=delay_s)


Responder = Callable[[RecordedRequest], OpenAIReply | None]


class FakeOpenAI(ScriptedFake[OpenAIReply]):
    """A scriptable chat-completions endpoint. Thread-safe: the server runs in its own thread."""

    server_name = "fake-openai"

    def _routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/chat/completions", self._handle, methods=["POST"]),
            Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
        ]

    @property
    def base_url(self) -> str:
        """What to give `OpenAICompatPlanner(base_url=...)` (LLM_BASE_URL): includes `/v1`."""
        return f"http://127.0.0.1:{self._server.port}/v1"

    # Serving
    async def _get_model(self, request: Request) -> Response:
        """models.retrieve, what a health probe asks: no tokens spent."""
        status = self._model_lookup()
        if status != 200:
            body = {"error": {"message": "fake openai: model lookup failed", "type": "server"}}
            return JSONResponse(body, status_code=status)
        model = request.path_params["model"]
        return JSONResponse({"id": model, "object": "model", "created": 0, "owned_by": "fake"})

    async def _handle(self, request: Request) -> Response:
        content = await request.body()
        try:
            raw = json.loads(content or b"{}")
        except json.JSONDecodeError:
            return JSONResponse({"error": {"message": "bad JSON"}}, status_code=400)
        peer = request.client
        recorded = RecordedRequest(
            method="chat.completions",
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers),
            raw=raw,
            body=raw,
            extra={"model": str(raw.get("model", ""))},
            content=content,
            peer="" if peer is None else f"{peer.host}:{peer.port}",
        )
        self._record(recorded)
        reply = self._next_reply(recorded) or error(500, "fake openai: no scripted reply left")
        await self._server.sleep(self.delay_s + reply.delay_s)
        if reply.status != 200:
            return JSONResponse(reply.error_body, status_code=reply.status, headers=reply.headers)
        if reply.content is not None:
            return Response(reply.content, media_type="application/json")
        ident = f"chatcmpl-fake-{next(self._ids)}"
        model = recorded.extra["model"]
        if raw.get("stream"):
            return StreamingResponse(_sse(ident, model, reply), media_type="text/event-stream")
        choices = []
        if reply.message is not None:
            choices.append(
                {
                    "index": 0,
                    "message": reply.message,
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            )
        body = {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": dict(_USAGE),
        }
        return JSONResponse(body)


def _deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Split an assistant message into the deltas a real server streams."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    content = message.get("content") or ""
    deltas.extend({"content": content[i : i + 4]} for i in range(0, len(content), 4))
    for index, call in enumerate(message.get("tool_calls") or []):
        args = call["function"]["arguments"]
        head = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        deltas.append({"tool_calls": [{"index": index, **head}]})
        deltas.extend(
            {
                "tool_calls": [
                    {"index": index, "function": {"arguments": args[i : i + _ARG_FRAGMENT]}}
                ]
            }
            for i in range(0, len(args), _ARG_FRAGMENT)
        )
    return deltas


async def _sse(ident: str, model: str, reply: OpenAIReply) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    if reply.message is not None:
        for delta in _deltas(reply.message):
            yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        yield chunk([{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}])
    yield chunk([], usage=dict(_USAGE))
    yield b"data: [DONE]\n\n"


def last_user_text(request: RecordedRequest) -> str:
    """The operator's message in a recorded request (for responders, e.g. the eval runner)."""
    for message in reversed(request.body.get("messages", [])):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def declared_tools(request: RecordedRequest) -> list[str]:
    return [tool["function"]["name"] for tool in request.body.get("tools", [])]
