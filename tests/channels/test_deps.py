"""Typed dependencies: each route names the services it uses, and a test can replace one."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.testclient import TestClient

from app.channels import deps
from app.config import Settings
from app.factory import create_app
from app.ops.health import HealthMonitor, ProbeResult


async def _store_down() -> ProbeResult:
    return False, "session store not answering"


def test_one_service_overridden_in_a_route_test(make_settings: Callable[..., Settings]) -> None:
    # Only the health monitor is replaced; settings, vitals and everything else stay the app's.
    app = create_app(make_settings())
    failing = HealthMonitor()
    failing.add_probe("session_store", _store_down, critical=True)
    app.dependency_overrides[deps.get_health] = lambda: failing
    with TestClient(app) as client:
        assert client.portal is not None
        client.portal.call(failing.run_once)
        body = client.get("/health").json()
        stats_status = client.get("/api/sessions/stats").status_code
    assert body["status"] == "error"
    assert body["checks"] == {"session_store": "failing"}
    assert body["message"] == "Degraded: session_store unavailable"
    assert body["id"] == 12  # from the real settings
    assert stats_status == 200  # the real session store still answers the other routes


def test_routes_declare_services_not_a_bag(make_settings: Callable[..., Settings]) -> None:
    # Every provider a route may depend on hands out one service; none hands out the whole set
    # of components start-up built.
    app = create_app(make_settings())
    providers = {
        name: fn
        for name, fn in vars(deps).items()
        if name.startswith("get_") and inspect.iscoroutinefunction(fn)
    }
    assert providers, "no providers found"
    for route in app.routes:
        if not isinstance(route, APIRoute | APIWebSocketRoute):
            continue
        for dependency in route.dependant.dependencies:
            call = dependency.call
            assert call is not None
            if call in providers.values():
                annotation = inspect.signature(call).return_annotation
                assert "Components" not in str(annotation), (route.path, call.__name__)
