"""The mesh as the service builds it from its settings (app/wiring/mesh.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.wiring.mesh import build_mesh
from sandbox.testing import MeshHandle, start_mesh


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[MeshHandle]:
    handle = start_mesh(key_dir=tmp_path / "keys", router_interval=3600.0)
    yield handle
    handle.stop()


@pytest.mark.parametrize(("ttl", "fetches"), [(3600.0, 1), (1e-9, 2)])
async def test_the_droplet_listing_is_fetched_again_once_directory_ttl_s_has_passed(
    mesh: MeshHandle, ttl: float, fetches: int
) -> None:
    registry = mesh.count_requests("registry")
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
        await parts.aclose()
    assert [d.id for d in first.droplets] == [d.id for d in second.droplets]
    lists = [r for r in registry.requests if r.startswith("GET ") and "droplets" in r]
    assert len(lists) == fetches, registry.requests


def test_the_setting_must_be_positive() -> None:
    with pytest.raises(ValueError, match="directory_ttl_s"):
        Settings(_env_file=None, directory_ttl_s=0)
