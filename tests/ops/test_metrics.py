"""The Prometheus twins of the live metrics: each observation lands on its own label set."""

from __future__ import annotations

import pytest

from app.ops.metrics import Metrics


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_requests_are_counted_per_method_route_and_status() -> None:
    metrics = Metrics()
    for status in (200, 200, 404):
        metrics.observe_request(method="POST", route="/api/chat", status=status, seconds=0.002)
    metrics.observe_request(method="GET", route="/health", status=200, seconds=0.001)
    total = "http_requests_total"
    assert _value(metrics, total, method="POST", route="/api/chat", status="200") == 2
    assert _value(metrics, total, method="POST", route="/api/chat", status="404") == 1
    assert _value(metrics, total, method="GET", route="/health", status="200") == 1
    count = "http_request_duration_seconds_count"
    assert _value(metrics, count, method="POST", route="/api/chat") == 3
    assert metrics.snapshot().requests_total == 4


def test_turns_tool_calls_and_upstream_calls_are_counted_per_label() -> None:
    metrics = Metrics()
    metrics.observe_turn(channel="rest", planner="rules", seconds=0.003)
    metrics.observe_turn(channel="rest", planner="rules", seconds=0.004)
    metrics.observe_turn(channel="ws", planner="gemini", seconds=0.3)
    metrics.count_tool_call(tool="list_droplets", outcome="ok")
    metrics.count_tool_call(tool="list_droplets", outcome="error")
    metrics.count_tool_call(tool="list_droplets", outcome="ok")
    metrics.observe_upstream("orchestrator", 0.01)
    assert _value(metrics, "chat_turns_total", channel="rest", planner="rules") == 2
    assert _value(metrics, "chat_turns_total", channel="ws", planner="gemini") == 1
    assert _value(metrics, "chat_turn_duration_seconds_sum", channel="rest") == pytest.approx(0.007)
    tools = "chat_tool_calls_total"
    assert _value(metrics, tools, tool="list_droplets", outcome="ok") == 2
    assert _value(metrics, tools, tool="list_droplets", outcome="error") == 1
    assert _value(metrics, "mesh_upstream_duration_seconds_count", peer="orchestrator") == 1


def test_two_apps_count_apart() -> None:
    # Each app has its own registry: a label set seen by one is not counted by the other.
    first, second = Metrics(), Metrics()
    first.count_tool_call(tool="help", outcome="ok")
    assert _value(second, "chat_tool_calls_total", tool="help", outcome="ok") is None
    second.count_tool_call(tool="help", outcome="ok")
    assert _value(first, "chat_tool_calls_total", tool="help", outcome="ok") == 1
