"""The activity trail: every state-changing request through a permission check is recorded.

(The registry keeps "audit" for auditors, who check what was published; this is the record of
who tried to change what.)

Recording happens after the response is built, from the one place permissions are checked, so no
write endpoint can forget it; refused attempts (401, 403, 409 …) are recorded too. The event is
committed in its own transaction: if the trail itself cannot be written, the failure is logged
and the client still gets the outcome of its request.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request

from app.auth.models import ActivityEvent
from app.core.db import Database, utcnow
from app.core.errors import NotFound

log = logging.getLogger(__name__)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Record activity events for the application's state-changing requests."""
    app.after_request(_record)


def _record(response: Response) -> Response:
    permission = g.get("activity_permission")
    if permission is None or request.method in _SAFE_METHODS:
        return response
    principal = g.get("principal")
    db: Database = current_app.extensions["tech7.db"]
    try:
        # A plain transaction, not db.write(): it holds no writer lock up front, so recording a
        # request never queues behind (or holds up) a publish for longer than its one insert.
        with db.sessions() as session, session.begin():
            session.add(ActivityEvent(
                at=utcnow(), principal=principal.name if principal else "unauthenticated",
                token_id=principal.token_id if principal else None, method=request.method,
                path=request.path[:500], permission=permission.value,
                status=response.status_code))
    except sa.exc.SQLAlchemyError:
        log.exception("could not record an activity event for %s %s", request.method, request.path)
    return response


def events(db: Database, *, since: int, limit: int) -> list[ActivityEvent]:
    """Up to ``limit`` events after the event with id ``since``, oldest first."""
    with db.sessions() as session:
        return list(session.scalars(sa.select(ActivityEvent).where(ActivityEvent.id > since)
                                    .order_by(ActivityEvent.id).limit(limit)))


def event(db: Database, event_id: int) -> ActivityEvent:
    """One event; 404 when there is none with that id."""
    with db.sessions() as session:
        found = session.get(ActivityEvent, event_id)
    if found is None:
        raise NotFound(f"There is no activity event {event_id}.")
    return found
