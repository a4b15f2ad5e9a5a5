"""The log's tables: entries, C2SP tiles and signed checkpoints. All are append-only.

Migrations install triggers so the database refuses to change or delete an entry or checkpoint,
and lets a tile only grow: a full tile (256 hashes) never changes, and a partial tile may only be
extended with hashes appended after the ones it already has.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class LogEntry(Base):
    """One leaf: the exact RFC 8785 bytes of a record, and its RFC 9162 leaf hash."""

    __tablename__ = "log_entries"

    index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    leaf: Mapped[bytes] = mapped_column(sa.LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    entry_type: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(300), index=True)
    document_sha256: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


MAX_INDEX = 2**31 - 1
"""The largest entry or tile index the tables hold: their ``index`` columns are INTEGER, 32 bits
on PostgreSQL, so no entry, entry bundle or tile of this log lies beyond it."""


class LogTile(Base):
    """A C2SP tlog-tiles tile: up to 256 concatenated 32-byte hashes of one tree level."""

    __tablename__ = "log_tiles"

    level: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(sa.LargeBinary)


class LogCheckpoint(Base):
    """The signed checkpoint (C2SP tlog-checkpoint note) of every tree size the log has had."""

    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    note: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
