"""Schemathesis against our own OpenAPI document: no 5xx, no response that breaks the schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from tests.conftest import KeyPair, LiveApp, free_port


def _spec() -> dict[str, Any]:
    from app.factory import create_app

    # Building the app reads no environment file and does no I/O; only the document is used.
    spec: dict[str, Any] = create_app(Settings(_env_file=None, mesh_enabled=False)).openapi()
    return spec


schema = schemathesis.openapi.from_dict(_spec())


@schemathesis.check
def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """500 is always a bug. 502/503 are honest answers about a peer (the mesh is off here)."""
    if response.status_code == 500 or (
        response.status_code >= 500
        and response.json().get("error", {}).get("code") != "DEPENDENCY_UNAVAILABLE"
    ):
        raise AssertionError(f"server error {response.status_code}: {response.text[:200]}")
    return None


@pytest.fixture
def live(make_settings: Callable[..., Settings]) -> Iterator[LiveApp]:
    port = free_port()
    app = LiveApp(make_settings(port=port, droplet_url=f"http://127.0.0.1:{port}")).start()
    yield app
    app.stop()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_api_never_fails_and_keeps_its_schema(case: Any, keys: KeyPair, live: LiveApp) -> None:
    token = keys.token(permissions=["read", "write", "admin"])
    case.call_and_validate(
        base_url=live.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=[no_internal_error, response_schema_conformance, status_code_conformance],
    )
