"""The peer HTTP path's per-request cost that depends on what is installed."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest
from httpcore._synchronization import current_async_library


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


async def test_each_peer_request_does_not_search_sys_path_for_sniffio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpcore asks sniffio which async library runs, several times per request; with sniffio
    # missing every ask was a failed import that searched all of sys.path (~30 us each).
    finder = _Counting()
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    for _ in range(3):
        assert current_async_library() == "asyncio"
    assert finder.searches == []
