"""The operator commands: python -m app.store.sessions migrate | revision | backup | restore."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.store import cli as memory_cli
from app.store import migrations as memory_migrations
from app.store.sessions import SessionStore
from tests.store.support import make_backend

REPO_ROOT = Path(__file__).resolve().parents[2]


def _last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


async def _seed(url: str) -> str:
    async with SessionStore(database_url=url) as store:
        sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id
        await store.record_turn(session_id=sid, user_text="hi", answer_text="hello", trace_id=None)
        return sid


async def _message_count(url: str, sid: str) -> int | None:
    async with SessionStore(database_url=url) as store:
        info = await store.get(sid)
        return None if info is None else info.message_count


def test_migrate_backup_restore_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chat.db'}"
    head = memory_migrations.head_revision()

    assert memory_cli.main(["--database-url", url, "migrate"]) == 0
    assert _last_line(capsys) == f"database at revision {head}"
    assert memory_cli.main(["--database-url", url, "revision"]) == 0
    assert _last_line(capsys) == f"database at revision {head}"

    sid = asyncio.run(_seed(url))
    backup = tmp_path / "backups" / "backup.db"
    assert memory_cli.main(["--database-url", url, "backup", str(backup)]) == 0
    assert _last_line(capsys) == f"backup written to {backup}"

    restored_url = f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'chat.db'}"
    assert memory_cli.main(["--database-url", restored_url, "restore", str(backup)]) == 0
    assert "restored" in _last_line(capsys)
    assert asyncio.run(_message_count(restored_url, sid)) == 2


def test_database_url_defaults_to_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "state"))
    assert memory_cli.main(["migrate"]) == 0
    assert (tmp_path / "state" / "chat.db").exists()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'explicit.db'}")
    assert memory_cli.main(["migrate"]) == 0
    assert (tmp_path / "explicit.db").exists()


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    assert memory_cli.main(["--database-url", url, "restore", str(tmp_path / "none.db")]) == 1
    assert "no backup file" in capsys.readouterr().err
    assert memory_cli.main(["--database-url", "mysql://x/y", "migrate"]) == 1
    assert "unsupported database driver" in capsys.readouterr().err


async def test_postgresql_backup_and_restore_point_to_pg_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_backend("postgresql", tmp_path) as backend:
        code = await asyncio.to_thread(
            memory_cli.main, ["--database-url", backend.url, "restore", str(tmp_path / "x.db")]
        )
        assert code == 1
        assert "pg_restore" in capsys.readouterr().err


def test_module_entry_point(tmp_path: Path) -> None:
    db = tmp_path / "module.db"
    env = dict(os.environ, DATABASE_URL=f"sqlite+aiosqlite:///{db}")
    result = subprocess.run(
        [sys.executable, "-m", "app.store.sessions", "migrate"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"database at revision {memory_migrations.head_revision()}" in result.stdout
    alembic = subprocess.run(
        [sys.executable, "-m", "alembic", "current"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert alembic.returncode == 0, alembic.stderr
    assert "(head)" in alembic.stdout
