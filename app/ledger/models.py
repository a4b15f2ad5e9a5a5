"""The log's tables: entries, C2SP tiles and signed checkpoints, all append-only; and what the
witnesses said of the checkpoints: their cosignatures, their state and the submitter's lease.

Migrations install triggers so the database refuses to change or delete an entry or checkpoint,
and lets a tile only grow: a full tile (256 hashes) never changes, and a partial tile may only be
extended with hashes appended after the ones it already has.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime


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


class WitnessCosignature(Base):
    """A witness's C2SP tlog-cosignature line on the checkpoint of ``tree_size``, verified when stored.

    ``witness`` is the witness's name in the policy (``TECH7_WITNESS_POLICY``).
    """

    __tablename__ = "witness_cosignatures"

    tree_size: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    signature_line: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WitnessState(Base):
    """What the registry knows of one witness: the size it last cosigned, and its last error."""

    __tablename__ = "witness_states"

    witness: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    tree_size: Mapped[int] = mapped_column(sa.BigInteger)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WitnessLease(Base):
    """The lease that lets exactly one process, on any host, talk to the witnesses at a time."""

    __tablename__ = "witness_leases"

    name: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
