"""A `limits` storage in an SQLite file, so that every worker of one host counts against one limit.

flask-limiter's ``memory://`` storage counts in each process alone: with N gunicorn workers a
client could make N times the advertised limit. Its other storages (Redis, memcached, MongoDB)
need a server. This one keeps the counters in a small SQLite file of their own, apart from the
registry's database (they change on every request, and are not worth backing up), which every
worker on the host opens: ``tech7-sqlite:///path/to/ratelimits.db``. For several hosts, use Redis.

It implements the fixed-window strategy flask-limiter uses by default (``limits.storage.Storage``:
``incr`` with an expiry, ``get``, ``get_expiry``, ``clear``, ``reset``, ``check``); it does not
support the moving and sliding windows, which are not used. Each counter is one row, and each
``incr`` is one atomic UPSERT statement, so two workers counting the same key never lose a hit.
The file is made 0600 (it names client addresses and token hash prefixes); SQLite gives its
``-wal`` and ``-shm`` files the same mode.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from limits.storage import Storage

from app.core.files import create_private_file, make_private_folder

# Seconds a writer waits for another worker's write to finish before the hit fails (flask-limiter
# then counts in memory until the file answers again).
_BUSY_TIMEOUT_SECONDS = 5.0
# Expired rows are deleted at most this often per process; reads ignore them meanwhile.
_PURGE_EVERY_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID
"""


def _prepare(connection: sqlite3.Connection) -> None:
    """WAL mode, no syncing (a lost hit is no damage) and the table, on a new connection.

    Switching to WAL takes an exclusive lock, and SQLite answers "database is locked" at once,
    without its busy handler, while another worker's connection is reading or writing. So the
    switch is made only by a connection that finds the file not yet in WAL mode, and retried
    until the busy timeout has passed (every worker opens the file on its first request).
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute(_SCHEMA)


class SQLiteStorage(Storage):
    """Rate limit counters in an SQLite file shared by the processes of one host."""

    # limits registers the class under these schemes, declared on its base as a list.
    STORAGE_SCHEME = ["tech7-sqlite"]  # noqa: RUF012

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: float | str | bool):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = unquote(urlsplit(uri).path)
        if not path:
            raise ValueError(f"{uri!r} names no file: use tech7-sqlite:///path/to/file.db")
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._purged_at = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        """This process's connection, opened on first use (after gunicorn's fork: a connection
        must not cross one). Call with the lock held."""
        if self._connection is None or self._pid != os.getpid():
            # Made owner-only before SQLite opens it (in a folder of its own when the registry's
            # database is elsewhere); an existing file keeps its mode.
            make_private_folder(self.path.parent)
            create_private_file(self.path)
            connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_SECONDS,
                                         isolation_level=None, check_same_thread=False)
            _prepare(connection)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` hits to ``key``; a counter that is new or expired starts a window of
        ``expiry`` seconds. Returns the hits in the current window."""
        now = time.time()
        with self._lock:
            db = self._db()
            if now - self._purged_at > _PURGE_EVERY_SECONDS:
                db.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
                self._purged_at = now
            (hits,) = db.execute(
                "INSERT INTO counters (key, hits, expires_at) VALUES (:key, :amount, :expires) "
                "ON CONFLICT (key) DO UPDATE SET "
                "hits = CASE WHEN expires_at <= :now THEN :amount ELSE hits + :amount END, "
                "expires_at = CASE WHEN expires_at <= :now THEN :expires ELSE expires_at END "
                "RETURNING hits",
                {"key": key, "amount": amount, "expires": now + expiry, "now": now}).fetchone()
        return hits

    def get(self, key: str) -> int:
        """The hits of ``key`` in its current window (0 when it has none or it expired)."""
        with self._lock:
            row = self._db().execute(
                "SELECT hits FROM counters WHERE key = ? AND expires_at > ?",
                (key, time.time())).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        """When the window of ``key`` ends, in seconds since the epoch (now when it has none)."""
        now = time.time()
        with self._lock:
            row = self._db().execute(
                "SELECT expires_at FROM counters WHERE key = ? AND expires_at > ?",
                (key, now)).fetchone()
        return row[0] if row else now

    def check(self) -> bool:
        """Whether the file answers (flask-limiter asks while it counts in memory instead)."""
        try:
            with self._lock:
                self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        """Delete every counter; returns how many there were."""
        with self._lock:
            return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        """Delete the counter of ``key``."""
        with self._lock:
            self._db().execute("DELETE FROM counters WHERE key = ?", (key,))
