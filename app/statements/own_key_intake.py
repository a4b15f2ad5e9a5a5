"""Own-key publishing, second half: the intake of statement versions an association signs with
its own key.

Once an operator approved one of its CA certificates (:mod:`app.statements.own_key_cas`), an
association may upload a version of one of its statements as the exact RFC 8785 bytes the
registry will serve, with a C2PA sidecar manifest it made with a key the registry never sees.
The registry checks, in this order, and writes nothing unless every check holds (each refusal
is a 422 problem whose ``check`` member names the check that failed):

``canonical``
    the bytes are JSON in RFC 8785 canonical form;
``body`` / ``version`` / ``published_at``
    they are exactly the statement version the registry would serve for their content: kind,
    slug and association from the URL, the next version number, a publication time within
    :data:`PUBLISHED_AT_TOLERANCE` of now and after the previous version's, valid content whose
    addressed recommendations exist;
``binding``
    the manifest's ``c2pa.hash.data`` hard binding covers exactly these bytes;
``signer``
    its signing certificate chains to one of *that* association's approved CAs;
``timestamp``
    it carries a trusted RFC 3161 timestamp (from the registry's ``POST /v1/timestamp`` or from
    an authority chaining to the association's CA);
``identity``
    its ``org.tech7.document`` assertion names this document, version, SHA-256 and association;
``parent``
    every version after the first has a ``parentOf`` ingredient (version 1 has none) that names
    the previous version exactly: by its SHA-256,
    its manifest's SHA-256 and its log entry's inclusion proof in an ``org.tech7.parent-proof``
    assertion (the bounded form), or by embedding its manifest, which reads Trusted (the older
    form);
``trusted``
    and the manifest as a whole reads Trusted.

The checks run inside publishing's own path, in one transaction that holds the registry lock:
:meth:`~app.publishing.service.PublishingService.next_version` reads the previous version once,
and :meth:`~app.publishing.service.PublishingService.append_version` stores and logs the
version exactly as one the registry signs, with the content these checks validated.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import marshmallow as ma
from sqlalchemy.orm import Session
from tech7_audit.history import check_parent_link
from tech7_audit.manifests import UNREADABLE, ManifestReport, read_manifest
from tech7_audit.times import isoformat
from tech7_audit.verification import VerificationFailure

from app.access.policy import may_publish_as
from app.access.principal import Principal
from app.core.canonical import canonical_bytes, strict_loads
from app.core.db import utcnow
from app.core.errors import InvalidJSON, InvalidRequest
from app.provenance.service import JSON, SignedManifest
from app.publishing.models import Version
from app.publishing.service import (
    PublishedVersion,
    PublishingService,
    published_version,
    version_identity,
)
from app.statements.kinds import STATEMENT

#: How far the publication time an own-key version states may be from the registry's clock.
PUBLISHED_AT_TOLERANCE = timedelta(minutes=10)

# C2PA 2.2 §15.2 success codes: the hard binding matched, and the signing credential chains to a
# trust anchor.
_BINDING_MATCHED = "assertion.dataHash.match"
_CREDENTIAL_TRUSTED = "signingCredential.trusted"


class OwnKeyVersionRefused(InvalidRequest):
    """An uploaded own-key version failed one of the registry's checks; nothing was written."""

    problem = "own-key-version-refused"
    title = "The own-key version was refused"

    def __init__(self, check: str, detail: str, **extensions: Any):
        super().__init__(detail, check=check, **extensions)


class OwnKeyIntake:
    """Versions associations sign with their own keys, checked and published.

    Holds no state of its own: everything lives in the publishing service's database, log and
    key ring.
    """

    def __init__(self, publishing: PublishingService):
        self.publishing = publishing
        self.db = publishing.db
        self.log = publishing.log
        self.provenance = publishing.provenance

    def publish_own_key_version(self, association: str, slug: str, document: bytes,
                                manifest: bytes, *, publisher: Principal) -> PublishedVersion:
        """Publish ``document``, signed by ``association`` with ``manifest``, as the next version
        of its statement ``slug`` (creating the statement at version 1).

        Runs the checks of this module's docstring in order and raises
        :class:`OwnKeyVersionRefused` naming the first that fails, having written nothing.
        """
        may_publish_as(publisher, association)
        self.publishing.require_association(association)
        parsed = _canonical_json(document)
        stored_slug = STATEMENT.owned_slug(association, slug)
        with self.db.registry_transaction() as session:
            target = self.publishing.next_version(session, STATEMENT, stored_slug,
                                                  association=association)
            content, published_at = _statement_version(session, parsed, document,
                                                       association=association, slug=slug,
                                                       number=target.number,
                                                       previous=target.previous)
            signed = self._verify_manifest(session, document, manifest, association=association,
                                           stored_slug=stored_slug, number=target.number,
                                           previous=target.previous)
            version = self.publishing.append_version(session, STATEMENT, target, content,
                                                     publisher=publisher.name, signed=signed,
                                                     published_at=published_at)
            # From the transaction that wrote it: a request's writes commit only once its
            # answer is known (app.http.activity), so another session would not see it yet.
            return published_version(STATEMENT, stored_slug, version)

    def _verify_manifest(self, session: Session, document: bytes, manifest: bytes, *,
                         association: str, stored_slug: str, number: int,
                         previous: Version | None) -> SignedManifest:
        """The checks from ``binding`` on; returns what the log and the version row record."""
        own_anchors = self.publishing.certificates.approved_ca_pem(session, association)
        # Read with the association's CAs plus the registry's root: the root is there only so
        # that a timestamp from the registry's own authority can be trusted. Because the root
        # also anchors every registry-issued signing certificate, who signed is decided by a
        # second read below with the association's CAs alone.
        report = read_manifest(document, JSON, manifest,
                               trust_anchors_pem=own_anchors + self.provenance.trust_anchors_pem)
        if UNREADABLE in report.codes or _BINDING_MATCHED not in report.success_codes:
            raise OwnKeyVersionRefused("binding", "The manifest's hard binding does not cover "
                                       "exactly these bytes" + _why(report) + ".",
                                       codes=list(report.codes))
        if not own_anchors:
            raise OwnKeyVersionRefused("signer", f"{association} has no approved CA certificate: "
                                       f"register one at /v1/associations/{association}/ca and "
                                       f"have an operator approve it.")
        own = read_manifest(document, JSON, manifest, trust_anchors_pem=own_anchors)
        # Only the signing credential is judged here: without the registry's root, a timestamp
        # from its authority and a parent the registry signed cannot read trusted.
        signer = report.signer_certificate_sha256
        if _CREDENTIAL_TRUSTED not in own.success_codes or signer is None \
                or own.signer_certificate_sha256 != signer:
            raise OwnKeyVersionRefused("signer", f"The manifest's signing certificate does not "
                                       f"chain to an approved CA certificate of {association}; "
                                       f"a certificate the registry issued does not count.")
        if not report.timestamp_trusted:
            raise OwnKeyVersionRefused("timestamp", "The manifest has no trusted RFC 3161 "
                                       "timestamp; sign with tsa_url set to the registry's "
                                       "/v1/timestamp (or an authority chaining to your CA).")
        sha256 = hashlib.sha256(document).hexdigest()
        expected = version_identity(STATEMENT, stored_slug, number, sha256, association)
        if report.identity != expected:
            raise OwnKeyVersionRefused("identity", "The manifest's org.tech7.document assertion "
                                       "does not name this version.", expected=expected,
                                       found=report.identity)
        _check_parent(report, previous, self.log.verifier_key)
        if not report.trusted:
            raise OwnKeyVersionRefused("trusted", f"The manifest reads {report.state}"
                                       + _why(report) + ".", codes=list(report.codes))
        return SignedManifest(manifest=manifest, sha256=hashlib.sha256(manifest).hexdigest(),
                              label=report.label or "", signer=association,
                              signer_certificate_sha256=signer, signed_at=report.signed_at)


def _canonical_json(document: bytes) -> Any:
    """The parsed bytes, if they are JSON in RFC 8785 canonical form (check ``canonical``)."""
    try:
        parsed = strict_loads(document)
    except InvalidJSON as error:
        raise OwnKeyVersionRefused("canonical", f"The document is not JSON that RFC 8785 can "
                                   f"canonicalise: {error.detail}") from None
    if canonical_bytes(parsed) != document:
        raise OwnKeyVersionRefused("canonical", "The document is not in RFC 8785 canonical "
                                   "form; send rfc8785.dumps(body) exactly.")
    return parsed


def _statement_version(session: Session, parsed: Any, document: bytes, *, association: str,
                       slug: str, number: int, previous: Version | None
                       ) -> tuple[dict[str, Any], datetime]:
    """Checks ``body``, ``version`` and ``published_at``; returns (content, published_at)."""
    if not isinstance(parsed, dict):
        raise OwnKeyVersionRefused("body", "The document must be a JSON object.")
    for field, expected in (("kind", STATEMENT.name), ("slug", slug),
                            ("association", association)):
        if parsed.get(field) != expected:
            raise OwnKeyVersionRefused("body", f"The document's {field} is "
                                       f"{parsed.get(field)!r}; this URL publishes "
                                       f"{expected!r}.")
    version = parsed.get("version")
    if type(version) is not int or version != number:
        raise OwnKeyVersionRefused("version", f"The document's version is {version!r}; the next "
                                   f"version of this statement is {number}.", expected=number)
    published_at = _published_at(parsed.get("published_at"), previous)
    try:
        content = STATEMENT.load_content(parsed)
    except ma.ValidationError as error:
        raise OwnKeyVersionRefused("body", "The statement content failed validation.",
                                   errors={"json": error.messages}) from None
    assert STATEMENT.check_references is not None  # statements address recommendations
    try:
        STATEMENT.check_references(session, content)
    except InvalidRequest as error:
        raise OwnKeyVersionRefused("body", error.detail, **error.extensions) from None
    served = STATEMENT.served_body(STATEMENT.owned_slug(association, slug), number,
                                   isoformat(published_at), content)
    if canonical_bytes(served) != document:
        # Fields left out (such as withdrawn: false), or extra ones: the registry serves every
        # version of a kind in one shape, the one its JSON Schema describes.
        differing = sorted(key for key in served.keys() | parsed.keys()
                           if served.get(key, ...) != parsed.get(key, ...))
        raise OwnKeyVersionRefused("body", f"The document is not the version as the registry "
                                   f"serves it; these fields differ: {', '.join(differing)}.",
                                   fields=differing)
    return content, published_at


def _published_at(value: Any, previous: Version | None) -> datetime:
    """The document's publication time, if it is well-formed and plausible (``published_at``)."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or isoformat(moment) != value:
        raise OwnKeyVersionRefused("published_at", f"published_at {value!r} is not RFC 3339 UTC "
                                   f"with milliseconds, e.g. {isoformat(utcnow())}.")
    now = utcnow()
    if abs(moment - now) > PUBLISHED_AT_TOLERANCE:
        raise OwnKeyVersionRefused("published_at", f"published_at {value} is more than "
                                   f"{PUBLISHED_AT_TOLERANCE} away from the registry's clock "
                                   f"({isoformat(now)}).")
    if previous is not None and moment <= previous.published_at:
        raise OwnKeyVersionRefused("published_at", f"published_at {value} is not after version "
                                   f"{previous.number}'s ({isoformat(previous.published_at)}).")
    return moment


def _check_parent(report: ManifestReport, previous: Version | None, verifier_key: str) -> None:
    """Every version after the first links its parent, and the link must name the previous
    version exactly: in the bounded form by its hashes and its log entry's inclusion proof, in
    the older one by embedding its manifest, Trusted
    (:func:`~tech7_audit.history.check_parent_link`). Without a link, the document's history
    could never be audited as one chain, and versions are immutable."""
    names_a_parent = any(i.relationship == "parentOf" for i in report.ingredients) \
        or report.parent_proof is not None
    if previous is None:
        if names_a_parent:
            raise OwnKeyVersionRefused("parent", "Version 1 has no previous version, but the "
                                       "manifest names a parent.")
        return
    try:
        check_parent_link(report, number=previous.number, sha256=previous.sha256,
                          manifest_sha256=previous.manifest_sha256,
                          manifest_label=previous.manifest_label, verifier_key=verifier_key)
    except VerificationFailure as failure:
        raise OwnKeyVersionRefused("parent", f"The manifest's parent link fails: "
                                   f"{failure.reason}.") from None


def _why(report: ManifestReport) -> str:
    if report.error:
        return f" ({report.error})"
    return f" ({', '.join(report.codes)})" if report.codes else ""
