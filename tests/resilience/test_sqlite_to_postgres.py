"""Moving a registry from SQLite to PostgreSQL with one command, ``tech7-registry restore``.

A registry grows on SQLite behind a real ``serve`` (real signing), is backed up, and the SQLite
backup is restored into an empty PostgreSQL database: every row of every table arrives unchanged,
``tech7-audit monitor`` finds the same log, every version verifies, the immutability triggers
hold, and the registry carries on publishing. The PostgreSQL server is the local one
(127.0.0.1:5432, or TEST_DATABASE_URL's); these tests fail rather than skip without it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.core.db import Database
from app.models import metadata
from tests.support.processes import (
    Client,
    RetryingClient,
    Server,
    StatementPublisher,
    association_token,
    check_invariants,
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
)

REGISTRY = str(Path(sys.executable).with_name("tech7-registry"))


@pytest.fixture
def empty_postgres():
    """A new, empty PostgreSQL database of its own, dropped afterwards."""
    url = create_postgres_database(postgres_server_url(), f"tech7_move_{uuid.uuid4().hex[:12]}")
    yield url
    drop_postgres_database(url)


def _registry(*args: str, database_url: str, workdir: Path) -> subprocess.CompletedProcess:
    """Run ``tech7-registry`` on ``database_url``, as an operator would."""
    env = {**os.environ, "TECH7_DATABASE_URL": database_url,
           "TECH7_DATA_DIR": str(workdir / "data")}
    return subprocess.run([REGISTRY, *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _rows(database_url: str) -> dict[str, list[tuple]]:
    """Every row of every table of the registry's models, in key order."""
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            return {table.name: [tuple(row) for row in connection.execute(
                sa.select(table).order_by(*table.primary_key.columns))]
                for table in metadata.sorted_tables}
    finally:
        db.engine.dispose()


def _tables(database_url: str) -> list[str]:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            return sa.inspect(connection).get_table_names()
    finally:
        db.engine.dispose()


def test_an_sqlite_registry_moves_to_postgresql_in_one_command(fresh_databases, keys_dir,
                                                                empty_postgres, tmp_path):
    sqlite_url = fresh_databases.new("sqlite")
    for folder in ("sqlite", "postgresql"):
        (tmp_path / folder).mkdir()
    on_sqlite = Server(sqlite_url, keys_dir, tmp_path / "sqlite", workers=1)
    backup = tmp_path / "registry.backup"
    published = []
    try:
        on_sqlite.start()
        client = RetryingClient(Client(on_sqlite.base))
        for association in ("bitkom", "numeum"):
            publisher = StatementPublisher(client, association_token(sqlite_url, association),
                                           association)
            published += [publisher.publish("moving", f"Position {n} of {association}.")
                          for n in (1, 2)]
        before = check_invariants(Client(on_sqlite.base), published,
                                  monitor_state=tmp_path / "monitor")
        checkpoint = Client(on_sqlite.base).get("/v1/log/checkpoint").body
        made = _registry("backup", str(backup), database_url=sqlite_url, workdir=tmp_path)
        assert made.returncode == 0, made.stderr
    finally:
        on_sqlite.stop()
    rows = _rows(sqlite_url)
    assert len(rows["versions"]) == len(before.versions) and rows["access_tokens"]

    moved = _registry("restore", str(backup), database_url=empty_postgres, workdir=tmp_path)

    assert moved.returncode == 0, moved.stderr
    # Every row, every value: version bytes and manifests byte for byte, ids, times.
    assert _rows(empty_postgres) == rows
    on_postgres = Server(empty_postgres, keys_dir, tmp_path / "postgresql", workers=1)
    try:
        on_postgres.start()
        served = Client(on_postgres.base)
        assert served.get("/v1/log/checkpoint").body == checkpoint
        # The same monitor state: the monitor sees the very tree it checked on SQLite.
        assert check_invariants(served, published, monitor_state=tmp_path / "monitor") == before
        # The sequences carry on past the copied ids: a new token, document, draft and version.
        publisher = StatementPublisher(RetryingClient(served),
                                       association_token(empty_postgres, "bitkom"), "bitkom")
        published.append(publisher.publish("moved", "A position of bitkom, on PostgreSQL."))
        assert published[-1].href.endswith("/statements/moved/versions/1")
        after = check_invariants(served, published, monitor_state=tmp_path / "monitor")
        assert after.log_size == before.log_size + 1
    finally:
        on_postgres.stop()

    # The schema came from the migrations, triggers included: what was published stays so.
    db = Database(empty_postgres)
    try:
        for statement in ("UPDATE versions SET manifest = manifest",
                          "DELETE FROM log_entries", "UPDATE log_checkpoints SET tree_size = 0",
                          "DELETE FROM audit_events", "DELETE FROM log_tiles"):
            with db.engine.connect() as connection, pytest.raises(sa.exc.DBAPIError, match="immutable"):
                connection.execute(sa.text(statement))
    finally:
        db.engine.dispose()

    # Restoring again finds a registry there: one line, and nothing written.
    rows = _rows(empty_postgres)
    again = _registry("restore", str(backup), database_url=empty_postgres, workdir=tmp_path)
    assert again.returncode != 0
    assert again.stderr.strip().count("\n") == 0, again.stderr
    assert "is not empty" in again.stderr
    assert _rows(empty_postgres) == rows


def test_an_sqlite_file_that_is_not_a_registry_is_refused(empty_postgres, tmp_path):
    other = tmp_path / "other.db"
    database = sqlite3.connect(other)
    database.execute("CREATE TABLE notes (text TEXT)")
    database.commit()
    database.close()

    refused = _registry("restore", str(other), database_url=empty_postgres, workdir=tmp_path)

    assert refused.returncode != 0
    assert "not a registry backup" in refused.stderr, refused.stderr
    assert _tables(empty_postgres) == []


def test_a_failed_move_leaves_the_target_empty(fresh_databases, empty_postgres, tmp_path):
    """A backup whose rows PostgreSQL refuses (here a version pointing at a missing document,
    which SQLite took with its foreign keys off) rolls the whole move back, schema included."""
    backup = Path(make_url(fresh_databases.new("sqlite")).database)
    database = sqlite3.connect(backup)
    database.execute("PRAGMA foreign_keys=OFF")
    database.execute("INSERT INTO version_labels (label, value, version_id, document_id, kind, "
                     "latest, withdrawn) VALUES ('tag', 'orphan', 999999, 999999, "
                     "'recommendation', 1, 0)")
    database.commit()
    database.close()

    failed = _registry("restore", str(backup), database_url=empty_postgres, workdir=tmp_path)

    assert failed.returncode != 0
    assert "could not restore" in failed.stderr, failed.stderr
    assert _tables(empty_postgres) == []
