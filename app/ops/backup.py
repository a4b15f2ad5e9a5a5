"""Backing up the registry's database and restoring it into an empty one.

- SQLite: SQLite's online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot
  while the service keeps running; the copy is one self-contained file (rollback journal, not
  WAL) checked with ``PRAGMA integrity_check``.
- PostgreSQL: ``pg_dump --format=custom`` (a consistent snapshot too), checked by listing it
  with ``pg_restore --list``; restored with ``pg_restore --single-transaction``.
- From SQLite to PostgreSQL: an SQLite backup restored into PostgreSQL is moved, not dumped. In
  one transaction the project's migrations make the schema (with the triggers that keep versions
  and the log append-only), every row of every table is copied in dependency order, values as
  they are (version bytes and manifests byte for byte), and the sequences are set past the
  copied ids. A backup made by an older release is brought to the current schema first, on a
  private copy; the backup itself is only read.

A backup is written next to its destination and renamed into place once complete and checked, so
a failed backup never leaves a file that looks like one. A restore goes only into an empty
database and is one transaction, so it either completes or leaves the database empty. The key
folder is not in the database: back it up separately (see the README).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.engine import URL, Connection

from app.core.db import Database, create_database
from app.core.files import create_private_file
from app.models import metadata
from app.ops.migrate import upgrade

#: The first 16 bytes of every SQLite database file (SQLite file format, section 1.3.1,
#: "Magic Header String").
SQLITE_HEADER = b"SQLite format 3\x00"
#: Rows copied per INSERT when moving a registry from SQLite to PostgreSQL.
COPY_BATCH = 500


class BackupError(Exception):
    """A backup or restore that could not be made; the database was not changed."""


def backup(db: Database, out: Path) -> None:
    """Write a backup of ``db`` to ``out`` (replacing it, once the new backup is complete)."""
    if not out.parent.is_dir():
        raise BackupError(f"could not write {out}: {out.parent} is not a folder")
    partial = out.with_name(out.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        # A backup holds what the database does (token hashes, the activity trail): owner-only.
        create_private_file(partial)
        if db.is_sqlite:
            _backup_sqlite(db, partial)
        else:
            _backup_postgresql(db, partial)
        os.replace(partial, out)
    except (OSError, sqlite3.Error, sa.exc.SQLAlchemyError) as error:
        raise BackupError(f"could not write {out}: {error}") from error
    finally:
        partial.unlink(missing_ok=True)


def restore(db: Database, source: Path) -> None:
    """Restore the backup ``source`` into ``db``, which must be empty (hold no tables)."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    try:
        if db.is_sqlite:
            _restore_sqlite(db, source)
        else:
            _restore_postgresql(db, source)
    except (OSError, sqlite3.Error, sa.exc.SQLAlchemyError, CommandError) as error:
        raise BackupError(f"could not restore {source}: {error}") from error


# -- SQLite ----------------------------------------------------------------------------------------


def _backup_sqlite(db: Database, partial: Path) -> None:
    source = db.engine.raw_connection()
    try:
        target = sqlite3.connect(partial)
        try:
            # One step (pages=-1): the whole snapshot is copied under a single read transaction.
            sqlite_source = source.driver_connection
            assert sqlite_source is not None  # an open pool connection has its driver's
            sqlite_source.backup(target)
            # A backup is one file: a WAL database would need its -wal and -shm files beside it.
            target.execute("PRAGMA journal_mode=DELETE")
            _check_integrity(target, f"the backup written to {partial}")
        finally:
            target.close()
    finally:
        source.close()


def _restore_sqlite(db: Database, source: Path) -> None:
    path = db.engine.url.database
    if not path or path == ":memory:" or db.engine.url.query.get("mode") == "ro":
        raise BackupError(f"cannot restore into {db.engine.url}: not a writable database file")
    # The engine's pooled connections would not see the restored schema.
    db.engine.dispose()
    create_database(str(db.engine.url))
    backup_file = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        try:
            _check_integrity(backup_file, str(source))
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{source} is not an SQLite backup: {error}") from error
        target = sqlite3.connect(path)
        try:
            if target.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise BackupError(f"{path} is not empty; restore only into an empty database")
            # The backup API replaces the target's content in one write transaction.
            backup_file.backup(target)
            _check_integrity(target, path)
        finally:
            target.close()
    finally:
        backup_file.close()


def _check_integrity(connection: sqlite3.Connection, what: str) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise BackupError(f"{what} fails PRAGMA integrity_check: {result[:5]}")


# -- PostgreSQL ------------------------------------------------------------------------------------


def _backup_postgresql(db: Database, partial: Path) -> None:
    _run([_tool("pg_dump"), "--format=custom", f"--file={partial}"], db.engine.url,
         "pg_dump failed")
    _run([_tool("pg_restore"), "--list", str(partial)], None,
         "the dump does not read back with pg_restore --list")


def _restore_postgresql(db: Database, source: Path) -> None:
    _refuse_unless_empty(db)
    if _is_sqlite_file(source):
        _move_sqlite_into_postgresql(db, source)
        return
    pg_restore = _tool("pg_restore")
    _run([pg_restore, "--list", str(source)], None,
         f"{source} is not a backup: neither a pg_dump custom archive nor an SQLite "
         f"database")
    _run([pg_restore, "--exit-on-error", "--single-transaction", "--no-owner", str(source)],
         db.engine.url, "pg_restore failed (nothing was restored)")


def _refuse_unless_empty(db: Database, connection: Connection | None = None) -> None:
    if connection is None:
        with db.engine.connect() as own:
            tables = sa.inspect(own).get_table_names()
        db.engine.dispose()
    else:
        tables = sa.inspect(connection).get_table_names()
    if tables:
        raise BackupError(f"database {db.engine.url.database} is not empty "
                          f"({len(tables)} tables); restore only into an empty database")


def _is_sqlite_file(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _move_sqlite_into_postgresql(db: Database, source: Path) -> None:
    """Copy the registry in the SQLite backup ``source`` into the empty PostgreSQL ``db``."""
    # A private folder (mkdtemp makes it 0700) for the copy the migrations may bring up to date.
    with tempfile.TemporaryDirectory(prefix="tech7-restore-") as folder:
        copy = Path(folder) / "registry.db"
        _copy_sqlite_backup(source, copy)
        copy_url = f"sqlite:///{copy}"
        upgrade(copy_url)
        moving = Database(copy_url)
        try:
            with moving.engine.connect() as reading, db.engine.connect() as writing, writing.begin():
                _refuse_unless_empty(db, writing)
                upgrade(db.url, writing)
                _copy_rows(reading, writing)
                _reset_sequences(writing)
        finally:
            moving.engine.dispose()
            db.engine.dispose()


def _copy_sqlite_backup(source: Path, copy: Path) -> None:
    """Check ``source`` is a sound SQLite registry backup and copy it to ``copy`` (0600)."""
    create_private_file(copy)
    backup_file = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        try:
            _check_integrity(backup_file, str(source))
            migrated = backup_file.execute("SELECT count(*) FROM sqlite_master WHERE type = "
                                           "'table' AND name = 'alembic_version'").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{source} is not an SQLite backup: {error}") from error
        if not migrated:
            raise BackupError(f"{source} is an SQLite database but not a registry backup "
                              f"(it has no alembic_version table)")
        target = sqlite3.connect(copy)
        try:
            backup_file.backup(target)
        finally:
            target.close()
    finally:
        backup_file.close()


def _copy_rows(reading: Connection, writing: Connection) -> None:
    """Copy every table's rows, parents before children (foreign keys) and each table in key
    order (a token before the tokens it made). Values pass through the models' column types, so
    bytes stay bytes and timestamps stay UTC."""
    for table in metadata.sorted_tables:
        if writing.scalar(sa.select(sa.func.count()).select_from(table)):
            # Rows the migrations themselves write (the registry head), replaced by the backup's.
            writing.execute(table.delete())
        rows = reading.execution_options(yield_per=COPY_BATCH).execute(
            sa.select(table).order_by(*table.primary_key.columns))
        for batch in rows.mappings().partitions():
            writing.execute(table.insert(), [dict(row) for row in batch])
        copied = writing.scalar(sa.select(sa.func.count()).select_from(table))
        expected = reading.scalar(sa.select(sa.func.count()).select_from(table))
        if copied != expected:
            raise BackupError(f"copied {copied} of the {expected} rows of {table.name}")


def _reset_sequences(writing: Connection) -> None:
    """Set each serial key's sequence past the largest copied id: rows were inserted with their
    ids, which leaves the sequences where the migrations made them."""
    quote = writing.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            sequence = writing.scalar(sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
                                      {"table": table.name, "column": column.name})
            if sequence is not None:
                writing.execute(sa.text(
                    f"SELECT setval(:sequence, coalesce((SELECT max({quote(column.name)}) "
                    f"FROM {quote(table.name)}), 0) + 1, false)"), {"sequence": sequence})


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (it comes with the PostgreSQL client tools, "
                          f"of the server's major version or newer)")
    return path


def _run(command: list[str], url: URL | None, failure: str) -> None:
    """Run a PostgreSQL client tool, on the database at ``url`` if given.

    The password goes in ``PGPASSWORD``, not on the command line, where other users could read it.
    """
    environment = dict(os.environ)
    if url is not None:
        if url.password is not None:
            environment["PGPASSWORD"] = str(url.password)
        libpq = URL.create("postgresql", username=url.username, host=url.host, port=url.port,
                           database=url.database, query=url.query)
        command = [*command, f"--dbname={libpq.render_as_string(hide_password=False)}"]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True,
                               check=False)
    if completed.returncode:
        raise BackupError(f"{failure}: {completed.stderr.strip()}")
