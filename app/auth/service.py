"""Issuing and checking bearer tokens.

Tokens are 256-bit random strings, so a single SHA-256 is the right storage hash: unlike passwords
they cannot be guessed, and a slow KDF would only slow every request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from app.auth.models import AccessToken
from app.auth.permissions import Permission
from app.db import Database, utcnow
from app.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated

TOKEN_PREFIX = "t7_"
OPERATOR = "operator"
ASSOCIATION = "association"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    token_id: int
    role: str
    association: str | None
    scopes: frozenset[Permission]

    @property
    def name(self) -> str:
        """How audit records name this caller."""
        return OPERATOR if self.role == OPERATOR else f"association:{self.association}"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, *, role: str, association: str | None = None,
                 scopes: Iterable[Permission] = tuple(Permission), label: str = "",
                 expires_at: datetime | None = None) -> str:
    """Create a token and return it; it cannot be recovered later."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        session.add(AccessToken(token_sha256=hash_token(token), role=role, association=association,
                                scopes=" ".join(sorted(Permission(s).value for s in scopes)),
                                label=label, created_at=utcnow(), expires_at=expires_at))
    return token


def authenticate(authorization: str | None) -> Principal:
    """Resolve an ``Authorization: Bearer …`` header to a principal, or raise 401."""
    if not authorization:
        raise Unauthenticated("This request needs a bearer token: Authorization: Bearer <token>.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use the Bearer scheme: Authorization: Bearer <token>.")
    db: Database = current_app.extensions["tech7.db"]
    with db.sessions() as session:
        row = session.scalar(sa.select(AccessToken)
                             .where(AccessToken.token_sha256 == hash_token(token.strip())))
    now = utcnow()
    if row is None:
        raise Unauthenticated("The bearer token is not known.")
    if row.revoked_at is not None:
        raise Unauthenticated("The bearer token was revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("The bearer token has expired.")
    return Principal(token_id=row.id, role=row.role, association=row.association,
                     scopes=frozenset(Permission(s) for s in row.scopes.split()))


def authorise(principal: Principal, permission: Permission) -> None:
    """Raise 403 unless the principal's token is scoped to ``permission``."""
    if permission not in principal.scopes:
        raise Forbidden(f"This token is not scoped to {permission.value!r}.")


def may_edit(principal: Principal, association: str | None) -> None:
    """Raise 403 unless the principal may edit a document owned by ``association``.

    Operators edit everything; an association's publisher edits only its own association's
    documents (``association`` None means a registry-owned document such as the declaration).
    """
    if principal.role == OPERATOR:
        return
    if association is None or association != principal.association:
        raise Forbidden("This token may only act on its own association's documents.")


def may_publish_as(principal: Principal, association: str | None) -> None:
    """Raise 403 unless the principal is ``association``'s own publisher.

    Statements are published in an association's own name only: not even an operator may write
    one for it.
    """
    if principal.role != ASSOCIATION or association is None \
            or principal.association != association:
        raise Forbidden("Statements are written and published only by their own association.")


def list_tokens(db: Database, principal: Principal) -> list[AccessToken]:
    """The tokens a principal may see: all for an operator, its own association's otherwise."""
    with db.sessions() as session:
        query = sa.select(AccessToken).order_by(AccessToken.id)
        if principal.role != OPERATOR:
            query = query.where(AccessToken.association == principal.association)
        return list(session.scalars(query))


def issue_token(db: Database, principal: Principal, *, association: str | None,
                scopes: Iterable[Permission], label: str,
                expires_at: datetime | None) -> tuple[int, str]:
    """Create a token on behalf of ``principal``; returns (id, token).

    An association may only make tokens for itself, with scopes it holds; an operator may make
    any association token, or another operator's when ``association`` is None.
    """
    scopes = frozenset(scopes)
    if principal.role != OPERATOR:
        if association != principal.association:
            raise Forbidden("An association may only create tokens for itself.")
        if not scopes <= principal.scopes:
            raise Forbidden("A token cannot grant scopes its creator does not hold.")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidRequest("expires_at must be in the future.")
    token = create_token(db, role=ASSOCIATION if association else OPERATOR,
                         association=association, scopes=scopes, label=label,
                         expires_at=expires_at)
    with db.sessions() as session:
        token_id = session.scalar(sa.select(AccessToken.id)
                                  .where(AccessToken.token_sha256 == hash_token(token)))
    return token_id, token


def revoke_token(db: Database, principal: Principal | None, token_id: int) -> None:
    """Revoke a token now; ``principal`` None means the command line (an operator at the host).

    Another association's token is reported as not found, so ids cannot be probed.
    """
    with db.write() as session:
        row = session.get(AccessToken, token_id)
        if row is None or (principal is not None and principal.role != OPERATOR
                           and row.association != principal.association):
            raise NotFound(f"There is no token {token_id}.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
