"""The activity trail: every state-changing request through a permission check is recorded.

(The registry keeps "audit" for auditors, who check what was published; this is the record of
who tried to change what.)

Recording happens once the response is built, from the one place permissions are checked, so no
write endpoint can forget it; refused attempts (401, 403, 409 …) are recorded too.

A state-changing request to a view that declares a permission runs its writes in one deferred
transaction (:meth:`~app.core.db.Database.defer_writes`): it begins with the request's first
write, and so takes the writer lock no earlier than that write would, and a request refused
before it writes (401, 403, 422) never takes it. Once the answer is known:

* an answer below 400 commits what the request wrote together with its event, in one
  transaction; a request that wrote nothing records its event in a plain transaction;
* any other answer rolls back what the request wrote, and its event is appended afterwards in a
  plain transaction, without the writer lock, so it is never lost with the rollback. If the
  trail itself cannot be written then, the failure is logged and the client still gets the
  outcome of its request.

If the commit of a successful request fails, nothing of it is kept and the client gets a 500,
which is recorded as a failed request.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request

from app.access.scopes import Permission
from app.auth.models import ActivityEvent
from app.core.db import Database, PendingWrite, utcnow
from app.core.errors import NotFound
from app.http.outages import is_database_outage, render_database_error
from app.http.permissions import declared_permission
from app.http.problems import render_unexpected

log = logging.getLogger(__name__)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PENDING = "tech7_activity_pending"


def init_app(app: Flask) -> None:
    """Record activity events for the application's state-changing requests.

    Call after every other ``after_request`` hook is installed: Flask runs them in reverse
    order, so this one sees the response the view and its decorators made, and none of those
    after it changes a state-changing request's status.
    """
    app.before_request(_defer_writes)
    app.after_request(_record)
    app.teardown_request(_release)


def _defer_writes() -> None:
    if request.method in _SAFE_METHODS or request.endpoint is None:
        return
    view = current_app.view_functions.get(request.endpoint)
    if view is None or declared_permission(view) is None:
        return
    db: Database = current_app.extensions["tech7.db"]
    setattr(g, _PENDING, db.defer_writes())


def _record(response: Response) -> Response:
    pending: PendingWrite | None = g.get(_PENDING)
    permission = g.get("activity_permission")
    if permission is None or request.method in _SAFE_METHODS:
        if pending is not None:
            pending.rollback()  # refused before the permission check: nothing was written
        return response
    if pending is not None and pending.session is not None:
        if response.status_code < 400:
            try:
                pending.session.add(_event(permission, response.status_code))
                pending.commit()
                return response
            except sa.exc.SQLAlchemyError as error:
                # The answer the client gets is the commit's: a 503 when the database is out
                # (read-only, unreachable), as for any write that meets an outage.
                response = render_database_error(error) if is_database_outage(error) \
                    else render_unexpected(error)
        else:
            pending.rollback()
    try:
        # A plain transaction, not db.write(): it holds no writer lock up front, so recording a
        # refused request never queues behind (or holds up) a publish for longer than its one
        # insert.
        with current_app.extensions["tech7.db"].sessions() as session, session.begin():
            session.add(_event(permission, response.status_code))
    except sa.exc.SQLAlchemyError:
        log.exception("could not record an activity event for %s %s", request.method, request.path)
    return response


def _event(permission: Permission, status: int) -> ActivityEvent:
    principal = g.get("principal")
    return ActivityEvent(
        at=utcnow(), principal=principal.name if principal else "unauthenticated",
        token_id=principal.token_id if principal else None, method=request.method,
        path=request.path[:500], permission=permission.value, status=status)


def _release(_error: BaseException | None) -> None:
    pending: PendingWrite | None = g.pop(_PENDING, None)
    if pending is not None:
        pending.release()


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
