"""Alembic environment: the registry's models on SQLite or PostgreSQL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from app.core.config import environment_database_url
from app.core.db import create_database, create_engine
from app.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


#: Schema objects the migrations make per engine, outside the models: the SQLite FTS5 table of
#: ``version_search`` (with its shadow tables) and the PostgreSQL text index on it.
_ENGINE_SPECIFIC = ("version_search_fts", "ix_version_search_words")


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Leave the engine-specific text-search objects out of autogenerate's comparison."""
    return not (name and name.startswith(_ENGINE_SPECIFIC))


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it."""
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True,
                      render_as_batch=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in one transaction on a live connection.

    A caller that passes its own connection (``config.attributes["connection"]``) keeps the
    migrations inside its transaction: restoring an SQLite backup into PostgreSQL creates the
    schema and copies the rows in one transaction.
    """
    given = config.attributes.get("connection")
    if given is not None:
        _run_on(given)
        return
    create_database(_url())
    engine = create_engine(_url())
    with engine.connect() as connection:
        _run_on(connection)
    engine.dispose()


def _run_on(connection) -> None:
    # SQLite cannot ALTER most constraints in place; batch mode rebuilds tables instead.
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or environment_database_url()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
