"""Access tokens. Only a SHA-256 of each token is stored; the token itself is shown once."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, UTCDateTime


class AccessToken(Base):
    """A bearer token of an operator or of one association's publisher.

    ``parent_id`` is the token whose life bounds this one's: it expires no later, and revoking
    the parent revokes it. ``minted_by_id`` records who made it: the parent, or for an
    association's onboarding token the operator token that made it (which is not its parent:
    the association's chain is its own). Both are None for a token made on the command line.
    """

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    association: Mapped[str | None] = mapped_column(sa.String(64))
    scopes: Mapped[str] = mapped_column(sa.String(200), doc="Space-separated permissions.")
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("access_tokens.id"), index=True)
    minted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("access_tokens.id"))

    minted_by: Mapped[AccessToken | None] = relationship(
        remote_side=[id], foreign_keys=[minted_by_id], lazy="raise")

    __table_args__ = (
        sa.CheckConstraint("role IN ('operator', 'association')", name="role"),
        sa.CheckConstraint("(role = 'association') = (association IS NOT NULL)",
                           name="association_role"),
    )


class ActivityEvent(Base):
    """One state-changing request: who, what, when, through which token, and how it ended."""

    # The table keeps the name it was made with: it is append-only behind triggers named after
    # it (migrations/), and no client ever sees it.
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    principal: Mapped[str] = mapped_column(sa.String(128), doc="operator or association:<slug>.")
    token_id: Mapped[int | None]
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(500))
    permission: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[int] = mapped_column(doc="The HTTP status the request ended with.")
