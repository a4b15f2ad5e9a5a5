"""The embedded SQLite database is readable by its owner only: it holds token hashes and the
activity trail. (A fresh ``serve`` is checked in test_serve.py.)"""

from __future__ import annotations

import sqlite3
import stat

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
