"""Running Alembic from the application: migrations are the only way the schema changes."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from app.core.config import PROJECT_ROOT
from app.core.db import create_database


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for ``database_url`` using the project's ``migrations/``."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # The application has installed its own JSON logging; alembic.ini's logging section is for
    # the ``alembic`` command alone and would replace the application's handlers.
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, connection: Connection | None = None) -> None:
    """Upgrade the database to the latest migration (making an SQLite database's folder).

    On ``connection``, when given, the migrations run inside its open transaction, which the
    caller commits or rolls back.
    """
    config = alembic_config(database_url)
    if connection is None:
        create_database(database_url)
    else:
        config.attributes["connection"] = connection
    command.upgrade(config, "head")
