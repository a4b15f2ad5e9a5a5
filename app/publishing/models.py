"""Documents, their immutable versions and their drafts.

A ``versions`` row is never updated or deleted: the migrations install triggers that make the
database itself refuse, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.core.db import Base, UTCDateTime


class Document(Base):
    """A concept with a stable identity (kind + slug); its content lives in versions."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    slug: Mapped[str] = mapped_column(sa.String(128))
    association: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    versions: Mapped[list[Version]] = relationship(back_populates="document",
                                                   order_by="Version.number", viewonly=True)

    __table_args__ = (sa.UniqueConstraint("kind", "slug"),)


def document_exists(session: Session, kind: str, slug: str) -> bool:
    """Whether there is a document of ``kind`` at ``slug`` (published or only drafted)."""
    return session.scalar(sa.select(Document.id).where(Document.kind == kind,
                                                       Document.slug == slug)) is not None


class Version(Base):
    """One published version: the exact RFC 8785 bytes served, and what was derived from them."""

    __tablename__ = "versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(sa.ForeignKey("documents.id"))
    number: Mapped[int]
    seq: Mapped[int] = mapped_column(unique=True, doc="Publication order across the registry.")
    body: Mapped[bytes] = mapped_column(sa.LargeBinary, doc="RFC 8785 canonical JSON.")
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn: Mapped[bool] = mapped_column(default=False)
    published_by: Mapped[str] = mapped_column(sa.String(128))
    manifest: Mapped[bytes] = mapped_column(sa.LargeBinary, doc="C2PA sidecar manifest store.")
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))
    manifest_label: Mapped[str] = mapped_column(sa.String(200))
    signer: Mapped[str] = mapped_column(sa.String(64), doc="Signer name: registry or an association.")
    signer_certificate_sha256: Mapped[str] = mapped_column(sa.String(64))
    log_index: Mapped[int] = mapped_column(unique=True, doc="Its entry in the transparency log.")

    document: Mapped[Document] = relationship(back_populates="versions")

    __table_args__ = (sa.UniqueConstraint("document_id", "number"),
                      sa.CheckConstraint("number >= 1", name="number_positive"))


class Draft(Base):
    """The one mutable working copy of a document, edited under optimistic locking."""

    __tablename__ = "drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(sa.ForeignKey("documents.id"), unique=True)
    body: Mapped[bytes] = mapped_column(sa.LargeBinary, doc="Canonical JSON of the content.")
    based_on_version: Mapped[int] = mapped_column(doc="Latest version when the draft was made.")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(sa.String(128))


class VersionSearch(Base):
    """What collection queries filter on, derived from one published version's bytes.

    Written in the transaction that publishes the version (see :mod:`app.publishing.search`).
    Only ``latest`` ever changes: the transaction that publishes the next version of the same
    document clears it. The version itself is never touched. The migration adds the text index
    of ``words`` per engine (FTS5 on SQLite, a GIN index on ``words::tsvector`` on PostgreSQL).
    """

    __tablename__ = "version_search"

    version_id: Mapped[int] = mapped_column(sa.ForeignKey("versions.id"), primary_key=True,
                                            autoincrement=False)
    document_id: Mapped[int] = mapped_column(sa.ForeignKey("documents.id"))
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(32))
    latest: Mapped[bool] = mapped_column(doc="No later version of its document exists.")
    withdrawn: Mapped[bool]
    association: Mapped[str | None] = mapped_column(sa.String(64))
    priority: Mapped[int | None]
    statement_type: Mapped[str | None] = mapped_column(sa.String(32))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    words: Mapped[str] = mapped_column(sa.Text, doc="Folded words of its text, space-separated.")

    __table_args__ = (
        # A listing of the latest versions counts and pages along one of these, ending in
        # document_id (creation order), without reading a row; as_of walks published_at and
        # probes (document_id, number) for a later version published by then.
        sa.UniqueConstraint("document_id", "number"),
        sa.Index("ix_version_search_listing", "kind", "latest", "withdrawn", "document_id"),
        sa.Index("ix_version_search_association", "kind", "latest", "withdrawn", "association",
                 "document_id"),
        sa.Index("ix_version_search_priority", "kind", "latest", "withdrawn", "priority",
                 "document_id"),
        sa.Index("ix_version_search_statement_type", "kind", "latest", "withdrawn",
                 "statement_type", "document_id"),
        sa.Index("ix_version_search_published_at", "kind", "published_at"),
    )


class VersionLabel(Base):
    """A tag of a published version, or a recommendation it addresses, with the facts a listing
    needs to count and page by label alone; written with the version, and ``latest`` cleared
    with its search row's."""

    __tablename__ = "version_labels"

    label: Mapped[str] = mapped_column(sa.String(16), primary_key=True,
                                       doc="tag or recommendation.")
    value: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("versions.id"), primary_key=True)
    document_id: Mapped[int] = mapped_column(sa.ForeignKey("documents.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    latest: Mapped[bool]
    withdrawn: Mapped[bool]

    __table_args__ = (
        sa.Index("ix_version_labels_listing", "label", "value", "kind", "latest", "withdrawn",
                 "document_id"),
        sa.Index("ix_version_labels_document_id", "document_id"),
    )
