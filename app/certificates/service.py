"""The registry's record of its signing certificates and their revocations.

The key folder is where certificates are issued (:mod:`app.pki.authority`); this service is where
they become public facts. Every signing certificate in the folder — the current signers and the
retired ones under ``signers/retired/`` — is recorded once, with a ``certificate-issue`` entry in
the transparency log, and a revocation is a ``revocation`` entry plus an append-only row. Both
tables refuse UPDATE and DELETE in the database itself, so a revocation can never be taken back or
backdated after the fact: its log entry fixes what was said and when.

A revocation carries the time from which the certificate is no longer trusted (RFC 5280 §5.3.2
calls the corresponding notion the invalidity date): a manifest signed at or after that time
verifies as revoked, one signed before it stays good, because its RFC 3161 timestamp proves when
it was signed.

``keys rotate`` and ``keys revoke`` run in a process of their own while the server's workers keep
the key folder loaded. What they change lands in these two tables, so the newest row of each is
the *key generation*: every worker compares it with the one its keys were loaded under before it
signs or serves the trust list (one small query), and reads the folder again when it moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session
from tech7_audit.manifests import certificate_sha256
from tech7_audit.times import isoformat

from app.core.db import Database, utcnow
from app.core.errors import Conflict, InvalidRequest, NotFound
from app.ledger.service import TransparencyLog

# The key folder's layout belongs to authority.py; its readers raise KeyMaterialError naming the
# bad file, which is what an operator needs when a retired certificate is unreadable.
from app.pki.authority import _RETIRED, _SIGNERS, KeyMaterialError, KeyStore, _check_issued_by, _read_certificate
from app.pki.keyring import REGISTRY_SIGNER, Keyring
from app.pki.models import AssociationCA, Revocation, SigningCertificate

#: RFC 5280 §5.3.1 CRLReason names a registry signing certificate may be revoked for. The CA
#: reasons (cACompromise, aACompromise) do not apply to an end-entity certificate, and
#: certificateHold / removeFromCRL describe a suspension that is later lifted, which an
#: append-only record of revocations cannot express.
REVOCATION_REASONS = ("keyCompromise", "superseded", "cessationOfOperation",
                      "affiliationChanged", "unspecified")

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class UnknownCertificate(NotFound):
    """No recorded signing certificate has this SHA-256, and no signer has this name."""

    problem = "unknown-certificate"
    title = "Unknown signing certificate"


class CertificateAlreadyRevoked(Conflict):
    """The certificate was revoked before; a revocation is final and is never restated."""

    problem = "certificate-already-revoked"
    title = "The certificate is already revoked"


@dataclass(frozen=True)
class CertificateStatus:
    """What the registry says about a signing certificate for a manifest signed at some time.

    ``revoked`` is True when the certificate has a revocation and the manifest was signed at or
    after ``revoked_at`` (or its signing time is unknown). An unknown certificate has
    ``known=False`` and every other field empty.
    """

    known: bool
    signer: str | None
    association: str | None
    not_before: datetime | None
    not_after: datetime | None
    revoked_at: datetime | None
    reason: str | None
    revoked: bool


@dataclass(frozen=True)
class RevocationRecord:
    """A revocation as published in the trust list."""

    certificate_sha256: str
    signer: str
    revoked_at: datetime
    reason: str
    log_index: int


@dataclass(frozen=True)
class CertificateRecord:
    """A recorded signing certificate, with its revocation if it has one."""

    sha256: str
    signer: str
    association: str | None
    serial_number: str
    not_before: datetime
    not_after: datetime
    pem: str
    recorded_at: datetime
    log_index: int
    revocation: RevocationRecord | None

    @property
    def path(self) -> str:
        """The URL path of the certificate's record, which its log entries name as subject."""
        return certificate_path(self.sha256)

    def certificate(self) -> x509.Certificate:
        """The certificate itself, parsed from its PEM."""
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))

    def status_at(self, moment: datetime) -> str:
        """``revoked`` once revoked, else ``expired`` after ``not_after``, else ``valid``."""
        if self.revocation is not None:
            return "revoked"
        return "expired" if moment > self.not_after else "valid"


def certificate_path(sha256: str) -> str:
    """The URL path of a certificate's record, which its log entries name as their subject."""
    return f"/v1/trust/certificates/{sha256}"


def association_of(signer: str) -> str | None:
    """The association a signer signs for: every signer but the registry's own is named after
    the association slug it was issued to (:func:`app.pki.keyring.signer_names_from_seed`)."""
    return None if signer == REGISTRY_SIGNER else signer


class CertificateService:
    """Records the key folder's signing certificates and their revocations in the log."""

    def __init__(self, db: Database, keyring: Keyring, log: TransparencyLog):
        self.db = db
        self.keyring = keyring
        self.log = log

    # -- associations' own CAs --------------------------------------------------------------

    @staticmethod
    def approved_ca_pem(session: Session, association: str) -> bytes:
        """The PEM certificates of ``association``'s approved CAs, concatenated (empty if none).

        These are the anchors the registry checks an own-key version against when it accepts
        it, so every later check of that version (as the parent of the next one, or as an
        export's ingredient) trusts them too, and only for that association's versions.
        """
        return b"".join(pem.encode("ascii") for pem in session.scalars(
            sa.select(AssociationCA.pem).where(AssociationCA.association == association,
                                               AssociationCA.approved_at.is_not(None))
            .order_by(AssociationCA.sha256)))

    # -- the current keys ----------------------------------------------------------------------

    def key_generation(self, session: Session | None = None) -> tuple[int | None, int | None]:
        """The recorded signing-key state: the log indices of the newest recorded certificate
        and of the newest revocation (None while there is none).

        Both tables are append-only and every rotation or revocation adds a row to one of them,
        so the pair changes exactly when a signer's current certificate or its standing may have.
        One query on two unique indexes; ``session`` is the caller's, or a new one.
        """
        query = sa.select(sa.select(sa.func.max(SigningCertificate.log_index)).scalar_subquery(),
                          sa.select(sa.func.max(Revocation.log_index)).scalar_subquery())
        if session is not None:
            return tuple(session.execute(query).one())
        with self.db.sessions() as own:
            return tuple(own.execute(query).one())

    def current_keys(self, session: Session | None = None) -> KeyStore:
        """The key folder as the database says it is now: read again if another process (``keys
        rotate``, ``keys revoke``) changed the key state since this one loaded it."""
        return self.keyring.refresh(self.key_generation(session))

    def current_status(self, session: Session, signer: str) -> CertificateStatus:
        """The standing of the certificate ``signer`` signs with from now on, recorded before
        anything is signed with it.

        Runs in the caller's transaction, which holds the registry lock
        (:func:`~app.core.db.lock_head`), so it sees every rotation and revocation committed
        before it. A certificate found in the folder but not yet recorded (its ``keys rotate``
        is between writing the files and recording them) is recorded here, so that no manifest
        names a certificate the log has not announced. ``KeyError`` if there is no such signer.
        """
        sha256 = certificate_sha256(self.current_keys(session).signer_certificate(signer))
        # One query answers both questions: is it recorded, and is it revoked.
        status = self.status(sha256, None, session)
        if not status.known:
            self.sync(session)
            status = self.status(sha256, None, session)
        return status

    # -- writes --------------------------------------------------------------------------------

    def sync(self, session: Session) -> list[SigningCertificate]:
        """Record every signing certificate in the key folder that is not recorded yet.

        Runs inside the caller's transaction, which must hold the registry lock
        (:func:`~app.core.db.lock_head`). Each new certificate gets a
        ``certificate-issue`` log entry; they are recorded oldest first (by ``not_before``), so
        a rotated-out certificate precedes its successor in the log. Returns the new rows.
        Raises :class:`~app.pki.authority.KeyMaterialError` when a retired certificate cannot be
        read or was not issued by the registry's issuing CA.
        """
        store = self.keyring.store
        in_folder = [(name, store.signer_certificate(name)) for name in store.signer_names()]
        in_folder += _retired_certificates(store.directory, store.issuing_ca_certificate)
        found = {certificate_sha256(cert): (name, cert) for name, cert in in_folder}
        recorded = set(session.scalars(sa.select(SigningCertificate.sha256)
                                       .where(SigningCertificate.sha256.in_(list(found)))))
        new = sorted((item for sha256, item in found.items() if sha256 not in recorded),
                     key=lambda item: (item[1].not_valid_before_utc, item[0]))
        rows = [self._record_certificate(session, name, cert) for name, cert in new]
        session.flush()
        return rows

    def sync_now(self) -> list[SigningCertificate]:
        """:meth:`sync` in a transaction of its own (after ``keys rotate``, for instance)."""
        with self.db.registry_transaction() as session:
            return self.sync(session)

    def revoke(self, sha256_or_signer_name: str, reason: str, at: datetime | None = None
               ) -> Revocation:
        """Revoke a signing certificate from ``at`` (default: now) on, in one transaction.

        ``sha256_or_signer_name`` is a certificate's SHA-256 (any recorded certificate, retired
        ones included) or a signer's name (its current certificate). ``reason`` is one of
        :data:`REVOCATION_REASONS`. ``at`` must be timezone-aware and not in the future: a
        revocation states a fact, it does not schedule one. The key folder is synced first, so a
        current certificate not yet recorded can be revoked too; its ``certificate-issue`` entry
        then precedes the ``revocation`` entry. Raises :class:`~app.core.errors.InvalidRequest`,
        :class:`UnknownCertificate` (404) or :class:`CertificateAlreadyRevoked` (409), having
        written nothing.
        """
        if reason not in REVOCATION_REASONS:
            raise InvalidRequest(f"{reason!r} is not a revocation reason; use one of "
                                 f"{', '.join(REVOCATION_REASONS)} (RFC 5280 §5.3.1).")
        now = utcnow()
        revoked_at = now if at is None else _millisecond_utc(at)
        if revoked_at > now:
            raise InvalidRequest(f"The revocation time {isoformat(revoked_at)} is in the future; "
                                 f"a revocation takes effect now or at a past instant.")
        with self.db.registry_transaction() as session:
            # A signer's name means its certificate now, whoever rotated it last.
            self.current_keys(session)
            self.sync(session)
            sha256 = self._resolve(sha256_or_signer_name)
            certificate = session.get(SigningCertificate, sha256)
            if certificate is None:
                raise UnknownCertificate(f"No recorded signing certificate has SHA-256 {sha256}.")
            earlier = session.get(Revocation, certificate.sha256)
            if earlier is not None:
                raise CertificateAlreadyRevoked(
                    f"The certificate {certificate.sha256} of {certificate.signer} was revoked "
                    f"at {isoformat(earlier.revoked_at)} ({earlier.reason}).",
                    revoked_at=isoformat(earlier.revoked_at), reason=earlier.reason)
            entry = self.log.append(session, {
                "type": "revocation", "subject": certificate_path(certificate.sha256),
                "signer": certificate.signer, "association": association_of(certificate.signer),
                "signer_certificate_sha256": certificate.sha256, "reason": reason,
                "revoked_at": isoformat(revoked_at), "time": isoformat(now)})
            revocation = Revocation(certificate_sha256=certificate.sha256, revoked_at=revoked_at,
                                    reason=reason, log_index=entry.index)
            session.add(revocation)
            session.flush()
            return revocation

    # -- reads ---------------------------------------------------------------------------------

    def status(self, certificate_sha256: str, signed_at: datetime | None,
               session: Session | None = None) -> CertificateStatus:
        """The standing of a certificate for a manifest signed at ``signed_at``.

        ``signed_at`` is the manifest's trusted (RFC 3161) signing time, timezone-aware, or None
        when it is unknown, in which case any revocation counts. A manifest signed exactly at
        ``revoked_at`` is revoked. ``session`` is the caller's (a writer holding the registry
        lock asks in its own transaction), or a new one.
        """
        if signed_at is not None and signed_at.tzinfo is None:
            raise ValueError("signed_at must be timezone-aware")
        query = _certificates_query().where(SigningCertificate.sha256 == certificate_sha256)
        if session is not None:
            row = session.execute(query).one_or_none()
        else:
            with self.db.sessions() as own:
                row = own.execute(query).one_or_none()
        if row is None:
            return CertificateStatus(known=False, signer=None, association=None,
                                     not_before=None, not_after=None, revoked_at=None,
                                     reason=None, revoked=False)
        certificate, revocation = row
        revoked = revocation is not None and (signed_at is None
                                              or signed_at >= revocation.revoked_at)
        return CertificateStatus(
            known=True, signer=certificate.signer, association=association_of(certificate.signer),
            not_before=certificate.not_before, not_after=certificate.not_after,
            revoked_at=revocation.revoked_at if revocation else None,
            reason=revocation.reason if revocation else None, revoked=revoked)

    def certificates(self) -> list[CertificateRecord]:
        """Every recorded signing certificate, in the order the log recorded them."""
        with self.db.sessions() as session:
            rows = session.execute(_certificates_query()
                                   .order_by(SigningCertificate.log_index)).all()
        return [_certificate_record(*row) for row in rows]

    def certificate(self, sha256: str) -> CertificateRecord:
        """One recorded certificate by its SHA-256; :class:`UnknownCertificate` if there is none."""
        with self.db.sessions() as session:
            row = session.execute(_certificates_query()
                                  .where(SigningCertificate.sha256 == sha256)).one_or_none()
        if row is None:
            raise UnknownCertificate(f"No signing certificate with SHA-256 {sha256} was issued "
                                     f"by this registry.")
        return _certificate_record(*row)

    # -- helpers -------------------------------------------------------------------------------

    def _record_certificate(self, session: Session, signer: str, cert: x509.Certificate
                ) -> SigningCertificate:
        sha256 = certificate_sha256(cert)
        now = utcnow()
        serial_number = format(cert.serial_number, "x")
        entry = self.log.append(session, {
            "type": "certificate-issue", "subject": certificate_path(sha256),
            "association": association_of(signer), "signer": signer,
            "signer_certificate_sha256": sha256, "serial_number": serial_number,
            "not_before": isoformat(cert.not_valid_before_utc),
            "not_after": isoformat(cert.not_valid_after_utc), "time": isoformat(now)})
        row = SigningCertificate(
            sha256=sha256, signer=signer, serial_number=serial_number,
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
            pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            recorded_at=now, log_index=entry.index)
        session.add(row)
        return row

    def _resolve(self, sha256_or_signer_name: str) -> str:
        """The SHA-256 a revocation names: given as such, or the signer's current certificate."""
        if _SHA256_HEX.fullmatch(sha256_or_signer_name.lower()):
            return sha256_or_signer_name.lower()
        try:
            return certificate_sha256(self.keyring.store.signer_certificate(sha256_or_signer_name))
        except KeyError:
            raise UnknownCertificate(f"{sha256_or_signer_name!r} is neither a signer's name nor "
                                     f"a certificate's SHA-256.") from None


def _retired_certificates(directory: Path, issuing_ca: x509.Certificate
                          ) -> list[tuple[str, x509.Certificate]]:
    """(signer, certificate) of every retired signer, from ``signers/retired/<name>-<serial>.pem``
    as :func:`~app.pki.authority.rotate_signer` leaves them; each must chain to ``issuing_ca``."""
    retired = []
    for path in sorted((directory / _SIGNERS / _RETIRED).glob("*.pem")):
        # The serial is hex and has no '-', so the last '-' ends the name ("generative-ai-japan").
        name, _, serial = path.stem.rpartition("-")
        cert = _read_certificate(path)
        if not name or serial != format(cert.serial_number, "x"):
            raise KeyMaterialError(path, "name is not <signer>-<serial hex> of the certificate")
        _check_issued_by(path, cert, issuing_ca)
        retired.append((name, cert))
    return retired


def _millisecond_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, truncated to milliseconds like every stored time (:func:`utcnow`), so
    the revocation time in the log and in the database are the same instant."""
    if moment.tzinfo is None:
        raise InvalidRequest("The revocation time needs a UTC offset (e.g. 2025-02-10T12:00:00Z).")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _certificates_query() -> sa.Select:
    return sa.select(SigningCertificate, Revocation).outerjoin(
        Revocation, Revocation.certificate_sha256 == SigningCertificate.sha256)


def _certificate_record(certificate: SigningCertificate, revocation: Revocation | None
                        ) -> CertificateRecord:
    return CertificateRecord(
        sha256=certificate.sha256, signer=certificate.signer,
        association=association_of(certificate.signer),
        serial_number=certificate.serial_number, not_before=certificate.not_before,
        not_after=certificate.not_after, pem=certificate.pem,
        recorded_at=certificate.recorded_at, log_index=certificate.log_index,
        revocation=None if revocation is None else RevocationRecord(
            certificate_sha256=certificate.sha256, signer=certificate.signer,
            revoked_at=revocation.revoked_at, reason=revocation.reason,
            log_index=revocation.log_index))
