"""Database URL handling for the session store."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store.engine import (
    UnsupportedDatabase,
    normalise_url,
    safe_url,
    sqlite_path,
)


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///data/chat.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///data/chat.db", "sqlite+aiosqlite"),
        ("postgres://u:p@db/chat", "postgresql+asyncpg"),
        ("postgresql://u@db/chat", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@db/chat", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str) -> None:
    assert normalise_url(given).drivername == driver


@pytest.mark.parametrize(
    "given", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"]
)
def test_unsupported_urls_are_refused(given: str) -> None:
    with pytest.raises(UnsupportedDatabase):
        normalise_url(given)


def test_sqlite_path_and_safe_url() -> None:
    assert sqlite_path(normalise_url("sqlite:///data/chat.db")) == Path("data/chat.db")
    assert sqlite_path(normalise_url("sqlite:////abs/chat.db")) == Path("/abs/chat.db")
    assert sqlite_path(normalise_url("postgresql://u@h/db")) is None
    assert "secret" not in safe_url(normalise_url("postgresql://u:secret@h/db"))
