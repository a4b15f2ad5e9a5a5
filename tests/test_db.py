"""The embedded SQLite database is readable by its owner only: it holds token hashes and the
activity trail. (A fresh ``serve`` is checked in test_serve.py.) Deferred writes join one
transaction that begins with the first of them."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from app.core.db import Database, create_database


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_files_are_owner_only(tmp_path):
    path = tmp_path / "data" / "new.db"
    create_database(f"sqlite:///{path}")
    assert _mode(path.parent) == 0o700
    db = Database(f"sqlite:///{path}")
    with db.write() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with db.engine.connect():  # the WAL files exist while a connection is open
        assert [_mode(path.parent / name) for name in ("new.db", "new.db-wal", "new.db-shm")] \
            == [0o600] * 3
    db.engine.dispose()


def test_a_database_left_readable_by_others_is_made_owner_only(tmp_path):
    path = tmp_path / "old.db"
    older = sqlite3.connect(path)  # as an older version made it, WAL files and all
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE t (x INTEGER)")
    older.commit()
    files = [path, tmp_path / "old.db-wal", tmp_path / "old.db-shm"]
    for file in files:
        file.chmod(0o644)

    db = Database(f"sqlite:///{path}")

    assert [_mode(file) for file in files] == [0o600] * 3
    older.close()
    db.engine.dispose()


def test_deferred_writes_begin_with_the_first_and_commit_once(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'deferred.db'}")
    with db.write() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")

    def rows() -> list[int]:
        with db.engine.connect() as connection:
            return [x for (x,) in connection.exec_driver_sql("SELECT x FROM t ORDER BY x")]

    pending = db.defer_writes()
    try:
        assert pending.session is None, "no transaction, so no writer lock, before a write"
        with pytest.raises(RuntimeError), db.write() as session:
            session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("the first write fails")
        assert pending.session is None, "a failed first write is rolled back at once"
        with db.write() as first:
            first.connection().exec_driver_sql("INSERT INTO t VALUES (2)")
        with db.transaction() as second:
            assert second is first
            second.connection().exec_driver_sql("INSERT INTO t VALUES (3)")
        assert rows() == [], "nothing commits before the owner says so"
        pending.commit()
    finally:
        pending.release()
    assert rows() == [2, 3]
    with db.write() as session:  # released: a write of its own again
        session.connection().exec_driver_sql("INSERT INTO t VALUES (4)")
    assert rows() == [2, 3, 4]
    db.engine.dispose()
