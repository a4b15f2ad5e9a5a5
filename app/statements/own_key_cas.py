"""Own-key publishing, first half: the association CA certificates that vouch for it.

An association registers its own CA certificate; an operator approves it, and the approval is
logged (type ``ca-approval``). From then on that CA's certificates may sign the association's
own-key versions (:mod:`app.statements.own_key_intake`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session
from tech7_audit.manifests import certificate_sha256
from tech7_audit.times import isoformat

from app.access.policy import may_approve_ca, may_publish_as
from app.access.principal import Principal
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidRequest, NotFound
from app.pki.models import AssociationCA
from app.publishing.service import PublishingService

PENDING, APPROVED = "pending", "approved"


class InvalidCACertificate(InvalidRequest):
    """The upload is not one usable CA certificate of the association's own."""

    problem = "invalid-ca-certificate"
    title = "Not a usable CA certificate"


class CAAlreadyRegistered(Conflict):
    """This CA certificate is registered already."""

    problem = "ca-already-registered"
    title = "The CA certificate is already registered"


class CAAlreadyApproved(Conflict):
    """The CA certificate was approved before; an approval is logged once."""

    problem = "ca-already-approved"
    title = "The CA certificate is already approved"


class UnknownCA(NotFound):
    """The association has no registered CA certificate with this SHA-256."""

    problem = "unknown-ca"
    title = "Unknown CA certificate"


@dataclass(frozen=True)
class CARecord:
    """An association's CA certificate as the registry publishes it."""

    sha256: str
    association: str
    pem: str
    registered_at: datetime
    approved_at: datetime | None
    log_index: int | None

    @property
    def status(self) -> str:
        """``approved`` once an operator approved it, else ``pending``."""
        return PENDING if self.approved_at is None else APPROVED

    @property
    def path(self) -> str:
        """The path of this record, which is also the subject of its approval's log entry."""
        return ca_path(self.association, self.sha256)

    def certificate(self) -> x509.Certificate:
        """The CA certificate, parsed."""
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))


def ca_path(association: str, sha256: str) -> str:
    """The URL path of an association's CA certificate."""
    return f"/v1/associations/{association}/ca/{sha256}"


class OwnKeyCAs:
    """Associations' own CA certificates: registered, approved by an operator, listed.

    Holds no state of its own: everything lives in the publishing service's database, log and
    key ring.
    """

    def __init__(self, publishing: PublishingService):
        self.publishing = publishing
        self.db = publishing.db
        self.log = publishing.log
        self.provenance = publishing.provenance

    def register_ca(self, association: str, pem: bytes, *, registrant: Principal) -> CARecord:
        """Record ``association``'s own CA certificate, pending approval by an operator; only the
        association itself registers one (403 otherwise).

        Raises :class:`InvalidCACertificate` (422) unless ``pem`` is exactly one currently valid
        CA certificate that is not the registry's own, and :class:`CAAlreadyRegistered` (409)
        when it is registered already.
        """
        may_publish_as(registrant, association)
        self.publishing.require_association(association)
        certificate = self._acceptable_ca(pem)
        sha256 = certificate_sha256(certificate)
        with self.db.write() as session:
            if session.get(AssociationCA, sha256) is not None:
                raise CAAlreadyRegistered(f"The CA certificate {sha256} is registered already.")
            row = AssociationCA(
                sha256=sha256, association=association,
                pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                registered_at=utcnow(), registered_by=registrant.name)
            session.add(row)
            session.flush()
            return _record(row, None)

    def approve_ca(self, association: str, sha256: str, *, approver: Principal) -> CARecord:
        """Approve a pending CA certificate and log the approval, in one transaction.

        Only an operator approves (403 otherwise). The log entry (type ``ca-approval``) names the
        association and the CA's SHA-256, so an auditor can tell from the log alone which CA
        vouched for an association's own-key versions, and since when.
        """
        may_approve_ca(approver)
        now = utcnow()
        with self.db.registry_transaction() as session:
            row = self._row(session, association, sha256)
            if row.approved_at is not None:
                raise CAAlreadyApproved(f"The CA certificate {sha256} was approved at "
                                        f"{isoformat(row.approved_at)}.")
            certificate = x509.load_pem_x509_certificate(row.pem.encode("ascii"))
            entry = self.log.append(session, {
                "type": "ca-approval", "subject": ca_path(association, sha256),
                "association": association, "signer_certificate_sha256": sha256,
                "not_before": isoformat(certificate.not_valid_before_utc),
                "not_after": isoformat(certificate.not_valid_after_utc),
                "time": isoformat(now)})
            row.approved_at = now
            row.approved_by = approver.name
            session.flush()
            return _record(row, entry.index)

    def cas(self, association: str) -> list[CARecord]:
        """Every CA certificate ``association`` registered, in registration order."""
        self.publishing.require_association(association)
        with self.db.sessions() as session:
            rows = session.scalars(sa.select(AssociationCA)
                                   .where(AssociationCA.association == association)
                                   .order_by(AssociationCA.registered_at,
                                             AssociationCA.sha256)).all()
        return [_record(row, self._approval_index(row)) for row in rows]

    def ca(self, association: str, sha256: str) -> CARecord:
        """One CA certificate of ``association``; :class:`UnknownCA` if it has none such."""
        with self.db.sessions() as session:
            row = self._row(session, association, sha256)
        return _record(row, self._approval_index(row))

    # -- helpers ------------------------------------------------------------------------------

    def _acceptable_ca(self, pem: bytes) -> x509.Certificate:
        try:
            certificates = x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise InvalidCACertificate("The body is not a PEM certificate.") from None
        if len(certificates) != 1:
            raise InvalidCACertificate(f"Send exactly one CA certificate, not "
                                       f"{len(certificates)}.")
        certificate = certificates[0]
        try:
            constraints = _extension(certificate, x509.BasicConstraints)
            usage = _extension(certificate, x509.KeyUsage)
        except ValueError as error:  # cryptography parses extensions lazily
            raise InvalidCACertificate(f"The certificate's extensions are malformed: "
                                       f"{error}") from None
        # RFC 5280 §4.2.1.9 and §4.2.1.3: only a certificate with cA true and keyCertSign may
        # issue the certificates the association signs with.
        if constraints is None or not constraints.ca or usage is None or not usage.key_cert_sign:
            raise InvalidCACertificate("This is not a CA certificate: it needs BasicConstraints "
                                       "cA true and KeyUsage keyCertSign.")
        now = utcnow()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise InvalidCACertificate(
                f"The CA certificate is valid from {isoformat(certificate.not_valid_before_utc)} "
                f"to {isoformat(certificate.not_valid_after_utc)}, not now.")
        keys = self.provenance.keyring.store
        for registry_ca in (keys.root_ca_certificate, keys.issuing_ca_certificate):
            if certificate == registry_ca or _issued_by(certificate, registry_ca):
                raise InvalidCACertificate("This CA belongs to the registry's own PKI; bring a "
                                           "CA of your own.")
        if certificate.issuer == certificate.subject and not _issued_by(certificate, certificate):
            raise InvalidCACertificate("The self-signed CA certificate's signature does not "
                                       "verify.")
        return certificate

    @staticmethod
    def _row(session: Session, association: str, sha256: str) -> AssociationCA:
        row = session.get(AssociationCA, sha256)
        if row is None or row.association != association:
            raise UnknownCA(f"{association} has no CA certificate with SHA-256 {sha256}.")
        return row

    def _approval_index(self, row: AssociationCA) -> int | None:
        if row.approved_at is None:
            return None
        entries = self.log.entries_for_subject(ca_path(row.association, row.sha256))
        return next((e.index for e in entries if e.entry_type == "ca-approval"), None)


def _record(row: AssociationCA, log_index: int | None) -> CARecord:
    return CARecord(sha256=row.sha256, association=row.association, pem=row.pem,
                    registered_at=row.registered_at, approved_at=row.approved_at,
                    log_index=log_index)


def _extension(certificate: x509.Certificate, extension: type[x509.ExtensionType]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(extension).value
    except x509.ExtensionNotFound:
        return None


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
