"""Alembic glue: the project's migration scripts, run on a connection the store provides.

`alembic.ini` and `alembic/` live at the repository root (also used by the `alembic` CLI);
`alembic/env.py` runs on the connection passed in `config.attributes["connection"]` when
there is one, else it builds its own engine from DATABASE_URL.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only when a migration actually runs: importing it costs about a quarter
# of a second of every start-up, and a database already at head (every start but the first)
# needs nothing from it.

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Serialises migrations of several instances starting at once (PostgreSQL advisory lock id).
MIGRATION_LOCK_KEY = 0x12C0_5E55_1047


class MigrationsNotFound(RuntimeError):
    """The `alembic/` folder is not next to the code (nor in the working directory)."""


def project_root() -> Path:
    """Where alembic.ini and alembic/ are: the source checkout, else the working directory.

    The second case covers a non-editable install (the image runs from /app, which holds
    alembic/ while the package itself may be imported from site-packages).
    """
    for root in (PROJECT_ROOT, Path.cwd()):
        if (root / "alembic" / "env.py").is_file():
            return root
    raise MigrationsNotFound(
        f"no alembic/env.py under {PROJECT_ROOT} or {Path.cwd()}; run from the project root"
    )


def alembic_config(*, database_url: str | None = None) -> Config:
    from alembic.config import Config

    root = project_root()
    ini = root / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    # Absolute, so migrations run from any working directory; "%" escaped for configparser.
    config.set_main_option("script_location", str(root / "alembic").replace("%", "%%"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade(connection: Connection, *, revision: str = "head") -> None:
    """Apply migrations up to `revision` inside the caller's transaction (sync; run_sync)."""
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


VERSION_TABLE = "alembic_version"
_REVISION = re.compile(r'^revision(?::\s*str)?\s*=\s*["\'](\w+)["\']', re.M)
_DOWN = re.compile(r'^down_revision(?::[^=]+)?=\s*["\'](\w+)["\']', re.M)


@cache
def head_revision() -> str | None:
    """The newest revision among the scripts (read as text), or None when that is not one
    clear revision (then Alembic decides)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for script in (project_root() / "alembic" / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        revisions.update(_REVISION.findall(source))
        downs.update(_DOWN.findall(source))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def current_revision(connection: Connection) -> str | None:
    """The database's revision, as Alembic records it (None before the first migration)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None
