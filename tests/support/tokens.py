"""What the token tests share: bearer headers, and the state a refusal must leave untouched
(the ``state`` fixture of ``tests/auth/conftest.py``)."""

from __future__ import annotations

import sqlalchemy as sa

from app.auth.models import AccessToken, ActivityEvent


def bearer(token: str) -> dict[str, str]:
    """Authorization headers for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class TokenState:
    """Every token row, and the activity trail, of one test's database."""

    def __init__(self, app):
        self.db = app.extensions["tech7.db"]

    def tokens(self) -> list[tuple]:
        """Every column of every token, in id order."""
        with self.db.sessions() as session:
            table = AccessToken.__table__
            return [tuple(row) for row in session.execute(sa.select(table).order_by(table.c.id))]

    def events(self) -> list[ActivityEvent]:
        """The activity trail, oldest first."""
        with self.db.sessions() as session:
            return list(session.scalars(sa.select(ActivityEvent).order_by(ActivityEvent.id)))

    def snapshot(self) -> tuple[list[tuple], int]:
        return self.tokens(), len(self.events())

    def assert_only_recorded(self, before: tuple[list[tuple], int], *, status: int,
                            permission: str) -> ActivityEvent:
        """Nothing changed since ``before`` but one new activity event, with this outcome."""
        tokens, count = before
        assert self.tokens() == tokens, "a refused request changed the tokens"
        events = self.events()
        assert len(events) == count + 1, [(e.method, e.path, e.status) for e in events[count:]]
        assert (events[-1].status, events[-1].permission) == (status, permission)
        return events[-1]
