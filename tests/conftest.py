"""Fixtures shared by the whole suite.

Isolation: every test gets its own database, cloned from a template that was migrated and seeded
once per session (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL). Services
commit for real and the database enforces immutability with triggers, so transaction-rollback
isolation would hide the very behaviour under test.

Set ``TEST_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) to run the whole
suite on PostgreSQL; the default is SQLite.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import make_url
from tech7_witness.testing import WitnessProcess, init

from app import cli
from app.auth.service import OPERATOR, create_token
from app.composition import create_app
from app.core import config
from app.models import ActivityEvent, metadata
from app.pki.authority import KeyStore, init_keys
from app.pki.keyring import ensure_keys
from tests.support.witnesses import WITNESS_NAMES

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
_counter = itertools.count()


class DatabaseFactory:
    """Creates per-test databases from a migrated, seeded template."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self.template_url = self._new_url("template")
        self._created: list[str] = []

    @property
    def is_postgres(self) -> bool:
        return TEST_DATABASE_URL.startswith("postgresql")

    def _new_url(self, name: str) -> str:
        if self.is_postgres:
            url = make_url(TEST_DATABASE_URL).set(database=f"tech7_{self.run_id}_{name}")
            return url.render_as_string(hide_password=False)
        return f"sqlite:///{self.workdir / f'{name}.db'}"

    def _admin(self) -> sa.Engine:
        return sa.create_engine(make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg"),
                                isolation_level="AUTOCOMMIT")

    def create_empty(self, name: str) -> str:
        """A new, empty database (not migrated)."""
        url = self._new_url(name)
        if self.is_postgres:
            engine = self._admin()
            with engine.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{make_url(url).database}"')
            engine.dispose()
            self._created.append(make_url(url).database)
        return url

    def clone_template(self) -> str:
        """A new database holding exactly what the template holds."""
        name = f"t{next(_counter)}"
        url = self._new_url(name)
        if self.is_postgres:
            engine = self._admin()
            with engine.connect() as connection:
                connection.exec_driver_sql(
                    f'CREATE DATABASE "{make_url(url).database}" '
                    f'TEMPLATE "{make_url(self.template_url).database}"')
            engine.dispose()
            self._created.append(make_url(url).database)
        else:
            template = Path(make_url(self.template_url).database)
            shutil.copyfile(template, make_url(url).database)
        return url

    def drop_all(self) -> None:
        if not self.is_postgres:
            return
        engine = self._admin()
        with engine.connect() as connection:
            for name in reversed(self._created):
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory) -> Path:
    """The registry's PKI, made once per session at run time (no key is ever committed)."""
    directory = tmp_path_factory.mktemp("keys") / "keys"
    ensure_keys(directory, config.SEED_FILE)
    return directory


@pytest.fixture(scope="session")
def foreign_keys(tmp_path_factory) -> KeyStore:
    """Another PKI (another root CA): a different registry's, or an association's own."""
    directory = tmp_path_factory.mktemp("foreign") / "keys"
    init_keys(directory, ["registry"])
    return KeyStore.load(directory)


@pytest.fixture(scope="session")
def make_app(keys_dir) -> Callable[..., Flask]:
    """Builds an app on a database URL and a data folder, with test settings and the session's keys.

    Call it as ``make_app(database_url, tmp, **overrides)``; the overrides are app settings.
    """

    def build(database_url: str, tmp: Path, **overrides) -> Flask:
        settings = {"TESTING": True, "DATABASE_URL": database_url, "DATA_DIR": str(tmp),
                    "RATELIMIT_ANONYMOUS": "100000/minute", "RATELIMIT_AUTHENTICATED": "100000/minute",
                    "RATELIMIT_EXPORTS": "100000/minute", "KEYS_DIR": str(keys_dir),
                    # The test client's own host, as `serve` sets it for the address it binds.
                    "PUBLIC_URL": "http://localhost/"}
        settings.update(overrides)
        app = create_app(settings)
        cli.register(app)  # for app.test_cli_runner()
        return app

    return build


@pytest.fixture(scope="session")
def databases(tmp_path_factory, make_app) -> Iterator[DatabaseFactory]:
    """The session's database factory, with a migrated and seeded template."""
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    template_url = factory.create_empty("template") if factory.is_postgres \
        else factory.template_url
    app = make_app(template_url, factory.workdir)
    from app.cli import prepare  # noqa: PLC0415

    with app.app_context():
        prepare(app)
    app.extensions["tech7.db"].engine.dispose()
    yield factory
    factory.drop_all()


@pytest.fixture
def app(databases, make_app, tmp_path):
    """A fresh application on its own copy of the seeded database."""
    application = make_app(databases.clone_template(), tmp_path)
    yield application
    application.extensions["tech7.db"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def operator_token(app) -> str:
    """A bearer token of a registry operator."""
    return create_token(app.extensions["tech7.db"], role=OPERATOR, label="test operator")


@pytest.fixture
def operator(operator_token) -> dict[str, str]:
    """Authorization headers of a registry operator."""
    return {"Authorization": f"Bearer {operator_token}"}


@pytest.fixture
def stored(app):
    """What a refused request must leave as it was: ``stored()`` is every row of every table
    (drafts, versions, log, tokens, certificates, exports, idempotency records …) but the
    activity trail, and ``stored.recorded()`` the number of activity events, which a refused write adds to."""
    db = app.extensions["tech7.db"]
    tables = [table for table in metadata.sorted_tables if table is not ActivityEvent.__table__]

    def take() -> dict[str, list[tuple]]:
        with db.sessions() as session:
            return {table.name: [tuple(row) for row in session.execute(
                sa.select(table).order_by(*table.primary_key.columns))] for table in tables}

    def recorded() -> int:
        with db.sessions() as session:
            return session.scalar(sa.select(sa.func.count()).select_from(ActivityEvent))

    take.recorded = recorded
    return take


# --- witnesses -------------------------------------------------------------------------------------

@pytest.fixture
def log_vkey(app) -> str:
    return app.extensions["tech7.log"].verifier_key


@pytest.fixture
def witnesses(tmp_path, log_vkey):
    """Three real ``tech7-witness serve`` processes on 127.0.0.1 that witness the test log."""
    processes = {}
    for name in WITNESS_NAMES:
        vkey = init(tmp_path / name, f"witness.example/{name}")
        process = WitnessProcess(tmp_path / name, [log_vkey]).start()
        process.vkey = vkey
        processes[name] = process
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture
def policy_file(tmp_path, log_vkey, witnesses):
    """A tlog-policy naming ``witnesses`` with a quorum of 2 of 3."""
    lines = [f"log {log_vkey}"]
    lines += [f"witness {name} {w.vkey} http://127.0.0.1:{w.port}" for name, w in witnesses.items()]
    lines += [f"group members 2 {' '.join(WITNESS_NAMES)}", "quorum members"]
    path = tmp_path / "policy.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- browser tests ---------------------------------------------------------------------------------
# Where a browser is required (``TECH7_REQUIRE_BROWSER=1``, as ``.ci/run`` sets), a browser test
# (under tests/web/) that would skip fails instead, so that a missing Chromium cannot pass unseen.
# The hook lives here, not in tests/web/conftest.py: modules import this file as ``conftest``.

BROWSER_REQUIRED = os.environ.get("TECH7_REQUIRE_BROWSER") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if BROWSER_REQUIRED and report.skipped and "tests/web/" in item.nodeid.replace(os.sep, "/"):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} skipped although TECH7_REQUIRE_BROWSER=1: "
                           f"{report.longrepr}")
