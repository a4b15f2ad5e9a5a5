"""Signed exports: immutable files (PDF with an embedded manifest; JSON and CSV with a sidecar)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime


class Export(Base):
    """One export, stored whole: its bytes, its manifest, and its log entry."""

    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, doc="A random UUID.")
    format: Mapped[str] = mapped_column(sa.String(8))
    scope: Mapped[str] = mapped_column(sa.Text, doc="RFC 8785 JSON of the requested scope.")
    media_type: Mapped[str] = mapped_column(sa.String(64))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    manifest: Mapped[bytes | None] = mapped_column(sa.LargeBinary,
                                                   doc="Sidecar; None when embedded (PDF).")
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))
    manifest_label: Mapped[str] = mapped_column(sa.String(200))
    versions: Mapped[str] = mapped_column(sa.Text, doc="JSON list of the exported version paths.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(sa.String(128))
    log_index: Mapped[int] = mapped_column(unique=True)
