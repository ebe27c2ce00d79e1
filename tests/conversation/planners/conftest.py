"""Fake model servers shared by the planner tests: one server per module, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def fake_gemini(gemini_server: FakeGemini) -> Iterator[FakeGemini]:
    gemini_server.clear()
    gemini_server.default = None
    gemini_server.responder = None
    gemini_server.delay_s = 0.0
    yield gemini_server
    gemini_server.clear()


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_openai(openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    openai_server.clear()
    openai_server.default = None
    openai_server.responder = None
    openai_server.delay_s = 0.0
    yield openai_server
    openai_server.clear()
