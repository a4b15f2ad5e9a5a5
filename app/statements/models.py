"""Certificate authorities that associations bring for signing with their own keys."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class AssociationCA(Base):
    """An association's own CA certificate; usable for non-custodial publishing once approved."""

    __tablename__ = "association_cas"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    association: Mapped[str] = mapped_column(sa.String(64), index=True)
    pem: Mapped[str] = mapped_column(sa.Text)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_by: Mapped[str] = mapped_column(sa.String(128))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(sa.String(128))
