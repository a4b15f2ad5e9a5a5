"""The publishing service: reads of immutable versions, drafts under optimistic locking, and the
one transaction that turns a draft into version N+1.

Every method that writes opens exactly one transaction (:meth:`Database.write`) and either commits
all it did or nothing. Versions are handed out as frozen :class:`PublishedVersion` values; because a
published version never changes, they are cached in process by (kind, slug, number).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import json_merge_patch
import jsonpatch
import marshmallow as ma
import sqlalchemy as sa
from sqlalchemy.orm import Session
from tech7_audit.times import isoformat

from app.access.policy import may_edit_document
from app.access.principal import Principal
from app.certificates.service import CertificateService
from app.core.caching import BoundedCache
from app.core.canonical import canonical_bytes
from app.core.db import Database, RegistryHead, utcnow
from app.core.errors import Conflict, InvalidRequest, NotFound
from app.core.etags import SignedBytesValidators, require_if_match, require_if_none_match_star, strong_etag
from app.ledger.service import TransparencyLog
from app.pki.keyring import REGISTRY_SIGNER
from app.provenance.service import PreviousVersion, ProvenanceService, SignedManifest
from app.publishing.collections import CollectionFilter, collection_query, index_version
from app.publishing.kinds import DocumentKind, DocumentKinds
from app.publishing.models import (
    Document,
    Draft,
    Version,
    document_exists,
)

#: Versions (bodies and manifests) a process keeps; the fast path keeps their headers as many.
VERSION_CACHE_SIZE = 4096


class UnchangedContent(Conflict):
    """The content to publish equals the latest version's: a new version would change nothing."""

    problem = "unchanged-content"
    title = "The content equals the latest version"


class SignerRevoked(Conflict):
    """The signer's current certificate is revoked; nothing is signed with it any more."""

    problem = "signer-revoked"
    title = "The signing certificate is revoked"


def version_identity(kind: DocumentKind, slug: str, number: int, sha256: str,
                     association: str | None) -> dict[str, Any]:
    """The ``org.tech7.document`` assertion every version's manifest carries (``slug`` as stored,
    e.g. ``bitkom/ai-act-position`` for a statement)."""
    return {"kind": kind.name, "slug": slug, "version": number, "sha256": sha256,
            "association": association}


@dataclass(frozen=True)
class PublishedVersion(SignedBytesValidators):
    """An immutable published version and the validators derived from its bytes."""

    kind: str
    slug: str
    number: int
    #: The version's immutable URL path.
    path: str
    seq: int
    body: bytes
    sha256: str
    published_at: datetime
    withdrawn: bool
    published_by: str
    manifest: bytes
    manifest_sha256: str
    signer: str
    log_index: int

    def document(self) -> dict[str, Any]:
        """The version parsed as a JSON object."""
        return json.loads(self.body)


@dataclass(frozen=True)
class DraftView:
    """A draft as served: its representation bytes and ETag."""

    kind: str
    slug: str
    body: bytes

    @property
    def etag(self) -> str:
        return strong_etag(self.body)


@dataclass(frozen=True)
class NextVersion:
    """A document and its latest version (``None`` before version 1), read under the writer lock:
    what the next version is numbered after and linked to."""

    document: Document
    previous: Version | None

    @property
    def number(self) -> int:
        """The next version's number."""
        return self.previous.number + 1 if self.previous else 1


@dataclass(frozen=True)
class Change:
    """One entry of the change feed (``slug`` as stored: ``<association>/<slug>`` for a
    statement; ``association`` the document's association, if it has one)."""

    seq: int
    kind: str
    slug: str
    association: str | None
    version: int
    published_at: datetime
    withdrawn: bool


@dataclass(frozen=True)
class VersionSummary:
    """What a list of a document's versions shows of each: never its body or manifest."""

    number: int
    published_at: datetime
    withdrawn: bool
    sha256: str


class PublishingService:
    """Reads and writes documents of every kind in ``kinds``, the registry's document kinds.

    Every new version is signed (:class:`ProvenanceService`) and logged (:class:`TransparencyLog`)
    in the transaction that inserts it: an unsigned or unlogged version never exists.
    """

    def __init__(self, db: Database, provenance: ProvenanceService, log: TransparencyLog,
                 certificates: CertificateService, kinds: DocumentKinds):
        self.db = db
        self.kinds = kinds
        self.provenance = provenance
        self.log = log
        self.certificates = certificates
        self._versions: BoundedCache[tuple[str, str, int], PublishedVersion] = BoundedCache(
            VERSION_CACHE_SIZE)

    # -- reads ---------------------------------------------------------------------------------

    def version(self, kind: DocumentKind, slug: str, number: int) -> PublishedVersion:
        """One published version, from the in-process cache when possible."""
        cached = self.cached(kind, slug, number)
        if cached is not None:
            return cached
        with self.db.sessions() as session:
            row = session.execute(
                _versions_query().where(Document.kind == kind.name, Document.slug == slug,
                                        Version.number == number)).one_or_none()
        if row is None:
            raise NotFound(f"{kind.name} {slug!r} has no version {number}.")
        return self._remember(published_version(kind, slug, row.Version))

    def cached(self, kind: DocumentKind, slug: str, number: int) -> PublishedVersion | None:
        """The version if this process already holds it; never touches the database."""
        return self._versions.get((kind.name, slug, number))

    def require_association(self, association: str) -> None:
        """Raise 404 unless ``association`` is a member association."""
        with self.db.sessions() as session:
            if not document_exists(session, self.kinds.members.name, association):
                raise NotFound(f"There is no member association {association!r}.")

    def latest(self, kind: DocumentKind, slug: str, as_of: datetime | None = None
               ) -> PublishedVersion:
        """The latest version of a document, or the latest at ``as_of``."""
        with self.db.sessions() as session:
            query = _versions_query().where(Document.kind == kind.name, Document.slug == slug)
            if as_of is not None:
                query = query.where(Version.published_at <= as_of)
            row = session.execute(query.order_by(Version.number.desc()).limit(1)).one_or_none()
            if row is None:
                self._require_document(session, kind, slug)
                when = f" at {isoformat(as_of)}" if as_of else ""
                raise NotFound(f"{kind.name} {slug!r} had no published version{when}.")
        return self._remember(published_version(kind, slug, row.Version))

    def versions(self, kind: DocumentKind, slug: str, *, offset: int, limit: int
                 ) -> tuple[list[VersionSummary], int]:
        """One page of a document's versions, oldest first, without bodies or manifests, and
        how many versions it has."""
        with self.db.sessions() as session:
            document = self._require_document(session, kind, slug)
            total = _latest_number(session, document)  # numbers run 1..N without gaps
            rows = session.execute(
                sa.select(Version.number, Version.published_at, Version.withdrawn,
                          Version.sha256)
                .where(Version.document_id == document.id)
                .order_by(Version.number).offset(offset).limit(limit)).all()
        return [VersionSummary(*row) for row in rows], total

    def collection_page(self, kind: DocumentKind, query: CollectionFilter, *, offset: int,
                        limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the latest version (at ``query.as_of``) of each matching document of a
        kind, in creation order, and how many match in all.

        The filters, the count and the page are worked out on ``version_search`` and
        ``version_labels`` alone, along their indexes (:func:`~app.publishing.collections.collection_query`); only the
        page's own bodies are read, and no manifest.
        """
        selected = collection_query(kind, query, is_sqlite=self.db.is_sqlite)
        if selected is None:
            return [], 0
        _, document_id, select = selected
        with self.db.sessions() as session:
            total = session.execute(select.with_only_columns(sa.func.count())).scalar_one()
            ids = session.scalars(select.order_by(document_id).offset(offset).limit(limit)).all()
            bodies = dict(session.execute(sa.select(Version.id, Version.body)
                                          .where(Version.id.in_(ids))).all()) if ids else {}
        return [json.loads(bodies[i]) for i in ids], total

    def collection(self, kind: DocumentKind, as_of: datetime | None = None
                   ) -> list[PublishedVersion]:
        """The latest version (at ``as_of``) of every document of a kind, in creation order (for
        the seeded catalogue, the declaration's own order)."""
        latest = sa.select(Version.document_id, sa.func.max(Version.number).label("number")) \
            .group_by(Version.document_id)
        if as_of is not None:
            latest = latest.where(Version.published_at <= as_of)
        numbers = latest.subquery()
        query = _versions_query().join(
            numbers, sa.and_(numbers.c.document_id == Version.document_id,
                             numbers.c.number == Version.number)
        ).where(Document.kind == kind.name).order_by(Document.id)
        with self.db.sessions() as session:
            rows = session.execute(query).all()
        return [published_version(kind, row.slug, row.Version) for row in rows]

    def diff(self, kind: DocumentKind, slug: str, source: int, target: int) -> list[dict]:
        """The RFC 6902 JSON Patch that turns version ``source`` into version ``target``."""
        before = self.version(kind, slug, source).document()
        after = self.version(kind, slug, target).document()
        return jsonpatch.make_patch(before, after).patch

    def changes(self, since: int, limit: int) -> list[Change]:
        """Publications after sequence number ``since``, in publication order."""
        with self.db.sessions() as session:
            rows = session.execute(
                sa.select(Version.seq, Document.kind, Document.slug, Document.association,
                          Version.number, Version.published_at, Version.withdrawn)
                .join(Document, Document.id == Version.document_id)
                .where(Version.seq > since).order_by(Version.seq).limit(limit)).all()
        return [Change(*row) for row in rows]

    def draft(self, kind: DocumentKind, slug: str, *, principal: Principal) -> DraftView:
        """The current draft of a document, if ``principal`` may edit it."""
        with self.db.sessions() as session:
            document = self._require_document(session, kind, slug)
            _may_edit(principal, kind, document.association)
            draft = _draft_of(session, document)
            if draft is None:
                raise NotFound(f"{kind.name} {slug!r} has no draft.")
            return _draft_view(kind, slug, draft)

    # -- writes --------------------------------------------------------------------------------

    def create(self, kind: DocumentKind, slug: str, content: Mapping[str, Any], *,
               principal: Principal, association: str | None = None) -> DraftView:
        """Create a new document of ``kind`` with its first draft (publishing makes version 1),
        if ``principal`` may edit ``association``'s documents of that kind; an
        association-owned kind's ``association`` must be a member."""
        _may_edit(principal, kind, association)
        if kind.owned_by_association:
            assert association is not None  # the routes of an owned kind name it
            self.require_association(association)
        editor = principal.name
        with self.db.registry_transaction() as session:
            if _document(session, kind, slug) is not None:
                raise Conflict(f"{kind.name} {slug!r} already exists; edit its draft instead.")
            _check_references(kind, session, content)
            document = Document(kind=kind.name, slug=slug, association=association,
                                created_at=utcnow())
            session.add(document)
            session.flush()
            draft = _new_draft(document, content, based_on=0, editor=editor)
            session.add(draft)
            session.flush()
            return _draft_view(kind, slug, draft)

    def put_draft(self, kind: DocumentKind, slug: str, body: Mapping[str, Any], *,
                  if_match: str | None, if_none_match: str | None,
                  principal: Principal) -> tuple[DraftView, bool]:
        """Create (``If-None-Match: *``) or replace (``If-Match``) a draft as ``principal``;
        returns (draft, created)."""
        editor = principal.name
        content = _load(kind, body)
        with self.db.registry_transaction() as session:
            # Drafts are checked and changed under the writer lock, as publish is: without it two
            # editors on PostgreSQL could both pass the same If-Match.
            document = self._require_document(session, kind, slug)
            _may_edit(principal, kind, document.association)
            _check_references(kind, session, content)
            draft = _draft_of(session, document)
            if if_none_match is not None and if_none_match.strip() == "*":
                require_if_none_match_star(draft is not None)
                draft = _new_draft(document, content, based_on=_latest_number(session, document),
                                   editor=editor)
                session.add(draft)
                session.flush()
                return _draft_view(kind, slug, draft), True
            draft = _require_draft_match(kind, slug, draft, if_match)
            _replace(draft, content, editor)
            session.flush()
            return _draft_view(kind, slug, draft), False

    def patch_draft(self, kind: DocumentKind, slug: str, patch: Any, *, if_match: str | None,
                    principal: Principal) -> DraftView:
        """Apply an RFC 7396 JSON Merge Patch to the draft under ``If-Match``, as ``principal``."""
        editor = principal.name
        if not isinstance(patch, dict):
            raise InvalidRequest("A merge patch on a draft must be a JSON object.")
        with self.db.registry_transaction() as session:
            _, draft = self._matched_draft(session, kind, slug, principal, if_match)
            merged = _load(kind, json_merge_patch.merge(json.loads(draft.body), patch))
            _check_references(kind, session, merged)
            _replace(draft, merged, editor)
            session.flush()
            return _draft_view(kind, slug, draft)

    def delete_draft(self, kind: DocumentKind, slug: str, *, if_match: str | None,
                     principal: Principal) -> None:
        """Discard the draft under ``If-Match``, as ``principal``; published versions are
        untouched."""
        with self.db.registry_transaction() as session:
            _, draft = self._matched_draft(session, kind, slug, principal, if_match)
            session.delete(draft)

    def publish(self, kind: DocumentKind, slug: str, *, if_match: str | None,
                principal: Principal) -> PublishedVersion:
        """Publish the draft as version N+1 in one transaction, as ``principal``."""
        with self.db.registry_transaction() as session:
            document, draft = self._matched_draft(session, kind, slug, principal, if_match)
            version = self.append_version(session, kind,
                                          NextVersion(document, _latest_version(session, document)),
                                          _content_of(draft), publisher=principal.name)
            session.delete(draft)
            session.flush()
            return published_version(kind, slug, version)

    def next_version(self, session: Session, kind: DocumentKind, slug: str, *,
                     association: str | None = None) -> NextVersion:
        """What the next version of ``slug`` builds on, read once in the caller's transaction
        (which holds the writer lock): the document, added if it is new, and its latest version."""
        document = _document(session, kind, slug)
        if document is None:
            document = Document(kind=kind.name, slug=slug, association=association,
                                created_at=utcnow())
            session.add(document)
            session.flush()
            return NextVersion(document, None)
        return NextVersion(document, _latest_version(session, document))

    def publish_content(self, session: Session, kind: DocumentKind, slug: str,
                        content: Mapping[str, Any], *, publisher: str,
                        association: str | None = None) -> Version:
        """Validate ``content`` and publish it directly as the next version, inside the caller's
        transaction, which holds the writer lock (:meth:`~app.core.db.Database.registry_transaction`).

        Used by seeding and by tests; see :meth:`append_version`.
        """
        target = self.next_version(session, kind, slug, association=association)
        content = _load(kind, content)
        _check_references(kind, session, content)
        return self.append_version(session, kind, target, content, publisher=publisher)

    def append_version(self, session: Session, kind: DocumentKind, target: NextVersion,
                       content: Mapping[str, Any], *, publisher: str,
                       signed: SignedManifest | None = None,
                       published_at: datetime | None = None) -> Version:
        """Add version N+1 of ``target.document``: the one place a version row is ever created.

        ``content`` is valid for ``kind`` (its schema and its references), as the caller checked.
        Canonical bytes → manifest (linked to version N by its hashes and its log entry's
        inclusion proof; version N must still read Trusted) → log entry → version row, all in
        the caller's transaction.

        Own-key publishing passes ``signed``, a manifest the association made with its own
        key over exactly the bytes derived here from ``content`` and ``published_at`` (the time
        those bytes state), which the caller has verified against ``target``
        (:mod:`app.statements.own_key_intake`); the registry then signs nothing, and logs and
        stores the version as it does its own.
        """
        if (signed is None) != (published_at is None):
            raise ValueError("an own-key version needs both signed and published_at")
        document, previous = target.document, target.previous
        head = session.get_one(RegistryHead, 1)
        if previous is not None and previous.body == canonical_bytes(kind.served_body(
                document.slug, previous.number, isoformat(previous.published_at), content)):
            raise UnchangedContent(
                f"The content equals version {previous.number}'s, so publishing it would add a "
                f"version that changes nothing. Change the draft, or discard it.",
                version=previous.number)
        number = target.number
        published_at = published_at or utcnow()
        body = canonical_bytes(kind.served_body(document.slug, number, isoformat(published_at),
                                                content))
        sha256 = hashlib.sha256(body).hexdigest()
        association = document.association
        if signed is None:
            signer_name = _signer_of(kind, document)
            self.require_current_signer(session, signer_name)
            signed = self.provenance.sign_version(
                body=body, signer_name=signer_name,
                title=f"{kind.name} {document.slug} version {number}",
                identity=version_identity(kind, document.slug, number, sha256, association),
                parent=None if previous is None else PreviousVersion(
                    number=previous.number, body=previous.body, manifest=previous.manifest,
                    sha256=previous.sha256, manifest_sha256=previous.manifest_sha256,
                    manifest_label=previous.manifest_label, log_index=previous.log_index,
                    tlog_proof=self.log.receipt_in(session, previous.log_index)),
                # The previous version may be one the association signed with its own key.
                parent_anchors_pem=self.certificates.approved_ca_pem(session, association)
                if previous is not None and association else b"")
        withdrawn = bool(content.get("withdrawn"))
        entry = self.log.append(session, {
            "type": "withdrawal" if withdrawn else "publication",
            "subject": kind.version_path(document.slug, number),
            "association": association, "document_sha256": sha256,
            "manifest_label": signed.label, "manifest_sha256": signed.sha256,
            "signer": signed.signer,
            "signer_certificate_sha256": signed.signer_certificate_sha256,
            "time": isoformat(published_at)})
        head.last_seq += 1
        version = Version(document_id=document.id, number=number, seq=head.last_seq, body=body,
                          sha256=sha256, published_at=published_at, withdrawn=withdrawn,
                          published_by=publisher, manifest=signed.manifest,
                          manifest_sha256=signed.sha256, manifest_label=signed.label,
                          signer=signed.signer,
                          signer_certificate_sha256=signed.signer_certificate_sha256,
                          log_index=entry.index)
        session.add(version)
        session.flush()
        index_version(session, kind, version)
        return version

    def require_current_signer(self, session: Session, signer_name: str) -> None:
        """Before signing in the caller's transaction (which holds the registry lock): make the
        provenance service sign with ``signer_name``'s current certificate, even if another
        process rotated it, and refuse (409) if that certificate is revoked: the operator rotates
        it first."""
        status = self.certificates.current_status(session, signer_name)
        if status.revoked:
            assert status.revoked_at is not None  # a revocation has its time
            raise SignerRevoked(
                f"The signing certificate of {signer_name!r} was revoked at "
                f"{isoformat(status.revoked_at)} ({status.reason}); an operator must run "
                f"`tech7-registry keys rotate {signer_name}` before anything more is signed.")

    # -- helpers -------------------------------------------------------------------------------

    def _matched_draft(self, session: Session, kind: DocumentKind, slug: str,
                       principal: Principal, if_match: str | None
                       ) -> tuple[Document, Draft]:
        """The document and its draft, once ``principal`` may edit it and ``If-Match`` holds.

        Every draft writer calls this after taking the writer lock, so the precondition is checked
        against the draft as it is, not as another transaction is about to leave it.
        """
        document = self._require_document(session, kind, slug)
        _may_edit(principal, kind, document.association)
        return document, _require_draft_match(kind, slug, _draft_of(session, document), if_match)

    def _require_document(self, session: Session, kind: DocumentKind, slug: str) -> Document:
        document = _document(session, kind, slug)
        if document is None:
            raise NotFound(f"There is no {kind.name} {slug!r}.")
        return document

    def _remember(self, version: PublishedVersion) -> PublishedVersion:
        return self._versions.put((version.kind, version.slug, version.number), version)


def _versions_query() -> sa.Select:
    return sa.select(Version, Document.slug).join(Document, Document.id == Version.document_id)


def published_version(kind: DocumentKind, slug: str, row: Version) -> PublishedVersion:
    """What a version row publishes, as the service hands it out (read in the caller's session)."""
    return PublishedVersion(kind=kind.name, slug=slug, number=row.number,
                            path=kind.version_path(slug, row.number), seq=row.seq, body=row.body,
                            sha256=row.sha256, published_at=row.published_at,
                            withdrawn=row.withdrawn, published_by=row.published_by,
                            manifest=row.manifest, manifest_sha256=row.manifest_sha256,
                            signer=row.signer, log_index=row.log_index)


def _may_edit(principal: Principal, kind: DocumentKind, association: str | None) -> None:
    """Raise 403 unless ``principal`` may edit ``association``'s documents of ``kind``."""
    may_edit_document(principal, association, owned_by_association=kind.owned_by_association)


def _signer_of(kind: DocumentKind, document: Document) -> str:
    """Statements are signed by their association; everything else by the registry."""
    if kind.owned_by_association:
        assert document.association is not None  # such documents always name their association
        return document.association
    return REGISTRY_SIGNER


def _document(session: Session, kind: DocumentKind, slug: str) -> Document | None:
    return session.scalar(sa.select(Document).where(Document.kind == kind.name,
                                                    Document.slug == slug))


def _draft_of(session: Session, document: Document) -> Draft | None:
    return session.scalar(sa.select(Draft).where(Draft.document_id == document.id))


def _latest_version(session: Session, document: Document) -> Version | None:
    return session.scalar(sa.select(Version).where(Version.document_id == document.id)
                          .order_by(Version.number.desc()).limit(1))


def _latest_number(session: Session, document: Document) -> int:
    return session.execute(sa.select(sa.func.coalesce(sa.func.max(Version.number), 0))
                           .where(Version.document_id == document.id)).scalar_one()


def _load(kind: DocumentKind, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("A document body must be a JSON object.")
    try:
        return kind.load_content(body)
    except ma.ValidationError as error:
        raise InvalidRequest("The document failed validation: " + _field_errors(error.messages),
                             errors={"json": error.messages}) from error


def _check_references(kind: DocumentKind, session: Session, content: Mapping[str, Any]) -> None:
    if kind.check_references is not None:
        kind.check_references(session, content)


def _field_errors(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{field}: {_field_errors(value)}" for field, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_field_errors(m) for m in messages)
    return str(messages)


def _new_draft(document: Document, content: Mapping[str, Any], *, based_on: int,
               editor: str) -> Draft:
    return Draft(document_id=document.id, body=canonical_bytes(dict(content)),
                 based_on_version=based_on, updated_at=utcnow(), updated_by=editor)


def _replace(draft: Draft, content: Mapping[str, Any], editor: str) -> None:
    draft.body = canonical_bytes(dict(content))
    draft.updated_at = utcnow()
    draft.updated_by = editor


def _content_of(draft: Draft) -> dict[str, Any]:
    return json.loads(draft.body)


def _require_draft_match(kind: DocumentKind, slug: str, draft: Draft | None,
                         if_match: str | None) -> Draft:
    """``draft``, once ``If-Match`` names it (a missing draft never matches: 412)."""
    require_if_match(if_match, _draft_view(kind, slug, draft).etag if draft else None)
    assert draft is not None  # require_if_match refused a missing one
    return draft


def _draft_view(kind: DocumentKind, slug: str, draft: Draft) -> DraftView:
    representation = {"kind": kind.name, "slug": slug.rsplit("/", 1)[-1], **kind.identity(slug),
                      "based_on_version": draft.based_on_version,
                      "updated_at": isoformat(draft.updated_at), **_content_of(draft)}
    return DraftView(kind=kind.name, slug=slug, body=canonical_bytes(representation))


