"""The database itself refuses to change or delete a published version, on every engine."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError


@pytest.mark.parametrize("statement", [
    "UPDATE versions SET body = :body WHERE number = 1",
    "UPDATE versions SET withdrawn = true",
    "DELETE FROM versions",
])
def test_sql_cannot_rewrite_published_versions(app, client, statement):
    before = client.get("/v1/declaration/versions/1").get_data()
    engine = app.extensions["tech7.db"].engine
    with pytest.raises(DBAPIError, match="immutable"), engine.begin() as connection:
        connection.execute(sa.text(statement), {"body": b"{}"})
    assert client.get("/v1/declaration/versions/1").get_data() == before
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM versions")) > 30


def test_postgres_refuses_truncate(app, databases):
    if not databases.is_postgres:
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    with pytest.raises(DBAPIError, match="immutable"), app.extensions["tech7.db"].engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE versions CASCADE")
