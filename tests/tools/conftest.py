"""The live fixture: droplet 12's tools against a fresh sandbox mesh."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.testing import MeshHandle
from tests.tools.support import LiveMesh, live_mesh


@pytest.fixture
async def live(sandbox: MeshHandle) -> AsyncIterator[LiveMesh]:
    async with live_mesh(sandbox) as mesh:
        yield mesh
