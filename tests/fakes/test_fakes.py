"""The fakes themselves: what the planner tests do not already pin down."""

from __future__ import annotations

import json

import httpx2

from tests.fakes import gemini as g
from tests.fakes import openai as o


def test_gemini_keys_are_normalised_but_user_data_is_not() -> None:
    raw = {
        "system_instruction": {"parts": [{"text": "x"}]},
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "f",
                        "parameters_json_schema": {
                            "properties": {"droplet_id": {"type": "integer"}}
                        },
                    }
                ]
            }
        ],
        "contents": [{"parts": [{"function_call": {"name": "f", "args": {"droplet_id": 1}}}]}],
    }

    body = g.normalize_keys(raw)

    assert "systemInstruction" in body
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"]["properties"] == {"droplet_id": {"type": "integer"}}
    assert body["contents"][0]["parts"][0]["functionCall"]["args"] == {"droplet_id": 1}


def test_gemini_unscripted_request_is_a_500_and_responder_and_default_apply() -> None:
    with g.FakeGemini() as fake, httpx2.Client(base_url=fake.base_url) as http:
        url = "/v1beta/models/m:generateContent"
        request = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}
        assert http.post(url, json=request).status_code == 500

        fake.responder = lambda rec: g.text(g.last_user_text(rec).upper())
        answer = http.post(url, json=request).json()
        assert answer["candidates"][0]["content"]["parts"][0]["text"] == "PING"

        fake.responder = lambda rec: None
        fake.default = g.text("default")
        answer = http.post(url, json=request).json()
        assert answer["candidates"][0]["content"]["parts"][0]["text"] == "default"
        assert [r.extra["version"] for r in fake.requests] == ["v1beta"] * 3


def test_gemini_stream_without_sse_is_a_json_array() -> None:
    with g.FakeGemini(default=g.text("two words")) as fake, httpx2.Client() as http:
        reply = http.post(f"{fake.base_url}/v1/models/m:streamGenerateContent", json={})
        chunks = reply.json()
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["two ", "words"]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_openai_streamed_tool_call_reassembles() -> None:
    args = {"task_type": "verify", "title": "Verify droplet 14", "priority": 3}
    request = {"model": "m", "messages": [{"role": "user", "content": "go"}], "stream": True}
    with o.FakeOpenAI(default=o.tool_call("create_task", args)) as fake:
        async with (
            httpx2.AsyncClient() as http,
            http.stream("POST", f"{fake.base_url}/chat/completions", json=request) as reply,
        ):
            events = [
                line.removeprefix("data: ")
                async for line in reply.aiter_lines()
                if line.startswith("data: ")
            ]
    assert events[-1] == "[DONE]"
    fragments: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    finish = None
    for event in events[:-1]:
        for choice in json.loads(event)["choices"]:
            finish = choice["finish_reason"] or finish
            for delta in choice["delta"].get("tool_calls") or []:
                function = delta.get("function") or {}
                if function.get("name"):
                    names[delta["index"]] = function["name"]
                if function.get("arguments"):
                    fragments.setdefault(delta["index"], []).append(function["arguments"])
    assert names == {0: "create_task"}
    assert len(fragments[0]) > 1
    assert json.loads("".join(fragments[0])) == args
    assert finish == "tool_calls"
    assert o.last_user_text(fake.requests[0]) == "go"
