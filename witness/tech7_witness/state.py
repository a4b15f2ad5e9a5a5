"""The witness's memory: per log origin, the latest checkpoint it cosigned, in SQLite.

C2SP tlog-witness "add-checkpoint" requires the check of the old size and the write of the new
checkpoint to be atomic, and the write to be durable before the witness answers; otherwise two
requests could roll the recorded size back, or a crash could make the witness forget a size it
cosigned and then cosign a fork of it. So each update runs in one ``BEGIN IMMEDIATE``
transaction (one writer at a time, across threads and processes on the same file), in WAL mode
with ``synchronous=FULL`` (the commit is on disk when COMMIT returns).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tech7_tlog.merkle import EMPTY_TREE_HASH

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    origin_hash TEXT NOT NULL UNIQUE,
    -- ASCII decimal: tree sizes are u64, beyond SQLite's signed 64-bit integers.
    tree_size TEXT NOT NULL,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Latest:
    """The latest cosigned checkpoint of one origin: its size, root and the cosigned note as served."""

    tree_size: int
    root_hash: bytes
    note: str


NEVER_COSIGNED = Latest(tree_size=0, root_hash=EMPTY_TREE_HASH, note="")
"""What the witness knows of an origin it never cosigned: the empty tree (C2SP tlog-witness:
"or zero if it never cosigned a checkpoint for that origin")."""


def origin_hash(origin: str) -> str:
    """Lowercase hex SHA-256 of the origin line (without its newline), naming it in monitoring URLs."""
    return hashlib.sha256(origin.encode()).hexdigest()


class State:
    """The SQLite file holding each origin's latest cosigned checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Owner-only from its first byte, whatever the umask; SQLite's -wal and -shm files
        # copy the database file's permissions.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)

    def cosigned_note(self, hashed_origin: str) -> str | None:
        """The cosigned checkpoint last recorded for the origin whose :func:`origin_hash` is given."""
        with self._connect() as connection:
            latest = self._read(connection, "origin_hash = ?", hashed_origin)
        return latest.note if latest else None

    @contextmanager
    def update(self, origin: str) -> Iterator[Update]:
        """One atomic, durable check-and-update of ``origin``: read, decide, write, commit.

        The body sees :attr:`Update.latest` and may call :meth:`Update.record`; leaving the block
        commits (durably) what it recorded, and an exception rolls everything back.
        """
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                update = Update(connection, origin, self._read(connection, "origin = ?", origin) or NEVER_COSIGNED)
                yield update
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _connect(self) -> closing[sqlite3.Connection]:
        # A connection per call: requests run on threads of their own, and sqlite3's context
        # manager would not close it.
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        connection.execute("PRAGMA synchronous=FULL")
        return closing(connection)

    @staticmethod
    def _read(connection: sqlite3.Connection, where: str, value: str) -> Latest | None:
        row = connection.execute(
            f"SELECT tree_size, root_hash, note FROM checkpoints WHERE {where}", (value,)
        ).fetchone()
        return Latest(tree_size=int(row[0]), root_hash=bytes(row[1]), note=row[2]) if row else None


class Update:
    """An origin's state inside :meth:`State.update`'s transaction."""

    def __init__(self, connection: sqlite3.Connection, origin: str, latest: Latest) -> None:
        self._connection = connection
        self.origin = origin
        self.latest = latest

    def record(self, tree_size: int, root_hash: bytes, note: str) -> None:
        """Make (``tree_size``, ``root_hash``) the latest cosigned checkpoint, ``note`` what is served."""
        self._connection.execute(
            "INSERT INTO checkpoints (origin, origin_hash, tree_size, root_hash, note) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (origin) DO UPDATE SET tree_size = excluded.tree_size,"
            " root_hash = excluded.root_hash, note = excluded.note",
            (self.origin, origin_hash(self.origin), str(tree_size), root_hash, note),
        )
        self.latest = Latest(tree_size=tree_size, root_hash=root_hash, note=note)

