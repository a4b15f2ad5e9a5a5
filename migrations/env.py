"""Alembic environment: the registry's models on SQLite or PostgreSQL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from app.config import environment_database_url
from app.db import create_database, create_engine
from app.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it."""
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in one transaction on a live connection."""
    create_database(_url())
    engine = create_engine(_url())
    with engine.connect() as connection:
        # SQLite cannot ALTER most constraints in place; batch mode rebuilds tables instead.
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or environment_database_url()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
