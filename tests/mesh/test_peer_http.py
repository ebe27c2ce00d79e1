"""The peer HTTP path's per-request cost that depends on what is installed."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx2
import pytest

from app.mesh.peer_http import exchange
from tests.fakes.fixed_answer import fixed_answer


class _Counting(MetaPathFinder):
    def __init__(self) -> None:
        self.searches: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        self.searches.append(fullname)
        return None  # let the real finders answer


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with fixed_answer(b'{"droplets":[],"count":0}') as url:
        yield url


async def test_peer_requests_do_not_search_sys_path(
    monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    # httpcore (plain httpx) imported sniffio on every request when it was missing: a failed
    # import that searched all of sys.path (~30 us, several times per peer call). The client we
    # ship must import nothing per request, whether or not sniffio is installed.
    async with httpx2.AsyncClient(timeout=5.0) as client:
        first = await exchange(client, "GET", f"{base_url}/droplets", peer="registry", label="x")
        assert first.body == {"droplets": [], "count": 0}
        finder = _Counting()
        monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
        for _ in range(3):
            response = await exchange(
                client, "GET", f"{base_url}/droplets", peer="registry", label="x"
            )
            assert response.status_code == 200
    assert finder.searches == []
