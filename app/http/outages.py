"""Database outages answer 503 ``/problems/service-unavailable`` with ``Retry-After``, not 500.

An outage is a failure that retrying later may cure: the server is unreachable or went away, the
connection pool is exhausted, the database file became read-only, the disk is full, a lock could
not be had. Every service writes in one transaction (:meth:`app.core.db.Database.write`) that rolls back
on any exception, so a request refused this way changed nothing — except in the one case no
client can rule out, a connection lost while ``COMMIT`` was in flight; a publish retried with the
same ``Idempotency-Key`` is safe either way.

Errors of the same SQLAlchemy classes that a retry would not cure (SQLite's generic
``SQLITE_ERROR``: a missing table, bad SQL) are bugs and stay 500s.
"""

from __future__ import annotations

import logging
import sqlite3

import sqlalchemy as sa
from flask import Flask, Response, request

from app.core.errors import ServiceUnavailable
from app.http.problems import render_registry_error, render_unexpected

log = logging.getLogger(__name__)

# SQLite result codes (https://www.sqlite.org/rescode.html) a retry may cure; their extended
# codes (SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE, SQLITE_BUSY_SNAPSHOT …) share the prefix.
_SQLITE_OUTAGES = ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_BUSY", "SQLITE_LOCKED",
                   "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_NOMEM", "SQLITE_PROTOCOL")
# The SQLAlchemy exceptions that may signal an outage. OperationalError and InterfaceError wrap
# the driver's (psycopg: connection refused or lost, server shutting down, disk full, lock or
# statement timeouts; sqlite3: see above); DisconnectionError is raised by the pool's pre-ping;
# TimeoutError means no pooled connection came free in time.
OUTAGE_EXCEPTIONS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
                     sa.exc.TimeoutError)


def is_database_outage(error: BaseException) -> bool:
    """Whether ``error`` means the database is unavailable for now (rather than a bug)."""
    if isinstance(error, (sa.exc.DisconnectionError, sa.exc.TimeoutError)):
        return True
    if not isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error.orig, sqlite3.Error):
        # Python 3.11+ names the SQLite result code on every error SQLite itself reported.
        return getattr(error.orig, "sqlite_errorname", "").startswith(_SQLITE_OUTAGES)
    return True


def render_database_error(error: sa.exc.SQLAlchemyError) -> Response:
    """Render an outage as a 503 problem (logged as an error, without the traceback every failing
    request would repeat); anything else as the 500 it is."""
    if not is_database_outage(error):
        return render_unexpected(error)
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    log.error("database unavailable during %s %s: %s: %s", request.method, request.path,
              type(cause).__name__, str(cause).strip())
    return render_registry_error(ServiceUnavailable(
        "The database is unavailable, so the request could not be completed. Retry after the "
        "time given in Retry-After (a publish with the same Idempotency-Key)."))


def init_app(app: Flask) -> None:
    """Answer database outages with 503 problems."""
    for exception in OUTAGE_EXCEPTIONS:
        app.register_error_handler(exception, render_database_error)
