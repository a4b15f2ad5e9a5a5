"""Database access: one typed declarative base, one engine per process, sessions per request.

SQLite (WAL) is the embedded default and PostgreSQL the deployment engine; both are reached
through SQLAlchemy 2 and shaped only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from app.core.files import create_private_file, make_private_folder

# A naming convention makes constraint names deterministic, so migrations can refer to them and
# `alembic check` compares like with like on both engines.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The declarative base every model derives from."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC timestamp on both engines (SQLite stores naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None \
            else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time in UTC, truncated to milliseconds so it survives every engine unchanged."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class PendingWrite:
    """A write transaction that begins at the first :meth:`Database.write` in its context, not
    before, and ends only when its owner commits or rolls it back (:meth:`Database.defer_writes`).

    Until a write begins it, it holds nothing: a request that never writes never takes the
    writer lock. Every later write in the context joins it.
    """

    def __init__(self, db: Database, session: Session | None = None):
        self.db = db
        self.session = session
        self._reset: contextvars.Token[PendingWrite | None] | None = None

    def commit(self) -> None:
        """Commit what was written, if anything was; on failure it is rolled back and the
        error raised."""
        if self.session is None:
            return
        try:
            self.session.commit()
        except BaseException:
            self.rollback()
            raise
        self._close()

    def rollback(self) -> None:
        """Discard what was written, if anything was."""
        if self.session is None:
            return
        try:
            self.session.rollback()
        finally:
            self._close()

    def release(self) -> None:
        """Roll back anything still open and stop deferring: later writes in this context run
        in transactions of their own again."""
        try:
            self.rollback()
        finally:
            if self._reset is not None:
                _JOINED.reset(self._reset)
                self._reset = None

    def _close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()


#: The transaction every :meth:`Database.write` in this context joins, if any.
_JOINED: contextvars.ContextVar[PendingWrite | None] = contextvars.ContextVar(
    "tech7_joined_transaction", default=None)


class Database:
    """The engine and session factory of one process.

    ``write()`` opens a transaction that holds the database's single-writer lock from its first
    statement (``BEGIN IMMEDIATE`` on SQLite; the ``registry_head`` row lock on PostgreSQL, taken
    by the service), so concurrent publishers queue instead of failing on a lock upgrade.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pid = os.getpid()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def ensure_process(self) -> None:
        """Drop connections inherited across a fork; a pool must never be shared by two processes."""
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any exception.

        Inside :meth:`transaction` it is that transaction's session: what is written then
        commits or rolls back with the rest of it.
        """
        joined = _JOINED.get()
        if joined is not None and joined.db is self:
            if joined.session is not None:
                yield joined.session
                return
            # The first write of a deferred transaction begins it and leaves it open; if it
            # fails, what it wrote is rolled back at once, as a write of its own would be.
            joined.session = self._begin_write()
            try:
                yield joined.session
            except BaseException:
                joined.rollback()
                raise
            return
        with self._begin_write() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _begin_write(self) -> Session:
        """A new session whose transaction has begun and holds the writer lock (SQLite)."""
        session = self.sessions()
        try:
            session.connection(execution_options={"tech7_immediate": True})
        except BaseException:
            session.close()
            raise
        return session

    def defer_writes(self) -> PendingWrite:
        """Make every :meth:`write` in this context, until :meth:`PendingWrite.release`, join
        one transaction that begins with the first of them and commits only when the caller
        says: the activity trail (:mod:`app.http.activity`) adds a request's event to it once
        the request's answer is known, so that a write and its event commit together.
        """
        pending = PendingWrite(self)
        pending._reset = _JOINED.set(pending)
        return pending

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction that every :meth:`write` in this context joins, so that what the
        services write and what the caller adds commit together or not at all (an idempotent
        request and the record of its answer, :mod:`app.http.idempotency`). Inside
        :meth:`defer_writes` it is part of the deferred transaction, and commits with it."""
        with self.write() as session:
            joined = _JOINED.set(PendingWrite(self, session))
            try:
                yield session
            finally:
                _JOINED.reset(joined)

    @contextlib.contextmanager
    def registry_transaction(self) -> Iterator[Session]:
        """A :meth:`write` that holds the registry's single-writer lock (:func:`lock_head`).

        Every change to what the registry publishes or signs (documents, drafts, versions,
        exports, certificates, approvals) runs in one: writers then queue in one order, and the
        head row numbers publications without gaps.
        """
        with self.write() as session:
            lock_head(session)
            yield session


class RegistryHead(Base):
    """The single row every publication locks: it serialises writers and numbers publications.

    ``last_seq`` is the sequence number of the latest publication. Because it is taken under the
    lock, sequence numbers are gap-free and in commit order, which is what the change feed's cursor
    relies on (an autoincrement id may commit out of order on PostgreSQL).
    """

    __tablename__ = "registry_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(default=0)


def lock_head(session: Session) -> RegistryHead:
    """Take the registry's single-writer lock (a row lock on PostgreSQL; SQLite's writer lock is
    already held by ``BEGIN IMMEDIATE``) and return the head row."""
    head = session.execute(sa.select(RegistryHead).where(RegistryHead.id == 1)
                           .with_for_update()).scalar_one_or_none()
    if head is None:
        head = RegistryHead(id=1, last_seq=0)
        session.add(head)
        session.flush()
    # The session's identity map holds rows only while something references them: keeping the
    # head here lets the transaction's later session.get() find it without another SELECT.
    session.info["tech7.registry_head"] = head
    return head


def create_engine(url: str) -> Engine:
    """Create an engine configured for the registry's engines (SQLite WAL, PostgreSQL psycopg 3)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_sqlite_files(Path(database))
        # 30 s busy timeout: writers queue behind each other rather than failing at once.
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def create_database(url: str) -> None:
    """Make an SQLite database at ``url`` if it is missing: its folder owner-only (0700) and the
    file itself empty and 0600, before SQLite opens it, for it holds token hashes and the activity
    trail. SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's
    permissions (os_unix.c: ``findCreateFileMode``, ``unixOpenSharedMemory``), so this covers
    them too. Nothing for other engines.

    Called only where a registry is made (migrations, restore), so that a command needing an
    existing registry writes nothing when it finds none.
    """
    if not url.startswith("sqlite"):
        return
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    make_private_folder(Path(database).parent)
    create_private_file(Path(database))


def _private_sqlite_files(database: Path) -> None:
    """Tighten an existing SQLite database and its ``-wal``, ``-shm`` and ``-journal`` files to
    owner-only (0600): files an older version left readable by others, or a copied database. A
    file owned by another user is theirs to change. New databases are made 0600 by
    :func:`create_database`.
    """
    for path in (database, *(database.with_name(database.name + suffix)
                             for suffix in ("-wal", "-shm", "-journal"))):
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except (FileNotFoundError, PermissionError):
            continue


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and explicit BEGIN so SQLAlchemy, not pysqlite, controls transactions.

    pysqlite's implicit transaction handling breaks SAVEPOINT and makes every writer take its lock
    late (on its first write), which turns two concurrent publishers into a "database is locked"
    error; ``BEGIN IMMEDIATE`` takes the write lock up front so they queue instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # SQLite's default page cache is 2 MiB per connection; a collection query probes
        # thousands of search rows at 10^5 statements, 3x faster (measured) when they stay
        # cached. The cache grows only as pages are read.
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get("tech7_immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
