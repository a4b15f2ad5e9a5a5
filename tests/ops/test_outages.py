"""Database outages answer 503 problems, write nothing, and leave a database that still verifies.

SQLite outages are made for real: a read-only database (opened ``mode=ro``: the suite runs as
root, for whom a 0444 file is still writable) and a full volume (``PRAGMA max_page_count`` pinned
to the current size on every connection). PostgreSQL being unreachable is a URL on a closed port.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest
import sqlalchemy as sa
from psycopg import OperationalError as PsycopgOperationalError

from app.http.outages import is_database_outage
from tests.support.ops import (
    KEY_RISKS,
    assert_registry_verifies,
    create_draft,
    publish_draft,
    sqlite_integrity,
    unreachable_postgres_url,
    written_state,
)

PROBLEM = "application/problem+json"


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["type"] == "/problems/service-unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture
def sqlite_only(databases):
    if databases.is_postgres:
        pytest.skip("makes an SQLite database file read-only or full")


def test_a_read_only_database_refuses_writes_and_recovers(make_app, sqlite_only, app, client, operator,
                                                          tmp_path, caplog):
    etag = create_draft(client, operator)
    before = written_state(app, client, operator)
    path = app.extensions["tech7.db"].engine.url.database
    read_only = make_app(f"sqlite:///file:{path}?mode=ro&uri=true", tmp_path)
    stuck = read_only.test_client()

    # Reads still work: the writable app's pooled connection keeps the WAL files in place.
    assert stuck.get(KEY_RISKS).status_code == 200
    assert stuck.get(KEY_RISKS + "/draft", headers=operator).headers["ETag"] == etag
    for refused in (publish_draft(stuck, operator, etag),
                    stuck.patch(KEY_RISKS + "/draft", json={"tags": ["x"]},
                                headers={**operator, "If-Match": etag,
                                         "Content-Type": "application/merge-patch+json"}),
                    stuck.delete(KEY_RISKS + "/draft", headers={**operator, "If-Match": etag})):
        _assert_unavailable(refused)
    assert "attempt to write a readonly database" in caplog.text
    read_only.extensions["tech7.db"].engine.dispose()

    assert written_state(app, client, operator) == before
    assert sqlite_integrity(app) == [("ok",)]
    assert publish_draft(client, operator, etag).status_code == 201
    assert_registry_verifies(client)


def test_a_full_volume_refuses_writes_and_recovers(sqlite_only, app, client, operator, caplog):
    etag = create_draft(client, operator)
    before = written_state(app, client, operator)
    engine = app.extensions["tech7.db"].engine

    def no_room_to_grow(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(engine, "connect", no_room_to_grow)
    engine.dispose()
    try:
        _assert_unavailable(publish_draft(client, operator, etag))
        assert "database or disk is full" in caplog.text
    finally:
        sa.event.remove(engine, "connect", no_room_to_grow)
        engine.dispose()

    assert written_state(app, client, operator) == before
    assert sqlite_integrity(app) == [("ok",)]
    assert publish_draft(client, operator, etag).status_code == 201
    assert_registry_verifies(client)


def test_an_unreachable_postgresql_answers_503_quickly(make_app, keys_dir, tmp_path):
    app = make_app(unreachable_postgres_url(), tmp_path)
    client = app.test_client()
    started = time.monotonic()
    responses = [
        client.get("/v1/declaration"),
        client.get("/v1/recommendations?per_page=5"),
        client.get(KEY_RISKS + "/versions/1"),
        client.get("/v1/log/checkpoint"),
        client.put(KEY_RISKS + "/draft", json={"title": "x"},
                   headers={"Authorization": "Bearer t7_unknown", "If-None-Match": "*"}),
        client.post(KEY_RISKS + "/draft/publish",
                    headers={"Authorization": "Bearer t7_unknown", "If-Match": '"x"'}),
    ]
    assert time.monotonic() - started < 5
    for response in responses:
        _assert_unavailable(response)


# --- what counts as an outage ---------------------------------------------------------------------


def _sqlite_error(statement: str, *, read_only: bool = False) -> sa.exc.DBAPIError:
    """The SQLAlchemy error an SQLite database really raises for ``statement``."""
    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x)")
        if read_only:
            connection.exec_driver_sql("PRAGMA query_only = ON")
        with pytest.raises(sa.exc.DBAPIError) as raised:
            connection.exec_driver_sql(statement)
    engine.dispose()
    return raised.value


@pytest.mark.parametrize(("error", "outage"), [
    (lambda: _sqlite_error("INSERT INTO t VALUES (1)", read_only=True), True),
    (lambda: sa.exc.OperationalError("SELECT 1", {}, PsycopgOperationalError(
        "connection to server at 127.0.0.1 failed: Connection refused")), True),
    (lambda: sa.exc.InterfaceError("SELECT 1", {}, PsycopgOperationalError("closed")), True),
    (lambda: sa.exc.DisconnectionError("pre-ping failed"), True),
    (lambda: sa.exc.TimeoutError("QueuePool limit reached"), True),
    # Bugs stay 500s: a missing table or bad SQL will not be cured by retrying.
    (lambda: _sqlite_error("SELECT * FROM missing"), False),
    (lambda: _sqlite_error("SELEKT 1"), False),
    (lambda: sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("unnamed")), False),
], ids=["sqlite-read-only", "postgresql-refused", "connection-closed", "pre-ping", "pool-timeout",
        "sqlite-missing-table", "sqlite-syntax", "sqlite-error-without-code"])
def test_outages_are_503_and_bugs_500(make_app, databases, tmp_path, caplog, error, outage):
    failure = error()
    assert is_database_outage(failure) is outage
    app = make_app(databases.clone_template(), tmp_path)

    def failing_view():
        raise failure

    app.add_url_rule("/failing", view_func=failing_view)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/failing")
    app.extensions["tech7.db"].engine.dispose()
    if outage:
        _assert_unavailable(response)
        assert "database unavailable during GET /failing" in caplog.text
    else:
        assert response.status_code == 500 and response.mimetype == PROBLEM
        assert response.json["type"] == "/problems/internal-error"
