"""Signed exports: a chosen set of published versions as one PDF, JSON bundle or CSV file.

An export is made in one transaction under the registry's writer lock: select the versions, lay
out the file, sign it as the registry (the PDF with its manifest embedded, JSON and CSV with a
sidecar), log it in the transparency log, and store it. Every exported version becomes a
``componentOf`` ingredient of the export's manifest, carrying its own manifest, so the export's
provenance reaches each document it contains. Exports are immutable: stored once, served again
byte for byte.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from tech7_audit.times import isoformat

from app.access.policy import may_export
from app.access.principal import Principal
from app.catalog.kinds import ASSOCIATION, DECLARATION, PRIORITY, RECOMMENDATION
from app.core.canonical import canonical_bytes
from app.core.db import Database, utcnow
from app.core.errors import Conflict, InvalidRequest, NotFound
from app.core.etags import SignedBytesValidators
from app.exports.models import Export
from app.exports.pdf import render_export_pdf
from app.ledger.service import TransparencyLog
from app.pki.keyring import REGISTRY_SIGNER
from app.provenance.service import JSON, ProvenanceService
from app.provenance.signing import Ingredient, IngredientNotTrustedError
from app.publishing.models import Document, Version
from app.publishing.service import PublishedVersion, PublishingService

#: Export formats and the media type each is served (and signed) as.
MEDIA_TYPES = {"pdf": "application/pdf", "json": JSON, "csv": "text/csv"}
#: The most versions one export may hold.
MAX_VERSIONS = 500
#: The columns of a CSV export, in order.
CSV_COLUMNS = ("kind", "slug", "version", "published_at", "sha256", "title", "text")

# Version numbers as they appear in version paths (no sign, no leading zero).
_CANONICAL_NUMBER = re.compile(r"^[1-9][0-9]{0,8}$")


class ComponentNotTrusted(Conflict):
    """A version chosen for an export no longer reads Trusted, so the registry will not sign it."""

    problem = "component-not-trusted"
    title = "An exported version does not verify"


@dataclass(frozen=True)
class ExportScope:
    """What an export holds: exactly one of the four scopes.

    ``declaration``: the declaration with every priority, recommendation and association;
    ``priority``: that priority and its recommendations; ``association``: every document of that
    association (its own entry and its statements). These three take the latest version of each
    document and leave withdrawn documents out. ``versions``: exactly the versions named by their
    paths, in that order.
    """

    declaration: bool = False
    priority: int | None = None
    association: str | None = None
    versions: tuple[str, ...] = ()

    def __post_init__(self):
        chosen = [self.declaration, self.priority is not None, self.association is not None,
                  bool(self.versions)]
        if sum(chosen) != 1:
            raise ValueError("an export scope names exactly one of declaration, priority, "
                             "association or versions")

    def to_json(self) -> dict[str, Any]:
        """The scope as requested, e.g. ``{"priority": 4}``."""
        if self.priority is not None:
            return {"priority": self.priority}
        if self.association is not None:
            return {"association": self.association}
        if self.versions:
            return {"versions": list(self.versions)}
        return {"declaration": True}

    def describe(self) -> str:
        """The scope in words, for the PDF."""
        if self.priority is not None:
            return f"Key priority {self.priority} of the declaration and its recommendations"
        if self.association is not None:
            return f"The documents of the member association {self.association!r}"
        if self.versions:
            return "A selection of published document versions"
        return "The declaration with its key priorities, recommendations and member associations"


@dataclass(frozen=True)
class StoredExport(SignedBytesValidators):
    """One export as stored: its bytes, its manifest and what the log recorded."""

    id: str
    format: str
    scope: dict[str, Any]
    media_type: str
    content: bytes
    sha256: str
    manifest: bytes | None
    manifest_sha256: str
    manifest_label: str
    versions: tuple[str, ...]
    created_at: datetime
    created_by: str
    log_index: int

    @property
    def path(self) -> str:
        """The URL path the export's bytes are served at."""
        return f"/v1/exports/{self.id}"

    @property
    def manifest_path(self) -> str | None:
        """Where the sidecar manifest is served; None when it is embedded (PDF)."""
        return f"{self.path}/manifest" if self.manifest is not None else None

    @property
    def receipt_path(self) -> str:
        """Where the export's log receipt is served."""
        return f"{self.path}/receipt"

    @property
    def filename(self) -> str:
        """A file name for downloads."""
        return f"tech7-export-{self.id}.{self.format}"

    def metadata(self) -> dict[str, Any]:
        """What the API says about the export (the body of ``POST /v1/exports``)."""
        return {"id": self.id, "format": self.format, "media_type": self.media_type,
                "sha256": self.sha256, "created_at": isoformat(self.created_at),
                "scope": self.scope, "versions": list(self.versions),
                "manifest": self.manifest_path, "href": self.path, "log_index": self.log_index,
                "receipt": self.receipt_path}


class ExportService:
    """Makes, signs, logs and stores exports, and reads them back."""

    def __init__(self, db: Database, publishing: PublishingService,
                 provenance: ProvenanceService, log: TransparencyLog):
        self.db = db
        self.publishing = publishing
        self.provenance = provenance
        self.log = log

    def _ingredients(self, session: Session, hrefs: list[str],
                     versions: list[PublishedVersion]) -> list[Ingredient]:
        """The selected versions as ``componentOf`` ingredients. A version an association signed
        is read against that association's approved CAs as well as the registry's root: one it
        signed with its own key chains to the former."""
        anchors: dict[str, bytes] = {}
        for version in versions:
            if version.signer != REGISTRY_SIGNER and version.signer not in anchors:
                anchors[version.signer] = self.publishing.certificates.approved_ca_pem(
                    session, version.signer)
        return [Ingredient(href, JSON, version.body, version.manifest, relationship="componentOf",
                           own_anchors_pem=anchors.get(version.signer, b""))
                for href, version in zip(hrefs, versions, strict=True)]

    def create(self, export_format: str, scope: ExportScope, *, created_by: str,
               registry_url: str | None = None, principal: Principal | None = None
               ) -> StoredExport:
        """Make the export of ``scope`` in ``export_format`` (pdf, json or csv), in one transaction.

        ``registry_url`` is the registry's public base URL (``https://registry.example``): the
        PDF's "How to verify" section names the registry's URLs under it, so that a reader
        holding only the file knows where to check it. A PDF needs it; JSON and CSV name none.

        ``principal`` is who asks, None for the command line on the host; what each may export is
        :func:`app.access.policy.may_export`'s to say (:class:`~app.core.errors.Forbidden`,
        nothing written, when it refuses).

        Raises :class:`~app.core.errors.InvalidRequest` (nothing written) when the format is unknown,
        a version path names nothing, or the scope selects no version or more than
        :data:`MAX_VERSIONS`; :class:`ComponentNotTrusted` when a selected version no longer
        verifies; :class:`~app.publishing.service.SignerRevoked` when the registry's certificate
        is revoked; :class:`~app.provenance.service.SigningUnavailable` when signing fails.
        """
        media_type = MEDIA_TYPES.get(export_format)
        if media_type is None:
            raise InvalidRequest(f"Unknown export format {export_format!r}: use one of "
                                 f"{', '.join(MEDIA_TYPES)}.")
        if export_format == "pdf" and not registry_url:
            raise InvalidRequest("A PDF export names the registry's public URL in its \"How to "
                                 "verify\" section, and this registry has none: its operator "
                                 "sets TECH7_PUBLIC_URL. JSON and CSV exports need none.")
        with self.db.registry_transaction() as session:
            versions = self._select(session, scope)
            may_export(principal, scope_association=scope.association,
                       version_signers=[version.signer for version in versions]
                       if scope.versions else None)
            export_id = str(uuid.uuid4())
            path = f"/v1/exports/{export_id}"
            created_at = utcnow()
            hrefs = [version.path for version in versions]
            content = _layout(export_format, scope, versions, path=path, created_at=created_at,
                              registry_url=registry_url)
            self.publishing.require_current_signer(session, REGISTRY_SIGNER)
            try:
                content, signed = self.provenance.sign_export(
                    content=content, media_type=media_type, embedded=export_format == "pdf",
                    title=f"{_title(scope, versions)} ({export_format.upper()} export)",
                    identity={"kind": "export", "id": export_id, "format": export_format,
                              "scope": scope.to_json(), "versions": hrefs,
                              "exported_at": isoformat(created_at)},
                    ingredients=self._ingredients(session, hrefs, versions))
            except IngredientNotTrustedError as error:
                raise ComponentNotTrusted(
                    f"Refusing to export: {error}. The stored version no longer matches its "
                    f"manifest.", codes=list(error.report.codes)) from error
            sha256 = hashlib.sha256(content).hexdigest()
            entry = self.log.append(session, {
                "type": "export", "subject": path,
                "association": scope.association, "document_sha256": sha256,
                "manifest_label": signed.label, "manifest_sha256": signed.sha256,
                "signer": signed.signer,
                "signer_certificate_sha256": signed.signer_certificate_sha256,
                "time": isoformat(created_at)})
            row = Export(id=export_id, format=export_format,
                         scope=canonical_bytes(scope.to_json()).decode(), media_type=media_type,
                         content=content, sha256=sha256, manifest=signed.manifest,
                         manifest_sha256=signed.sha256, manifest_label=signed.label,
                         versions=canonical_bytes(hrefs).decode(), created_at=created_at,
                         created_by=created_by, log_index=entry.index)
            session.add(row)
            session.flush()
            return _stored(row)

    def get(self, export_id: str) -> StoredExport:
        """One stored export, or :class:`~app.core.errors.NotFound`."""
        with self.db.sessions() as session:
            row = session.get(Export, export_id)
        if row is None:
            raise NotFound(f"There is no export {export_id!r}.")
        return _stored(row)

    def with_sidecar(self, export_id: str) -> StoredExport:
        """A stored JSON or CSV export; :class:`~app.core.errors.NotFound` for a PDF, whose manifest
        is embedded."""
        export = self.get(export_id)
        if export.manifest is None:
            raise NotFound(f"Export {export_id} is a PDF: its manifest is embedded in the file, "
                           f"so it has no sidecar.")
        return export

    # -- selecting -----------------------------------------------------------------------------

    def _select(self, session: Session, scope: ExportScope) -> list[PublishedVersion]:
        """The versions ``scope`` names, read under the writer lock so they are the latest."""
        if scope.versions:
            selected = self._named_versions(session, scope.versions)
        elif scope.priority is not None:
            selected = self._priority(scope.priority)
        elif scope.association is not None:
            selected = self._association(session, scope.association)
        else:
            selected = [version for kind in (DECLARATION, PRIORITY, RECOMMENDATION, ASSOCIATION)
                        for version in self.publishing.collection(kind)
                        if not version.withdrawn]
        if not selected:
            raise InvalidRequest(f"The scope {scope.to_json()} selects no published version "
                                 f"(withdrawn documents are left out).")
        if len(selected) > MAX_VERSIONS:
            raise InvalidRequest(f"The scope selects {len(selected)} versions; one export holds "
                                 f"at most {MAX_VERSIONS}.")
        return selected

    def _named_versions(self, session: Session, paths: tuple[str, ...]
                        ) -> list[PublishedVersion]:
        """The versions at ``paths`` (duplicates dropped), or 422 naming every unknown path."""
        # Concept paths of every document, computed by their kinds: the one definition of the URL
        # layout (association-owned documents live under /v1/associations/{slug}/…).
        kinds = self.publishing.kinds
        concepts = {kinds[kind].concept_path(slug): (kinds[kind], slug)
                    for kind, slug in session.execute(sa.select(Document.kind, Document.slug))
                    if kind in kinds}
        found, unknown = [], []
        for path in dict.fromkeys(paths):
            concept, separator, number = path.rpartition("/versions/")
            document = concepts.get(concept) if separator else None
            version = None
            if document is not None and _CANONICAL_NUMBER.match(number):
                kind, slug = document
                with contextlib.suppress(NotFound):
                    version = self.publishing.version(kind, slug, int(number))
            if version is None:
                unknown.append(path)
            else:
                found.append(version)
        if unknown:
            shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more"
                                               if len(unknown) > 10 else "")
            raise InvalidRequest(f"No published version at {shown}. Name versions by their "
                                 f"paths, e.g. /v1/recommendations/sme-participation/versions/1.",
                                 unknown=unknown)
        return found

    def _priority(self, number: int) -> list[PublishedVersion]:
        try:
            priority = self.publishing.latest(PRIORITY, str(number))
        except NotFound as error:
            raise InvalidRequest(f"There is no priority {number}.") from error
        recommendations = [version for version in self.publishing.collection(RECOMMENDATION)
                           if version.document().get("priority") == number]
        return [version for version in [priority, *recommendations] if not version.withdrawn]

    def _association(self, session: Session, slug: str) -> list[PublishedVersion]:
        """The latest version of every published document of the association, of any kind."""
        documents = session.execute(
            sa.select(Document.kind, Document.slug).where(
                Document.association == slug,
                sa.exists().where(Version.document_id == Document.id))
            .order_by(Document.id)).all()
        if not documents:
            raise InvalidRequest(f"The association {slug!r} has published nothing.")
        latest = [self.publishing.latest(self.publishing.kinds[kind], document_slug)
                  for kind, document_slug in documents]
        return [version for version in latest if not version.withdrawn]


def _layout(export_format: str, scope: ExportScope, versions: list[PublishedVersion], *,
            path: str, created_at: datetime, registry_url: str | None) -> bytes:
    """The unsigned bytes of the export in ``export_format``."""
    if export_format == "json":
        return canonical_bytes({
            "exported_at": isoformat(created_at), "scope": scope.to_json(),
            "versions": [{"href": version.path, "sha256": version.sha256,
                          "document": version.document()} for version in versions]})
    if export_format == "csv":
        return _csv(versions)
    assert registry_url is not None  # create() refuses a PDF export without it
    return render_export_pdf(title=_title(scope, versions), scope=scope.describe(),
                             exported_at=created_at, export_path=path, versions=versions,
                             registry_url=registry_url)


def _title(scope: ExportScope, versions: list[PublishedVersion]) -> str:
    """The export's title: the declaration's own title, or what the scope selected."""
    first = versions[0].document()
    if scope.declaration and versions[0].kind == DECLARATION.name:
        return str(first.get("title", "TECH7 declaration"))
    if scope.priority is not None and versions[0].kind == PRIORITY.name:
        return f"TECH7 key priority {scope.priority}: {first.get('title', '')}"
    if scope.association is not None:
        return f"TECH7 member association {first.get('name', scope.association)}"
    return f"TECH7 registry export of {len(versions)} document version" + \
        ("s" if len(versions) != 1 else "")


def _csv(versions: list[PublishedVersion]) -> bytes:
    """One RFC 4180 row per version under a header row; paragraphs joined by blank lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for version in versions:
        document = version.document()
        writer.writerow([version.kind, version.slug, version.number,
                         isoformat(version.published_at), version.sha256,
                         document.get("title") or document.get("name") or "",
                         "\n\n".join(_text_of(document))])
    return buffer.getvalue().encode("utf-8")


def _text_of(document: dict[str, Any]) -> list[str]:
    """A document's running text: its paragraphs, or the declaration's preamble and sections."""
    text = document.get("text")
    if isinstance(text, list):
        return [str(paragraph) for paragraph in text]
    paragraphs = [str(p) for p in document.get("preamble", [])]
    for section in [*document.get("sections", []), document.get("call_to_action")]:
        if isinstance(section, dict):
            paragraphs += [str(section.get("heading", "")),
                           *(str(p) for p in section.get("paragraphs", []))]
    return paragraphs


def _stored(row: Export) -> StoredExport:
    return StoredExport(id=row.id, format=row.format, scope=json.loads(row.scope),
                        media_type=row.media_type, content=row.content, sha256=row.sha256,
                        manifest=row.manifest, manifest_sha256=row.manifest_sha256,
                        manifest_label=row.manifest_label,
                        versions=tuple(json.loads(row.versions)), created_at=row.created_at,
                        created_by=row.created_by, log_index=row.log_index)
