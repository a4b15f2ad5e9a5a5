"""The activity trail and the writes it records: one transaction for a successful write and its
event; a refused or failed request's writes rolled back and its event kept; no writer lock for
a request refused before it writes."""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from app.auth.models import ActivityEvent
from app.auth.service import ASSOCIATION, create_token
from app.publishing.models import Document


@pytest.fixture
def bitkom(app) -> dict[str, str]:
    token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")
    return {"Authorization": f"Bearer {token}"}


def _statement(slug: str) -> dict:
    return {"slug": slug, "statement_type": "position", "title": "t", "text": ["t"]}


def _documents(app) -> int:
    with app.extensions["tech7.db"].sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Document))


def _events(app) -> list[tuple[str, str, int]]:
    with app.extensions["tech7.db"].sessions() as session:
        return [(e.method, e.path, e.status) for e in session.scalars(
            sa.select(ActivityEvent).order_by(ActivityEvent.id))]


@contextlib.contextmanager
def _statements(app):
    """Every statement the application's engine sends while the block runs, and its commits."""
    engine = app.extensions["tech7.db"].engine
    sent: list[str] = []

    def on_execute(_conn, _cursor, statement, *_args):
        sent.append(statement)

    def on_commit(_conn):
        sent.append("COMMIT")

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(engine, "commit", on_commit)


def test_a_successful_write_commits_once_with_its_event(app, client, bitkom):
    with _statements(app) as sent:
        created = client.post("/v1/associations/bitkom/statements", headers=bitkom,
                              json=_statement("one-commit"))
    assert created.status_code == 201, created.json
    assert sent.count("COMMIT") == 1, "the write and its event commit together"
    assert _events(app)[-1] == ("POST", "/v1/associations/bitkom/statements", 201)


def test_a_write_is_not_kept_when_its_event_cannot_be_written(app, client, bitkom):
    engine = app.extensions["tech7.db"].engine
    before = _documents(app)

    def trail_down(_conn, _cursor, statement, *_args):
        if statement.startswith(f"INSERT INTO {ActivityEvent.__tablename__} "):
            raise sa.exc.OperationalError(statement, {}, Exception("the trail is unavailable"))

    sa.event.listen(engine, "before_cursor_execute", trail_down)
    try:
        answer = client.post("/v1/associations/bitkom/statements", headers=bitkom,
                             json=_statement("unrecorded"))
    finally:
        sa.event.remove(engine, "before_cursor_execute", trail_down)
    # An OperationalError is an outage to the registry: the client is told to retry (503).
    assert answer.status_code == 503
    assert answer.json["type"] == "/problems/service-unavailable"
    assert _documents(app) == before, "a write whose event is lost is rolled back with it"


def test_a_failed_write_is_rolled_back_and_its_event_kept(app, client, bitkom, monkeypatch):
    from app.http.views import documents  # noqa: PLC0415

    def broken(*_args, **_kwargs):
        raise RuntimeError("the answer cannot be built")

    # The service has written the draft by the time the view builds its answer.
    monkeypatch.setattr(documents, "_draft_response", broken)
    before = _documents(app)
    answer = client.post("/v1/associations/bitkom/statements", headers=bitkom,
                         json=_statement("half-made"))
    assert answer.status_code == 500
    assert _documents(app) == before
    assert _events(app)[-1] == ("POST", "/v1/associations/bitkom/statements", 500)


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({}, _statement("anonymous"), 401),
    (None, _statement("x"), 403),  # a publish token of another association
    ("bitkom", {"slug": "Not Kebab"}, 422),
])
def test_a_request_refused_before_it_writes_takes_no_writer_lock(app, client, bitkom, headers,
                                                                  body, status):
    if headers is None:
        token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="numeum")
        headers = {"Authorization": f"Bearer {token}"}
    elif headers == "bitkom":
        headers = bitkom
    with _statements(app) as sent:
        answer = client.post("/v1/associations/bitkom/statements", headers=headers, json=body)
    assert answer.status_code == status, answer.json
    assert not [s for s in sent if "BEGIN IMMEDIATE" in s.upper() or "FOR UPDATE" in s.upper()]
    assert _events(app)[-1] == ("POST", "/v1/associations/bitkom/statements", status)
