"""Issuing and checking bearer tokens.

Tokens are 256-bit random strings, so a single SHA-256 is the right storage hash: unlike passwords
they cannot be guessed, and a slow KDF would only slow every request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload
from tech7_audit.times import isoformat

from app.access.policy import may_mint, onboards
from app.access.principal import ASSOCIATION, OPERATOR, Principal
from app.access.scopes import ASSOCIATION_DEFAULT_SCOPES, DEFAULT_SCOPES, OPERATOR_ONLY_SCOPES, Permission
from app.auth.models import AccessToken, ActivityEvent
from app.catalog.kinds import is_member_association
from app.core.db import Database, utcnow
from app.core.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated

TOKEN_PREFIX = "t7_"
#: How the activity trail and ``minted_by`` name the command line on the host.
COMMAND_LINE = "command-line"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, *, role: str, association: str | None = None,
                 scopes: Iterable[Permission | str] | None = None, label: str = "",
                 expires_at: datetime | None = None) -> str:
    """Make a token as the command line on the host does, and return only the token (it cannot
    be recovered later); for scripts and tests. See :func:`issue_token` for what is refused."""
    if (role == ASSOCIATION) != (association is not None):
        raise ValueError("an association token names its association, an operator's none")
    return issue_token(db, None, association=association, scopes=scopes, label=label,
                       expires_at=expires_at).token


def authenticate(db: Database, authorization: str | None) -> Principal:
    """Resolve an ``Authorization: Bearer …`` header to a principal, or raise 401."""
    if not authorization:
        raise Unauthenticated("This request needs a bearer token: Authorization: Bearer <token>.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use the Bearer scheme: Authorization: Bearer <token>.")
    with db.sessions() as session:
        row = session.scalar(sa.select(AccessToken)
                             .where(AccessToken.token_sha256 == hash_token(token.strip())))
    if row is None:
        raise Unauthenticated("The bearer token is not known.")
    _require_live(row, utcnow())
    return Principal(token_id=row.id, role=row.role, association=row.association,
                     scopes=frozenset(Permission(s) for s in row.scopes.split()))


def _require_live(row: AccessToken, now: datetime) -> None:
    """Raise 401 if the token was revoked or has expired."""
    if row.revoked_at is not None:
        raise Unauthenticated("The bearer token was revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("The bearer token has expired.")


def _visible_tokens(principal: Principal | None) -> sa.Select:
    """The tokens a principal may see: all for an operator or the command line (None), its own
    association's otherwise; each with ``minted_by`` loaded, so that an association sees who
    made its tokens."""
    query = sa.select(AccessToken).options(joinedload(AccessToken.minted_by)) \
        .order_by(AccessToken.id)
    if principal is not None and principal.role != OPERATOR:
        query = query.where(AccessToken.association == principal.association)
    return query


def list_tokens(db: Database, principal: Principal | None) -> list[AccessToken]:
    """Every token ``principal`` may see, oldest first."""
    with db.sessions() as session:
        return list(session.scalars(_visible_tokens(principal)))


def get_token(db: Database, principal: Principal | None, token_id: int) -> AccessToken:
    """One token ``principal`` may see; 404 for any other, so that ids reveal nothing."""
    with db.sessions() as session:
        row = session.scalars(_visible_tokens(principal).where(AccessToken.id == token_id)).first()
    if row is None:
        raise NotFound(f"There is no token {token_id} that this token may see.")
    return row


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: its row (with ``minted_by`` loaded) and the token, shown once."""

    row: AccessToken
    token: str


def issue_token(db: Database, principal: Principal | None, *, association: str | None,
                scopes: Iterable[Permission | str] | None = None, label: str = "",
                expires_at: datetime | None = None) -> IssuedToken:
    """Make a token on behalf of ``principal`` (None: the command line on the host).

    - A token grants only scopes its maker holds, and only for principals its maker may act
      for: an association makes tokens for itself; an operator makes operator tokens. No
      association token holds ``onboard-associations``.
    - An operator makes an association's token only to onboard it: with the
      ``onboard-associations`` scope, and only while the association has no live token. After
      that the association makes its own. The onboarding token starts a chain of its own
      (revoking the operator's token does not end it); ``minted_by`` records who made it.
    - Every other token made through a token is that token's child: with no ``expires_at`` it
      expires with its parent, a later one is refused, and revoking the parent revokes it.
    - The command line on the host (whoever runs it can read the database anyway) may make any
      token; an association token it makes is an onboarding, recorded in the activity trail as
      ``command-line`` and shown to the association like any other.
    """
    if association is None and principal is not None and principal.role == ASSOCIATION:
        association = principal.association  # an association's token is for itself
    if scopes is None:
        scopes = DEFAULT_SCOPES if association is None else ASSOCIATION_DEFAULT_SCOPES
    scopes = frozenset(Permission(s) for s in scopes)
    now = utcnow()
    onboarding = onboards(principal, association)
    operator_only = scopes & OPERATOR_ONLY_SCOPES
    if association is not None and operator_only:
        raise InvalidRequest("An association's token cannot hold "
                             + ", ".join(sorted(repr(p.value) for p in operator_only))
                             + ": only operators onboard associations and read the activity trail.")
    if expires_at is not None:
        expires_at = expires_at.astimezone(UTC)
        if expires_at <= now:
            raise InvalidRequest(f"The expiry {isoformat(expires_at)} is not in the future.")
    if association is not None:
        with db.sessions() as session:  # associations are never removed: no race to guard
            if not is_member_association(session, association):
                raise InvalidRequest(f"There is no member association {association!r}.")
    if principal is not None:
        may_mint(principal, association, scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        minter = None
        if principal is not None:
            # Locked, so that a revocation of the maker either finishes first (and is seen here)
            # or waits for this token and then revokes it too.
            minter = session.scalars(sa.select(AccessToken)
                                     .where(AccessToken.id == principal.token_id)
                                     .with_for_update()).one()
            _require_live(minter, now)
            if onboarding:
                assert association is not None  # onboarding is always of an association
                _require_not_onboarded(session, association, now)
        parent = None if onboarding else minter
        if parent is not None and parent.expires_at is not None:
            if expires_at is None:
                expires_at = parent.expires_at
            elif expires_at > parent.expires_at:
                raise InvalidRequest(f"A token expires no later than the token that makes it: "
                                     f"{isoformat(parent.expires_at)}.")
        row = AccessToken(token_sha256=hash_token(token),
                          role=ASSOCIATION if association else OPERATOR, association=association,
                          scopes=" ".join(sorted(p.value for p in scopes)), label=label,
                          created_at=now, expires_at=expires_at,
                          parent_id=parent.id if parent else None, minted_by=minter)
        session.add(row)
        session.flush()
        if principal is None:
            _record_command(session, row.id,
                            Permission.ONBOARD_ASSOCIATIONS if onboarding
                            else Permission.MANAGE_TOKENS, status=201)
    return IssuedToken(row=row, token=token)


def _require_not_onboarded(session: Session, association: str, now: datetime) -> None:
    """Raise 403 if ``association`` has a live token: from then on it makes its own."""
    live = session.scalar(sa.select(AccessToken.id).where(
        AccessToken.association == association, AccessToken.revoked_at.is_(None),
        sa.or_(AccessToken.expires_at.is_(None), AccessToken.expires_at > now)).limit(1))
    if live is not None:
        raise Forbidden(f"{association!r} is onboarded already: its further tokens are made by "
                        f"its own tokens with 'manage-tokens'. An operator may onboard it again "
                        f"only once none of its tokens is live.")


def revoke_token(db: Database, principal: Principal | None, token_id: int) -> list[int]:
    """Revoke a token now, and every token it minted, transitively; ``principal`` None means the
    command line (an operator at the host). Returns the ids this call revoked, in id order.

    Another association's token is reported as not found, so ids cannot be probed. An onboarding
    token is not its maker's child, so revoking an operator's token never ends an association's.
    """
    now = utcnow()
    with db.write() as session:
        row = session.get(AccessToken, token_id, with_for_update=True)
        if row is None or (principal is not None and principal.role != OPERATOR
                           and row.association != principal.association):
            raise NotFound(f"There is no token {token_id}.")
        ended: list[int] = []
        chain = [row.id]
        while chain:
            ended += session.scalars(sa.update(AccessToken)
                                     .where(AccessToken.id.in_(chain),
                                            AccessToken.revoked_at.is_(None))
                                     .values(revoked_at=now).returning(AccessToken.id))
            chain = list(session.scalars(sa.select(AccessToken.id)
                                         .where(AccessToken.parent_id.in_(chain))))
        if principal is None:
            _record_command(session, token_id, Permission.MANAGE_TOKENS, status=204)
    return sorted(ended)


def _record_command(session: Session, token_id: int, permission: Permission, *,
                    status: int) -> None:
    """Put a token command run at the host in the activity trail, in the transaction it commits in.

    The trail records requests by method and path: a command is method ``CLI`` on the path of
    the token it concerns, by principal ``command-line``, with the status its request would get.
    """
    session.add(ActivityEvent(at=utcnow(), principal=COMMAND_LINE, token_id=None, method="CLI",
                           path=f"/v1/tokens/{token_id}", permission=permission.value,
                           status=status))
