"""The transparency log service: appending records, signed checkpoints, proofs and tiles.

Appends run inside the caller's transaction, which holds the registry's single writer lock, so
entries get contiguous indices and the tree only ever grows by one leaf at a time. Each append
writes the entry, extends the tiles it changes (C2SP tlog-tiles) and stores the signed checkpoint
of the new tree (C2SP tlog-checkpoint), all committed with the thing the entry records, or not at
all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
import sqlalchemy as sa
from sqlalchemy.orm import Session
from tech7_tlog.merkle import HASH_SIZE, consistency_proof, inclusion_proof, leaf_hash, parent_level, tree_root
from tech7_tlog.note import format_checkpoint, format_tlog_proof, sign_note, verifier_key
from tech7_tlog.tiles import TILE_HEIGHT, TILE_WIDTH, entry_bundle, hash_from_tile, tile_span

from app.core.caching import BoundedCache
from app.core.db import Database, utcnow
from app.core.errors import InvalidRequest, NotFound
from app.ledger.models import MAX_INDEX, LogCheckpoint, LogEntry, LogTile
from app.pki.keyring import Keyring

_FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_APPENDED = "tech7.log_appended"  # session.info: this transaction appended, wake on its commit
_WRITER_TILES = "tech7.log_tiles"  # session.info: the tiles this transaction read or extended
#: 8 KiB each: 16 MiB at most, the level-0 tiles of the newest half-million entries.
_FULL_TILE_CACHE = 2048


@dataclass(frozen=True)
class Entry:
    """A log entry as served."""

    index: int
    leaf: bytes
    leaf_hash: bytes
    entry_type: str
    subject: str
    created_at: datetime


class TransparencyLog:
    """The registry's RFC 9162 log, stored as tiles in SQL, with Ed25519-signed checkpoints."""

    def __init__(self, db: Database, *, origin: str, keyring: Keyring):
        self.db = db
        self.origin = origin
        self._keyring = keyring
        # Full tiles never change, so every process may keep them; the most recently used
        # (the right edge of the tree, where proofs for new entries go) stay.
        self._full_tiles: BoundedCache[tuple[int, int], bytes] = BoundedCache(_FULL_TILE_CACHE)
        #: Called, without arguments and on the committing thread, after each transaction that
        #: appended entries commits: the witnesses' rounds wake on it. It must not block.
        self.appended: Callable[[], None] | None = None
        #: Appends this process began (committed or not): readers that keep the current
        #: checkpoint for a moment read it again once this changes.
        self.appends_begun = 0

    @property
    def verifier_key(self) -> str:
        """The C2SP signed-note verifier key auditors configure to check checkpoints."""
        return verifier_key(self.origin, self._keyring.store.log_public_key)

    # -- appending -----------------------------------------------------------------------------

    def append(self, session: Session, record: Mapping[str, Any]) -> Entry:
        """Append ``record`` (RFC 8785 bytes become the leaf) inside the caller's locked transaction."""
        leaf = rfc8785.dumps(dict(record))
        self.appends_begun += 1
        index: int = session.execute(
            sa.select(sa.func.coalesce(sa.func.max(LogEntry.index) + 1, 0))).scalar_one()
        hashed = leaf_hash(leaf)
        now = utcnow()
        # Plain INSERTs for the entry and its checkpoint: rows that never change skip the unit
        # of work (only the tiles are objects, extended in place).
        session.execute(sa.insert(LogEntry), {
            "index": index, "leaf": leaf, "leaf_hash": hashed, "entry_type": str(record["type"]),
            "subject": str(record["subject"]), "document_sha256": record.get("document_sha256"),
            "created_at": now})
        self._add_hash(session, 0, index, hashed)
        if self.appended is not None and not session.info.get(_APPENDED):
            # After the commit, never before: a round must only see checkpoints that exist.
            session.info[_APPENDED] = True
            sa.event.listen(session, "after_commit", self._committed, once=True)
        size = index + 1
        root = tree_root(size, self._uncommitted_hashes(session))
        note = sign_note(format_checkpoint(self.origin, size, root), self.origin,
                         self._keyring.store.log_private_key)
        session.execute(sa.insert(LogCheckpoint), {"tree_size": size, "root_hash": root,
                                                   "note": note, "created_at": now})
        session.flush()
        return Entry(index=index, leaf=leaf, leaf_hash=hashed, entry_type=str(record["type"]),
                     subject=str(record["subject"]), created_at=now)

    def _committed(self, session: Session) -> None:
        session.info.pop(_APPENDED, None)
        if self.appended is not None:
            self.appended()

    def _add_hash(self, session: Session, level: int, position: int, hashed: bytes) -> None:
        """Put ``hashed`` at ``position`` of tile level ``level``; a tile that fills up sends its
        subtree hash to the level above (C2SP tlog-tiles "Merkle Tree")."""
        tile_index, offset = divmod(position, TILE_WIDTH)
        tiles = session.info.setdefault(_WRITER_TILES, {})
        tile = tiles.get((level, tile_index))
        if not isinstance(tile, LogTile):  # a tile being extended is never a full one's bytes
            tile = session.get(LogTile, (level, tile_index))
        if tile is None:
            tile = LogTile(level=level, index=tile_index, hashes=hashed)
            session.add(tile)
        else:
            tile.hashes = tile.hashes + hashed
        tiles[(level, tile_index)] = tile
        if offset == TILE_WIDTH - 1:
            subtree = tile.hashes
            for _ in range(TILE_HEIGHT):
                subtree = parent_level(subtree)
            self._add_hash(session, level + 1, tile_index, subtree)

    # -- reading -------------------------------------------------------------------------------

    def last_recorded_at(self) -> datetime | None:
        """When the newest entry was appended: the registry's latest change of any kind.

        Every publication is logged in the transaction that makes it, under the writer lock, so
        no later change has an earlier time (unlike ``published_at``, which a version signed
        with an association's own key brings along). None while the log is empty.
        """
        with self.db.sessions() as session:
            return session.scalar(sa.select(LogEntry.created_at)
                                  .order_by(LogEntry.index.desc()).limit(1))

    def size(self) -> int:
        """The number of entries in the log."""
        with self.db.sessions() as session:
            return session.execute(sa.select(sa.func.coalesce(
                sa.func.max(LogCheckpoint.tree_size), 0))).scalar_one()

    def checkpoint(self, tree_size: int | None = None) -> str:
        """The signed checkpoint of the current tree (or of an earlier ``tree_size``)."""
        with self.db.sessions() as session:
            query = sa.select(LogCheckpoint.note)
            query = query.where(LogCheckpoint.tree_size == tree_size) if tree_size is not None \
                else query.order_by(LogCheckpoint.tree_size.desc()).limit(1)
            note = session.scalar(query)
        if note is None:
            raise NotFound("The log has no checkpoint of that size." if tree_size
                           else "The log is empty.")
        return note

    def entry(self, index: int) -> Entry:
        """One entry by index."""
        with self.db.sessions() as session:
            row = session.get(LogEntry, index)
        if row is None:
            raise NotFound(f"The log has no entry {index}.")
        return _entry(row)

    def entries_for_document(self, sha256: str) -> list[Entry]:
        """Every entry that records a document with this SHA-256."""
        with self.db.sessions() as session:
            rows = session.scalars(sa.select(LogEntry).where(LogEntry.document_sha256 == sha256)
                                   .order_by(LogEntry.index)).all()
        return [_entry(row) for row in rows]

    def entries_for_subject(self, subject: str) -> list[Entry]:
        """Every entry about one subject (a version URL, an export, a certificate)."""
        with self.db.sessions() as session:
            rows = session.scalars(sa.select(LogEntry).where(LogEntry.subject == subject)
                                   .order_by(LogEntry.index)).all()
        return [_entry(row) for row in rows]

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 §2.1.3 inclusion proof of entry ``index`` in the tree of ``tree_size``."""
        current = self.size()
        if not 1 <= tree_size <= current:
            raise InvalidRequest(f"tree_size must be between 1 and the log's size, {current}.")
        if not 0 <= index < tree_size:
            raise InvalidRequest(f"index must be below tree_size ({tree_size}).")
        with self.db.sessions() as session:
            return inclusion_proof(index, tree_size,
                                   lambda level, i: self._hash_at(session, level, i))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 §2.1.4 consistency proof between two tree sizes."""
        current = self.size()
        if not 1 <= second <= current:
            raise InvalidRequest(f"second must be between 1 and the log's size, {current}.")
        if not 1 <= first <= second:
            raise InvalidRequest("first must be between 1 and second.")
        with self.db.sessions() as session:
            return consistency_proof(first, second,
                                     lambda level, i: self._hash_at(session, level, i))

    def receipt(self, index: int, note: str | None = None) -> str:
        """A C2SP tlog-proof for entry ``index`` against the current checkpoint (or the signed
        checkpoint ``note`` of a tree that holds the entry, cosignatures and all), with the leaf
        as ``extra`` so the receipt alone shows what was logged."""
        note = note or self.checkpoint()
        tree_size = int(note.split("\n", 2)[1])
        entry = self.entry(index)
        return format_tlog_proof(entry.leaf, index, self.inclusion_proof(index, tree_size), note)

    def receipt_in(self, session: Session, index: int) -> str:
        """:meth:`receipt` for entry ``index`` against the newest checkpoint, read in the
        caller's transaction (a publish links its parent this way inside the writer lock, with
        no second session)."""
        row = session.scalar(sa.select(LogCheckpoint)
                             .order_by(LogCheckpoint.tree_size.desc()).limit(1))
        entry = session.get(LogEntry, index)
        if row is None or entry is None or index >= row.tree_size:
            raise NotFound(f"The log has no entry {index} under a checkpoint.")
        proof = inclusion_proof(index, row.tree_size, self._uncommitted_hashes(session))
        return format_tlog_proof(entry.leaf, index, proof, row.note)

    def tile(self, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of a tile, if the log has that many there."""
        if index > MAX_INDEX:
            # A valid C2SP path, but no such tile can be stored: asking the database would fail.
            raise NotFound("The log has no such tile.")
        with self.db.sessions() as session:
            hashes = self._tile(session, level, index)
        if hashes is None or len(hashes) < width * HASH_SIZE:
            raise NotFound("The log has no such tile (yet).")
        return hashes[:width * HASH_SIZE]

    def entry_bundle(self, index: int, width: int) -> bytes:
        """The C2SP entry bundle of leaves ``index * 256`` to ``index * 256 + width``."""
        first = index * TILE_WIDTH
        if first + width - 1 > MAX_INDEX:
            raise NotFound("The log has no such entry bundle.")
        with self.db.sessions() as session:
            leaves = session.scalars(sa.select(LogEntry.leaf)
                                     .where(LogEntry.index >= first,
                                            LogEntry.index < first + width)
                                     .order_by(LogEntry.index)).all()
        if len(leaves) < width:
            raise NotFound("The log has no such entry bundle (yet).")
        return entry_bundle(leaves)

    def _uncommitted_hashes(self, session: Session):
        """hash_at for computations inside a writer's transaction: its tiles may not be kept
        across transactions (they could still be rolled back), but each is read once per
        transaction, not once per hash or per computation. The rows stay referenced from
        ``session.info`` (the identity map holds rows only while something references them), so
        the transaction's later ``session.get`` of a tile it extends finds it without a SELECT,
        and sees what it appended."""
        tiles: dict[tuple[int, int], LogTile | bytes | None] = session.info.setdefault(
            _WRITER_TILES, {})

        def hash_at(level: int, index: int) -> bytes:
            span = tile_span(level, index)
            key = (span.tile_level, span.tile_index)
            tile = tiles.get(key)
            if tile is None:
                tile = tiles[key] = self._full_tiles.get(key) or session.get(LogTile, key)
            if tile is None:
                raise NotFound(f"The log has no node at level {level}, index {index}.")
            return hash_from_tile(tile if isinstance(tile, bytes) else tile.hashes, level, index)

        return hash_at

    def _hash_at(self, session: Session, level: int, index: int) -> bytes:
        """hash_at for :mod:`tech7_tlog.merkle`, answered from stored tiles."""
        span = tile_span(level, index)
        hashes = self._tile(session, span.tile_level, span.tile_index)
        if hashes is None:
            raise NotFound(f"The log has no node at level {level}, index {index}.")
        return hash_from_tile(hashes, level, index)

    def _tile(self, session: Session, level: int, index: int) -> bytes | None:
        cached = self._full_tiles.get((level, index))
        if cached is not None:
            return cached
        tile = session.get(LogTile, (level, index))
        if tile is None:
            return None
        # Only tiles read from committed state may be kept (readers' sessions; a writer's own
        # tiles could still be rolled back, and it reads them through _uncommitted_hashes).
        if len(tile.hashes) == _FULL_TILE_BYTES:
            self._full_tiles.put((level, index), tile.hashes)
        return tile.hashes


def _entry(row: LogEntry) -> Entry:
    return Entry(index=row.index, leaf=row.leaf, leaf_hash=row.leaf_hash,
                 entry_type=row.entry_type, subject=row.subject, created_at=row.created_at)
