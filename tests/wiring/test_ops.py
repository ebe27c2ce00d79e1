"""The planner's health check probes the configured model (over HTTP, against the local fakes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.config import Settings
from app.conversation.planners.factory import build_planner
from app.conversation.planners.hybrid import FallbackPlanner
from app.conversation.planners.llm_common import ModelProbe
from app.conversation.understanding.planner import OfflinePlanner
from app.factory import create_app
from app.ops.health import CachedProbe
from app.tools.registry import default_tools
from app.wiring.ops import planner_probe
from tests.fakes import gemini as g
from tests.fakes import openai as o

Fake = g.FakeGemini | o.FakeOpenAI


@pytest.fixture(params=["gemini", "openai"])
def model(request: pytest.FixtureRequest) -> Iterator[tuple[str, Fake]]:
    fake: Fake = g.FakeGemini() if request.param == "gemini" else o.FakeOpenAI()
    with fake:
        yield request.param, fake


def _model_settings(backend: str, fake: Fake) -> dict[str, Any]:
    if backend == "gemini":
        return {"gemini_api_key": "test-key", "gemini_base_url": fake.base_url}
    return {"llm_base_url": fake.base_url, "llm_model": "qwen2.5"}


def _health(settings: Settings) -> dict[str, Any]:
    # The monitor's first round runs at start-up, before the first request is served.
    with TestClient(create_app(settings)) as client:
        body: dict[str, Any] = client.get("/health").json()
        return body


def test_a_configured_model_that_answers_is_ok(
    model: tuple[str, Fake], make_settings: Callable[..., Settings]
) -> None:
    backend, fake = model
    body = _health(make_settings(planner="hybrid", **_model_settings(backend, fake)))
    assert body["checks"]["planner (hybrid)"] == "ok"
    assert body["message"] == "All systems operational"
    assert fake.model_lookups >= 1
    assert fake.requests == []  # a look-up, never a generation: no tokens spent


def test_a_configured_model_that_fails_makes_the_droplet_degraded(
    model: tuple[str, Fake], make_settings: Callable[..., Settings]
) -> None:
    backend, fake = model
    fake.model_status = 503
    body = _health(make_settings(planner=backend, **_model_settings(backend, fake)))
    check = f"planner ({backend})"
    assert body["checks"][check] == "failing"
    # Chat still works on the offline rules: degraded, not down.
    assert body["status"] == "active"
    assert body["message"] == f"Degraded: {check} unavailable"


def test_a_model_server_that_is_gone_is_reported_unreachable(
    model: tuple[str, Fake], make_settings: Callable[..., Settings], keys: Any
) -> None:
    backend, fake = model
    settings = make_settings(planner="hybrid", **_model_settings(backend, fake))
    fake.stop()
    token = keys.token(permissions=["read"])
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        deps = client.get("/dependencies", headers={"Authorization": f"Bearer {token}"}).json()
    assert health["checks"]["planner (hybrid)"] == "failing"
    optional = {d["name"]: d for d in deps["optional"]}
    detail = optional["planner (hybrid)"]["detail"]
    assert detail.startswith("model ") and "unreachable" in detail
    assert fake.base_url not in detail  # what kind of failure, not where


async def test_the_probe_asks_the_model_at_most_once_per_ttl(model: tuple[str, Fake]) -> None:
    backend, fake = model
    options = {"gemini_api_key": None, **_model_settings(backend, fake)}
    planner = build_planner(mode=backend, rules=OfflinePlanner(default_tools()), **options)
    assert isinstance(planner, FallbackPlanner)
    model_planner = planner.llm
    assert isinstance(model_planner, ModelProbe)
    now = [100.0]
    probe = CachedProbe(model_planner.probe, ttl_s=5.0, clock=lambda: now[0])
    try:
        assert await probe() == (True, None)
        now[0] += 4.9
        assert await probe() == (True, None)
        assert fake.model_lookups == 1
        fake.model_status = 401
        now[0] += 0.2
        ok, detail = await probe()
        assert not ok and detail is not None and detail.endswith("answered HTTP 401")
        assert fake.model_lookups == 2
    finally:
        close = planner.aclose
        await close()


def test_the_offline_rules_need_no_probe() -> None:
    assert not isinstance(planner_probe(OfflinePlanner(default_tools())), CachedProbe)
