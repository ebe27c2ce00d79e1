"""The operator commands: chat-orchestrator db migrate | revision | backup | restore."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.cli.main import build_cli
from app.store.sessions import SessionStore
from tests.store.support import head_revision, make_backend, revisions

REPO_ROOT = Path(__file__).resolve().parents[2]


def _db(*args: str) -> Result:
    """`chat-orchestrator db ARGS`, in process, through the whole command tree."""
    return CliRunner().invoke(build_cli(), ["db", *args])


def _said(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout.strip().splitlines()[-1]


async def _seed(url: str) -> str:
    async with SessionStore(database_url=url) as store:
        sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id
        await store.record_turn(session_id=sid, user_text="hi", answer_text="hello", trace_id=None)
        return sid


async def _message_count(url: str, sid: str) -> int | None:
    async with SessionStore(database_url=url) as store:
        info = await store.get(sid)
        return None if info is None else info.message_count


def test_migrate_backup_restore_round_trip(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chat.db'}"
    head = head_revision()

    assert _said(_db("migrate", "--database-url", url)) == f"database at revision {head}"
    assert _said(_db("revision", "--database-url", url)) == f"database at revision {head}"

    sid = asyncio.run(_seed(url))
    backup = tmp_path / "backups" / "backup.db"
    assert _said(_db("backup", str(backup), "--database-url", url)) == (
        f"backup written to {backup}"
    )

    restored_url = f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'chat.db'}"
    assert "restored" in _said(_db("restore", str(backup), "--database-url", restored_url))
    assert asyncio.run(_message_count(restored_url, sid)) == 2


def test_migrate_to_a_named_revision(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    first = revisions()[0]
    said = _said(_db("migrate", "--revision", first, "--database-url", url))
    assert said == f"database at revision {first}"


def test_database_url_defaults_to_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "state"))
    _said(_db("migrate"))
    assert (tmp_path / "state" / "chat.db").exists()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'explicit.db'}")
    _said(_db("migrate"))
    assert (tmp_path / "explicit.db").exists()


def test_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    missing = _db("restore", str(tmp_path / "none.db"), "--database-url", url)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: no backup file")
    assert len(missing.stderr.strip().splitlines()) == 1
    mysql = _db("migrate", "--database-url", "mysql://x/y")
    assert mysql.exit_code == 1
    assert "unsupported database driver" in mysql.stderr


def test_usage_errors_exit_2() -> None:
    assert _db("backup").exit_code == 2  # DEST is required
    assert _db("dance").exit_code == 2
    listing = _db("--help")
    assert listing.exit_code == 0
    for command in ("migrate", "revision", "backup", "restore"):
        assert command in listing.stdout


async def test_postgresql_backup_and_restore_point_to_pg_tools(tmp_path: Path) -> None:
    async with make_backend("postgresql", tmp_path) as backend:
        for command in ("backup", "restore"):
            result = await asyncio.to_thread(
                _db, command, str(tmp_path / "x.db"), "--database-url", backend.url
            )
            assert result.exit_code == 1
            assert ("pg_restore" if command == "restore" else "pg_dump") in result.stderr


def test_the_installed_command(tmp_path: Path) -> None:
    """`python -m app.cli` is the `chat-orchestrator` script; alembic agrees on the result."""
    db = tmp_path / "module.db"
    env = dict(os.environ, DATABASE_URL=f"sqlite+aiosqlite:///{db}")
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "migrate"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"database at revision {head_revision()}" in result.stdout
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
