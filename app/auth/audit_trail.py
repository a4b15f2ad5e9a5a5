"""The audit trail: every state-changing request through a permission check is recorded.

Recording happens after the response is built, from the one place permissions are checked, so no
write endpoint can forget it; refused attempts (401, 403, 409 …) are recorded too. The event is
committed in its own transaction: if the trail itself cannot be written, the failure is logged
and the client still gets the outcome of its request.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request

from app.auth.models import AuditEvent
from app.db import Database, utcnow

log = logging.getLogger(__name__)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Record audit events for the application's state-changing requests."""
    app.after_request(_record)


def _record(response: Response) -> Response:
    permission = g.get("audited_permission")
    if permission is None or request.method in _SAFE_METHODS:
        return response
    principal = g.get("principal")
    db: Database = current_app.extensions["tech7.db"]
    try:
        # A plain transaction, not db.write(): it holds no writer lock up front, so recording a
        # request never queues behind (or holds up) a publish for longer than its one insert.
        with db.sessions() as session, session.begin():
            session.add(AuditEvent(
                at=utcnow(), principal=principal.name if principal else "unauthenticated",
                token_id=principal.token_id if principal else None, method=request.method,
                path=request.path[:500], permission=permission.value,
                status=response.status_code))
    except sa.exc.SQLAlchemyError:
        log.exception("could not record an audit event for %s %s", request.method, request.path)
    return response


def events(db: Database, *, since: datetime | None, limit: int) -> list[AuditEvent]:
    """The most recent audit events, newest first."""
    with db.sessions() as session:
        query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        return list(session.scalars(query))
