"""The live fixture (droplet 12's tools against a fresh sandbox mesh) and a watch store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.store.watches import WatchStore
from sandbox.testing import MeshHandle
from tests.tools.support import LiveMesh, live_mesh, watch_store


@pytest.fixture
async def live(sandbox: MeshHandle) -> AsyncIterator[LiveMesh]:
    async with live_mesh(sandbox) as mesh:
        yield mesh


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WatchStore]:
    """A real WatchStore on a migrated SQLite file, with a session for WRITER and READER."""
    async with watch_store(tmp_path) as made:
        yield made
