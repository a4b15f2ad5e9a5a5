"""Permissions that endpoints declare, and where requests are held to them.

A view that changes state is decorated with ``@requires(Permission.X)``. The decorator
authenticates the bearer token, checks that the token's scopes include the permission
(:func:`app.access.policy.require_scope`) and leaves the resulting
:class:`~app.access.principal.Principal` in ``flask.g``; the view passes it to the service, which
asks :mod:`app.access.policy` whether it may act on the resource. The project's Blueprint refuses
to register a state-changing view without a declared permission, so forgetting one fails at
start-up rather than in production.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import current_app, g, request

from app.access.policy import require_scope
from app.access.principal import Principal
from app.access.scopes import Permission
from app.auth.service import authenticate

_ATTRIBUTE = "_tech7_permission"


def requires(permission: Permission) -> Callable[[Callable], Callable]:
    """Declare and enforce the permission a view needs."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            g.activity_permission = permission  # app.http.activity records the outcome
            principal = authenticate(current_app.extensions["tech7.db"],
                                             request.headers.get("Authorization"))
            require_scope(principal, permission)
            g.principal = principal
            return view(*args, **kwargs)

        setattr(wrapper, _ATTRIBUTE, permission)
        return wrapper

    return decorator


def declared_permission(view: Callable) -> Permission | None:
    """The permission a view declared with :func:`requires`, or None."""
    return getattr(view, _ATTRIBUTE, None)


def record_activity_as(permission: Permission) -> None:
    """Record this request in the activity trail as an exercise of ``permission``.

    For a request whose view declares one permission but which, by what it asks for, exercises
    a stronger one (``POST /v1/tokens`` for an association's first token is onboarding).
    """
    g.activity_permission = permission


def current_principal() -> Principal:
    """The principal authenticated for this request by :func:`requires`."""
    return g.principal
