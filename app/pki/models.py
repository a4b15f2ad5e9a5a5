"""The registry's record of signing certificates and their revocations (both append-only), and the
CA certificates that associations bring for signing with their own keys."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime


class SigningCertificate(Base):
    """A signing certificate the registry's CA issued, logged when the registry first saw it."""

    __tablename__ = "signing_certificates"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True,
                                        doc="SHA-256 of the certificate's DER.")
    signer: Mapped[str] = mapped_column(sa.String(64), index=True,
                                        doc="registry, or an association slug.")
    serial_number: Mapped[str] = mapped_column(sa.String(64))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    pem: Mapped[str] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(unique=True)


class Revocation(Base):
    """A signing certificate's revocation: manifests signed after ``revoked_at`` are revoked."""

    __tablename__ = "revocations"

    certificate_sha256: Mapped[str] = mapped_column(
        sa.ForeignKey("signing_certificates.sha256"), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(sa.String(64))
    log_index: Mapped[int] = mapped_column(unique=True)


class AssociationCA(Base):
    """An association's own CA certificate; usable for own-key publishing once approved."""

    __tablename__ = "association_cas"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    association: Mapped[str] = mapped_column(sa.String(64), index=True)
    pem: Mapped[str] = mapped_column(sa.Text)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_by: Mapped[str] = mapped_column(sa.String(128))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(sa.String(128))
