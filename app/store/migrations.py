"""Alembic glue: the project's migration scripts, run on a connection the store provides.

`alembic.ini` and `alembic/` live at the repository root (also used by the `alembic` CLI);
`alembic/env.py` runs on the connection passed in `config.attributes["connection"]` when
there is one, else it builds its own engine from DATABASE_URL.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from alembic import command

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
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
