"""Fixtures of the resilience tests: each engine in turn, fresh databases, a running server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import ENGINES, FreshDatabases, Server, postgres_server_url, postgres_unreachable


@pytest.fixture(scope="session", params=ENGINES)
def engine(request) -> str:
    """Each engine in turn; PostgreSQL is skipped when its server does not answer."""
    if request.param == "postgresql":
        reason = postgres_unreachable(postgres_server_url())
        if reason:
            pytest.skip(reason)
    return request.param


@pytest.fixture(scope="session")
def fresh_databases(databases, make_app, tmp_path_factory) -> Iterator[FreshDatabases]:
    """Makes fresh seeded databases on either engine (see :class:`FreshDatabases`)."""
    factory = FreshDatabases(tmp_path_factory.mktemp("resilience-db"), databases, make_app)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def registry_server(engine, fresh_databases, keys_dir, tmp_path_factory) -> Iterator[Server]:
    """A running ``tech7-registry serve --workers 2`` on a fresh database of ``engine``.

    One per engine for the whole session: starting gunicorn and its workers takes seconds, and
    every scenario publishes statements of its own, so they share the registry (and each checks
    every invariant of all of it).
    """
    server = Server(fresh_databases.new(engine), keys_dir, tmp_path_factory.mktemp(engine))
    try:
        server.start()
        yield server
    finally:
        server.stop()
