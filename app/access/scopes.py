"""The scopes a token may hold, and which belong to whom by default.

A view declares the one it needs (:func:`app.http.permissions.requires`); a token's scopes are
checked against it by :func:`app.access.policy.require_scope`.
"""

from __future__ import annotations

import enum


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
