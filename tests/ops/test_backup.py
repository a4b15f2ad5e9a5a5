"""`tech7-registry backup` and `restore`: a restored registry verifies end to end and keeps going.

Runs on the suite's engine: SQLite's online backup API, or pg_dump/pg_restore on PostgreSQL.
"""

from __future__ import annotations

import shutil
import stat
import uuid

import pytest
import sqlalchemy as sa

from tests.support.ops import KEY_RISKS, assert_registry_verifies, changes, create_draft, publish_draft


@pytest.fixture(autouse=True)
def client_tools(databases):
    if databases.is_postgres and not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump and pg_restore (PostgreSQL client tools) are not installed")


def _empty_app(make_app, databases, tmp_path):
    """An app on a new, empty database (nothing migrated)."""
    return make_app(databases.create_empty(f"restored_{uuid.uuid4().hex[:8]}"), tmp_path)


def _tables(app) -> list[str]:
    with app.extensions["tech7.db"].engine.connect() as connection:
        return sa.inspect(connection).get_table_names()


def _cli(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def test_a_restored_registry_verifies_and_keeps_publishing(app, client, operator, databases, make_app,
                                                           tmp_path):
    published = publish_draft(client, operator, create_draft(client, operator))
    assert published.status_code == 201
    href = published.headers["Location"]
    original = assert_registry_verifies(client)
    backup = tmp_path / "registry.backup"

    made = _cli(app, "backup", str(backup))
    assert made.exit_code == 0, made.output
    assert backup.stat().st_size > 0
    # It holds what the database holds (token hashes, the activity trail): owner-only.
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not backup.with_name(backup.name + ".partial").exists()

    restored = _empty_app(make_app, databases, tmp_path)
    done = _cli(restored, "restore", str(backup))
    assert done.exit_code == 0, done.output

    again = restored.test_client()
    assert assert_registry_verifies(again) == original
    assert again.get(href).get_data() == client.get(href).get_data()
    assert [c["href"] for c in changes(again)] == [c["href"] for c in changes(client)]

    # The restored database is a working registry: its tokens, sequences and log carry on.
    assert publish_draft(again, operator, create_draft(again, operator)).status_code == 201
    grown = assert_registry_verifies(again)
    assert grown.tree_size > original.tree_size
    assert again.get(KEY_RISKS).json["version"] == 3
    restored.extensions["tech7.db"].engine.dispose()


def test_restore_refuses_a_database_that_is_not_empty(app, client, tmp_path):
    backup = tmp_path / "registry.backup"
    assert _cli(app, "backup", str(backup)).exit_code == 0
    before = client.get("/v1/log/checkpoint").get_data()

    refused = _cli(app, "restore", str(backup))

    assert refused.exit_code != 0
    assert "is not empty" in refused.output
    assert client.get("/v1/log/checkpoint").get_data() == before


def test_restore_refuses_a_file_that_is_not_a_backup(databases, make_app, tmp_path):
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"this is not a database backup\n" * 100)
    target = _empty_app(make_app, databases, tmp_path)

    refused = _cli(target, "restore", str(junk))

    assert refused.exit_code != 0
    assert "not" in refused.output and str(junk) in refused.output
    assert _tables(target) == []
    target.extensions["tech7.db"].engine.dispose()


def test_a_failed_backup_leaves_no_file(app, tmp_path):
    out = tmp_path / "missing-folder" / "registry.backup"

    failed = _cli(app, "backup", str(out))

    assert failed.exit_code != 0 and "could not write" in failed.output
    assert not out.parent.exists() or not any(out.parent.iterdir())
