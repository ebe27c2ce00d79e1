"""The mesh as the service builds it from its settings (app/wiring/mesh.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.wiring.mesh import build_mesh
from sandbox.testing import MeshHandle, start_mesh


class Requests:
    """The requests a sandbox peer served, by method and path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshHandle]:
    handle = start_mesh(key_dir=tmp_path_factory.mktemp("keys"), router_interval=3600.0)
    yield handle
    handle.stop()


@pytest.fixture
def registry_requests(mesh: MeshHandle) -> Iterator[Requests]:
    # Served again on the same port, state kept, behind a counter.
    server = mesh.registry
    assert server is not None
    server.stop()
    counting = Requests(server.app)
    server.app = counting
    server.start()
    yield counting
    server.stop()
    server.app = counting.app
    server.start()


@pytest.mark.parametrize(("ttl", "fetches"), [(3600.0, 1), (1e-9, 2)])
async def test_the_droplet_listing_is_fetched_again_once_directory_ttl_s_has_passed(
    mesh: MeshHandle, registry_requests: Requests, ttl: float, fetches: int
) -> None:
    settings = Settings(
        _env_file=None,
        registry_url=mesh.registry_url,
        orchestrator_url=mesh.orchestrator_url,
        droplet_secret=mesh.registry_key,
        orchestrator_private_key_file=mesh.private_key_path,
        directory_ttl_s=ttl,
    )
    parts = build_mesh(settings)
    assert parts.directory is not None and parts.registry is not None
    try:
        first = await parts.directory.list()
        second = await parts.directory.list()
    finally:
        await parts.registry.aclose()
        if parts.orchestrator is not None:
            await parts.orchestrator.aclose()
    assert [d.id for d in first.droplets] == [d.id for d in second.droplets]
    lists = [r for r in registry_requests.seen if r.startswith("GET ") and "droplets" in r]
    assert len(lists) == fetches, registry_requests.seen


def test_the_setting_must_be_positive() -> None:
    with pytest.raises(ValueError, match="directory_ttl_s"):
        Settings(_env_file=None, directory_ttl_s=0)
