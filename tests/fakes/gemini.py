"""A fake Gemini API (generateContent and streamGenerateContent) on a real loopback HTTP server.

Speaks the wire shapes in shared/contracts/llm.md: `POST /{version}/models/{model}:generateContent`
and `:streamGenerateContent?alt=sse`, any API version, both key spellings clients send (camelCase
and snake_case, normalised to camelCase in `RecordedRequest.body`).

Scripting: `fake.push(reply, ...)` queues replies that are served in order; when the queue is empty
the `responder` (if any) is asked, then the `default` reply is used, else the fake answers 500 so an
unscripted request is never mistaken for a model answer. `delay_s` adds a fixed latency to every
reply (the benchmark's mode).

    with FakeGemini() as fake:
        fake.push(function_call("droplet_status", {"droplet_id": 14}))
        planner = GeminiPlanner(api_key="k", base_url=fake.base_url)
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tests.fakes._server import RecordedRequest, ScriptedFake

# Values under these keys are user data (argument names, schema property names): never renamed.
_OPAQUE_KEYS = frozenset(
    {
        "args",
        "response",
        "parameters",
        "parametersJsonSchema",
        "responseSchema",
        "responseJsonSchema",
        "properties",
    }
)
_USAGE = {"promptTokenCount": 42, "candidatesTokenCount": 7, "totalTokenCount": 49}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalize_keys(value: Any) -> Any:
    """Rename snake_case keys to camelCase, leaving user data (args, schemas) untouched."""
    if isinstance(value, list):
        return [normalize_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key)
        out[name] = item if name in _OPAQUE_KEYS else normalize_keys(item)
    return out


@dataclass(frozen=True, slots=True)
class GeminiReply:
    """One scripted answer: a GenerateContentResponse body, or an HTTP error, maybe late."""

    body: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: tuple[dict[str, Any], ...] | None = None
    """For streaming: the chunks to send; derived from `body` when None."""
    content: bytes | None = None
    """Sent verbatim instead of `body` (a 200 that breaks the contract)."""


def _candidate(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": dict(_USAGE),
        "modelVersion": "fake-gemini",
    }


def function_call(name: str, args: dict[str, Any] | None = None) -> GeminiReply:
    return function_calls((name, args or {}))


def function_calls(*calls: tuple[str, dict[str, Any]]) -> GeminiReply:
    parts = [{"functionCall": {"name": name, "args": args}} for name, args in calls]
    return GeminiReply(body=_candidate(parts))


def text(value: str) -> GeminiReply:
    return GeminiReply(body=_candidate([{"text": value}]))


def text_chunks(*pieces: str) -> GeminiReply:
    """A text answer that streams as exactly these pieces (and reads as their concatenation)."""
    body = _candidate([{"text": "".join(pieces)}])
    chunks: list[dict[str, Any]] = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}]}
        for p in pieces
    ]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = dict(_USAGE)
    return GeminiReply(body=body, chunks=tuple(chunks))


def json_text(value: Any) -> GeminiReply:
    """JSON mode: the object as a string in parts[0].text."""
    return text(json.dumps(value))


def malformed() -> GeminiReply:
    """The model tried to call a function and produced something unparseable."""
    return GeminiReply(
        body={
            "candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}],
            "usageMetadata": dict(_USAGE),
        }
    )


def broken(content: bytes | dict[str, Any]) -> GeminiReply:
    """A 200 whose body breaks the contract: bytes sent verbatim, or a wrongly shaped object."""
    if isinstance(content, dict):
        return GeminiReply(body=content)
    return GeminiReply(content=content)


def empty() -> GeminiReply:
    """No candidates at all (what a blocked prompt looks like)."""
    return GeminiReply(body={"candidates": [], "usageMetadata": dict(_USAGE)})


def error(
    status: int, message: str = "fake error", *, retry_after: float | None = None
) -> GeminiReply:
    names = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    body = {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}
    return GeminiReply(body=body, status=status, headers=headers)


def rate_limited(*, retry_after: float | None = None) -> GeminiReply:
    return error(429, "Resource has been exhausted (e.g. check quota).", retry_after=retry_after)


def server_error() -> GeminiReply:
    return error(500, "An internal error has occurred.")


def slow(reply: GeminiReply, delay_s: float) -> GeminiReply:
    return replace(reply, delay_s=delay_s)


Responder = Callable[[RecordedRequest], GeminiReply | None]

_MODEL_PATH = re.compile(r"^(?P<model>.+):(?P<method>[A-Za-z]+)$")


class FakeGemini(ScriptedFake[GeminiReply]):
    """A scriptable Gemini endpoint. Thread-safe: the server runs in its own thread."""

    server_name = "fake-gemini"

    def _routes(self) -> list[BaseRoute]:
        return [
            Route("/{version}/models/{rest:path}", self._handle, methods=["POST"]),
            Route("/{version}/models/{model}", self._get_model, methods=["GET"]),
        ]

    @property
    def base_url(self) -> str:
        """What to give `GeminiPlanner(base_url=...)` (GEMINI_BASE_URL)."""
        return f"http://127.0.0.1:{self._server.port}"

    # Serving
    async def _get_model(self, request: Request) -> Response:
        """models.get, what a health probe asks: no tokens spent."""
        status = self._model_lookup()
        model = request.path_params["model"]
        if status != 200:
            body = {"error": {"code": status, "message": "fake gemini: model lookup failed"}}
            return JSONResponse(body, status_code=status)
        return JSONResponse(
            {
                "name": f"models/{model}",
                "displayName": model,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            }
        )

    async def _handle(self, request: Request) -> Response:
        match = _MODEL_PATH.match(request.path_params["rest"])
        if match is None:
            return JSONResponse({"error": {"code": 404, "message": "no method"}}, status_code=404)
        content = await request.body()
        try:
            raw = json.loads(content or b"{}")
        except json.JSONDecodeError:
            return JSONResponse({"error": {"code": 400, "message": "bad JSON"}}, status_code=400)
        peer = request.client
        recorded = RecordedRequest(
            method=match["method"],
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers),
            raw=raw,
            body=normalize_keys(raw),
            extra={"version": request.path_params["version"], "model": match["model"]},
            content=content,
            peer="" if peer is None else f"{peer.host}:{peer.port}",
        )
        self._record(recorded)
        reply = self._next_reply(recorded)
        if reply is None:
            reply = error(500, "fake gemini: no scripted reply left")
        await self._server.sleep(self.delay_s + reply.delay_s)
        if reply.status != 200:
            return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
        if reply.content is not None:
            return Response(reply.content, media_type="application/json")
        if match["method"] == "streamGenerateContent":
            return self._stream(reply, sse=request.query_params.get("alt") == "sse")
        if match["method"] != "generateContent":
            return JSONResponse({"error": {"code": 404, "message": "unsupported"}}, status_code=404)
        return JSONResponse(reply.body)

    def _stream(self, reply: GeminiReply, *, sse: bool) -> Response:
        chunks = list(reply.chunks) if reply.chunks is not None else _split(reply.body)
        if not sse:
            return JSONResponse(chunks)

        async def events() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")


def _split(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Stream a plain text answer word by word; anything else goes out as one chunk."""
    candidates = body.get("candidates") or []
    parts = (candidates[0].get("content") or {}).get("parts", []) if candidates else []
    if len(parts) != 1 or "text" not in parts[0]:
        return [body]
    words = re.findall(r"\S+\s*", parts[0]["text"]) or [""]
    chunks: list[dict[str, Any]] = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}]}
        for w in words
    ]
    last = chunks[-1]["candidates"][0]
    last["finishReason"] = candidates[0].get("finishReason", "STOP")
    chunks[-1]["usageMetadata"] = body.get("usageMetadata", dict(_USAGE))
    return chunks


def last_user_text(request: RecordedRequest) -> str:
    """The operator's message in a recorded request (for responders, e.g. the eval runner)."""
    for content in reversed(request.body.get("contents", [])):
        texts = [part["text"] for part in content.get("parts", []) if "text" in part]
        if content.get("role", "user") == "user" and texts:
            return "".join(texts)
    return ""


def declared_tools(request: RecordedRequest) -> list[str]:
    return [
        declaration["name"]
        for tool in request.body.get("tools", [])
        for declaration in tool.get("functionDeclarations", [])
    ]
