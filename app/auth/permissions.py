"""Permissions that endpoints declare, and the one place where they are checked.

A view that changes state is decorated with ``@requires(Permission.X)``. The decorator
authenticates the bearer token, checks that the token's scopes include the permission and leaves the
resulting :class:`~app.auth.service.Principal` in ``flask.g`` for the service, which checks
ownership of the resource itself. The project's Blueprint refuses to register a state-changing view
without a declared permission, so forgetting one fails at start-up rather than in production.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import g, request

if TYPE_CHECKING:
    from app.auth.service import Principal

_ATTRIBUTE = "_tech7_permission"


class Permission(enum.StrEnum):
    """What a token may be scoped to."""

    READ_DRAFTS = "read-drafts"
    PUBLISH = "publish"
    MANAGE_TOKENS = "manage-tokens"
    READ_ACTIVITY = "read-activity"
    #: Make an association's first token: the one act in which an operator hands over a token
    #: that acts in an association's name. Never an association's, and never a default.
    ONBOARD_ASSOCIATIONS = "onboard-associations"


#: What an operator's token holds unless its maker asks for something else: everything but
#: onboarding.
DEFAULT_SCOPES = frozenset(Permission) - {Permission.ONBOARD_ASSOCIATIONS}

#: Scopes only operators use: an association's token never holds them, since every request
#: made with them in an association's name would be refused.
OPERATOR_ONLY_SCOPES = frozenset({Permission.ONBOARD_ASSOCIATIONS, Permission.READ_ACTIVITY})

#: What an association's token holds unless its maker asks for something else.
ASSOCIATION_DEFAULT_SCOPES = DEFAULT_SCOPES - OPERATOR_ONLY_SCOPES


def requires(permission: Permission) -> Callable[[Callable], Callable]:
    """Declare and enforce the permission a view needs."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            from app.auth import service  # noqa: PLC0415 - service imports models, which need the app

            g.activity_permission = permission  # app.auth.activity records the outcome
            principal = service.authenticate(request.headers.get("Authorization"))
            service.authorise(principal, permission)
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
