"""Verifying an uploaded document against the registry: its manifest, its log entry, its
certificate's standing.

The checks are those of :mod:`tech7_audit.verification`, which the offline ``tech7-audit`` command
runs too; here the registry supplies what an auditor would bring: its trust anchors (with the
approved CAs of an association that signs with its own key), the log entry recording the file
(found by the file's SHA-256), the *current* signed checkpoint with an inclusion proof in it, and
the certificate's revocation status. Nothing is written and nothing is fetched over the network.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import c2pa
import sqlalchemy as sa
from tech7_audit.manifests import INVALID, TRUSTED, VALID, ManifestReport, verification_context
from tech7_audit.pipeline import LoggedRecord, run_checks
from tech7_audit.times import isoformat
from tech7_audit.verification import (
    MANIFEST,
    REVOCATION,
    Revocation,
    Step,
    VerificationFailure,
    check_inclusion,
    describe_quorum,
    parse_time,
    verify_checkpoint,
)
from tech7_tlog.note import Checkpoint

from app.certificates.service import CertificateService
from app.core.caching import BoundedCache
from app.core.errors import NotFound
from app.ledger.service import Entry
from app.ledger.witnessing import Witnessing
from app.publishing.models import Document, Version
from app.publishing.service import PublishingService
from app.statements.own_key_cas import APPROVED, OwnKeyCAs

REVOKED = "Revoked"
RECORD = "record"
"""The step that finds the log entry recording the file (the receipt step of an offline audit)."""

_MEMO_SIZE = 4096
#: One context per set of anchors: the registry's, and the registry's plus one association's CAs.
_CONTEXTS_SIZE = 64
#: Seconds a verification may judge against the current checkpoint read by an earlier one. The
#: answer names the checkpoint's tree size, so it is true as stated; a checkpoint that does not
#: hold the entry, or any append in this process, makes it read again at once.
CHECKPOINT_MAX_AGE = 1.0

# Failing these steps still leaves c2pa's verdict standing: the manifest is intact and Trusted,
# only the registry cannot vouch for the file (it never published it, or did so untimestamped).
_STILL_VALID = frozenset({MANIFEST, RECORD})


@dataclass(frozen=True)
class PublishedAs:
    """The published version a verified file is."""

    kind: str
    slug: str
    number: int
    href: str


@dataclass(frozen=True)
class VerificationResult:
    """Everything the verify API reports about one upload (see :meth:`as_json`)."""

    state: str
    report: ManifestReport
    steps: tuple[Step, ...]
    record: Mapping[str, Any] | None
    entry: Entry | None
    version: PublishedAs | None
    checkpoint: Checkpoint | None
    inclusion_verified: bool
    revocation: Revocation | None
    witnesses: Mapping[str, Any] | None = None

    @property
    def failure(self) -> Step | None:
        """The step that failed, if any."""
        return next((step for step in self.steps if not step.ok), None)

    def summary(self) -> str:
        """One plain-language sentence: who signed it, when, which version, or what failed."""
        report = self.report
        who = report.signer_organization or report.signer_common_name or "an unknown signer"
        what = f"published as {self.version.href}" if self.version else (
            f"logged as {self.record['subject']}" if self.record else "")
        if self.state == TRUSTED:
            # Trusted means the entry was found and included in the checkpoint.
            assert self.entry is not None and self.checkpoint is not None
            return (f"Signed by {who} at {report.signed_at} and {what}; log entry "
                    f"{self.entry.index} is in the log's current tree of "
                    f"{self.checkpoint.tree_size} entries.")
        if self.state == REVOKED:
            assert self.revocation is not None  # the revocation step names it
            return (f"Signed by {who} at {report.signed_at} and {what}, but its certificate was "
                    f"revoked at {self.revocation.revoked_at} ({self.revocation.reason}), "
                    f"before it signed this.")
        failure = self.failure
        assert failure is not None  # neither Trusted nor revoked: a step failed
        return f"Not verified ({failure.name}): {failure.detail}."

    def as_json(self) -> dict[str, Any]:
        """The report as served by ``POST /v1/verify``."""
        report = self.report
        association = None
        if self.record is not None:
            association = self.record.get("association")
        elif isinstance(report.identity, Mapping):
            association = report.identity.get("association")
        signer = None if report.signer_certificate_sha256 is None and \
            report.signer_common_name is None else {
                "common_name": report.signer_common_name,
                "organization": report.signer_organization,
                "certificate_sha256": report.signer_certificate_sha256,
                "association": association}
        return {
            "state": self.state,
            "codes": list(report.codes),
            "summary": self.summary(),
            "signer": signer,
            "signed_at": report.signed_at,
            "timestamp_trusted": report.timestamp_trusted,
            "ingredients": [{"title": i.title, "relationship": i.relationship, "state": i.state}
                            for i in report.ingredients],
            "identity": dict(report.identity) if isinstance(report.identity, Mapping) else None,
            "version": None if self.version is None else {
                "href": self.version.href, "kind": self.version.kind, "slug": self.version.slug,
                "number": self.version.number},
            "log_entry": None if self.entry is None else {
                "index": self.entry.index,
                "leaf_hash": base64.b64encode(self.entry.leaf_hash).decode(),
                "type": self.entry.entry_type, "subject": self.entry.subject},
            "inclusion_verified": self.inclusion_verified,
            "checkpoint_size": None if self.checkpoint is None else self.checkpoint.tree_size,
            "revoked": None if self.revocation is None else {
                "revoked_at": self.revocation.revoked_at, "reason": self.revocation.reason},
            "witnesses": None if self.witnesses is None else dict(self.witnesses),
            "steps": [step.as_json() for step in self.steps],
        }


_UNKNOWN = object()


class VerificationService:
    """Runs the auditor's checks on uploads, with the registry's own anchors, log and records."""

    def __init__(self, publishing: PublishingService, certificates: CertificateService,
                 own_key_cas: OwnKeyCAs, witnessing: Witnessing | None = None):
        self.db = publishing.db
        self.witnessing = witnessing
        self.provenance = publishing.provenance
        self.log = publishing.log
        self.kinds = publishing.kinds
        self.certificates = certificates
        self._own_key_cas = own_key_cas
        self._lock = threading.Lock()
        self._pid: int | None = None
        # Log entries, the versions they record, inclusion proofs for a given tree size and
        # verified checkpoint notes never change once true, so remembering them is safe. What
        # may change is read afresh: the current checkpoint once it is a second old (or the log
        # grew here), a certificate's revocation whenever the log grew.
        self._contexts: BoundedCache[bytes, c2pa.Context] = BoundedCache(_CONTEXTS_SIZE)
        self._logged_entries: BoundedCache[Any, Any] = BoundedCache(_MEMO_SIZE)
        self._versions: BoundedCache[Any, Any] = BoundedCache(_MEMO_SIZE)
        self._proofs: BoundedCache[Any, Any] = BoundedCache(_MEMO_SIZE)
        self._checkpoints: BoundedCache[Any, Any] = BoundedCache(4)
        self._revocation_lists: BoundedCache[Any, Any] = BoundedCache(_MEMO_SIZE)
        self._association_anchors: BoundedCache[Any, Any] = BoundedCache(_MEMO_SIZE)
        # (note, tree size, appends begun, monotonic time read) of the current checkpoint.
        self._current: tuple[str, int, int, float] | None = None

    def _verification_context(self, trust_anchors_pem: bytes) -> c2pa.Context:
        """One c2pa context per process and set of anchors: c2pa objects made before a fork are
        invalid after it."""
        with self._lock:
            if self._pid != os.getpid():
                self._contexts = BoundedCache(_CONTEXTS_SIZE)
                self._pid = os.getpid()
            context = self._contexts.get(trust_anchors_pem)
            if context is None:
                context = self._contexts.put(trust_anchors_pem,
                                             verification_context(trust_anchors_pem))
            return context

    def verify(self, content: bytes, manifest: bytes | None, *, media_type: str | None = None,
               filename: str | None = None) -> VerificationResult:
        """Verify ``content`` (with its sidecar ``manifest``, or the one it embeds) end to end:
        the auditor's checks (:func:`~tech7_audit.pipeline.run_checks`) on the evidence of
        the registry's own log.

        Never raises on bad input: whatever is wrong with the bytes is a step that failed.
        """
        evidence = _RegistryLog(self)
        outcome = run_checks(content, manifest, evidence, media_type=media_type,
                             filename=filename)
        if outcome.report is None:  # the registry's log reports its record after the manifest
            raise RuntimeError("the manifest step did not run")
        entry = evidence.entry
        return VerificationResult(
            state=_state(outcome.steps, outcome.report), report=outcome.report,
            steps=outcome.steps,
            record=outcome.logged.record if outcome.logged is not None else None, entry=entry,
            version=self._version(entry) if entry is not None else None,
            checkpoint=outcome.checkpoint, inclusion_verified=outcome.inclusion_verified,
            revocation=outcome.revocation,
            witnesses=self._witnesses(entry) if outcome.inclusion_verified and entry is not None
            else None)

    def _witnesses(self, entry: Entry) -> dict[str, Any] | None:
        """Which witnesses of the policy cosigned the checkpoint a receipt of ``entry`` carries
        (the newest quorate one holding it, or the newest), and whether they make the quorum;
        None when the log has no witnesses."""
        if self.witnessing is None:
            return None
        note, quorate = self.witnessing.receipt_checkpoint(entry.index)
        policy = self.witnessing.policy
        cosigned = policy.cosigners(note)
        return {"tree_size": int(note.split("\n", 2)[1]), "quorate": quorate,
                "quorum": describe_quorum(policy),
                "cosigned": [name for name in policy.witnesses if name in cosigned],
                "missing": [name for name in policy.witnesses if name not in cosigned]}

    def _current_checkpoint(self, entry: Entry) -> str:
        """The log's current checkpoint, read at most :data:`CHECKPOINT_MAX_AGE` seconds ago
        and holding ``entry`` (a query per verification was a fifth of its cost)."""
        current, now = self._current, time.monotonic()
        if current is None or entry.index >= current[1] or current[2] != self.log.appends_begun \
                or now - current[3] > CHECKPOINT_MAX_AGE:
            appends = self.log.appends_begun
            note = self.log.checkpoint()
            current = self._current = (note, int(note.split("\n", 2)[1]), appends, now)
        return current[0]

    def _logged(self, sha256: str, manifest_sha256: str
                ) -> tuple[Entry | None, Mapping[str, Any] | None]:
        """The log entry recording this document, preferring the one naming this manifest.

        Only an exact match (document and manifest) is remembered: anything less may still
        change as the log grows.
        """
        remembered = self._logged_entries.get((sha256, manifest_sha256))
        if remembered is not None:
            return remembered
        candidates = []
        for entry in self.log.entries_for_document(sha256):
            record = _record_of(entry)
            if record is not None:
                candidates.append((entry, record))
        for entry, record in candidates:
            if record.get("manifest_sha256") == manifest_sha256:
                return self._logged_entries.put((sha256, manifest_sha256), (entry, record))
        return candidates[0] if candidates else (None, None)

    def _trust_anchors(self, record: Mapping[str, Any] | None, note: str | None) -> bytes:
        """The registry's anchors, plus the approved CAs of the association the record names.

        An association that signs its statements with its own key has them vouched for by its
        own CA, which an operator approved (README, "Own-key publishing"); who signed
        is then settled by the record's certificate digest (:func:`check_signer`). Approvals are
        logged in the transaction that makes them, so the answer holds while the log's
        checkpoint (``note``) stays the same.
        """
        registry = self.provenance.trust_anchors_pem
        association = record.get("association") if record is not None else None
        if not isinstance(association, str):
            return registry
        anchors = self._association_anchors.get((association, note))
        if anchors is None:
            try:
                approved = [ca.pem.encode("ascii") for ca in self._own_key_cas.cas(association)
                            if ca.status == APPROVED]
            except NotFound:
                approved = []
            anchors = self._association_anchors.put((association, note),
                                                    registry + b"".join(approved))
        return anchors

    def _verified_checkpoint(self, note: str) -> Checkpoint:
        """``note``, the log's current checkpoint, its signature verified with the log key."""
        checkpoint = self._checkpoints.get(note)
        if checkpoint is None:
            checkpoint = self._checkpoints.put(note, verify_checkpoint(note,
                                                                       self.log.verifier_key))
        return checkpoint

    def _check_inclusion(self, entry: Entry, checkpoint: Checkpoint) -> str:
        """Verify the log's inclusion proof of ``entry`` in ``checkpoint``'s tree.

        A proof for a given entry and tree size never changes, so one that verified is
        remembered (and still checked against the signed checkpoint on every request).
        """
        key = (entry.index, checkpoint.tree_size)
        proof = self._proofs.get(key)
        if proof is None:
            proof = self.log.inclusion_proof(entry.index, checkpoint.tree_size)
        detail = check_inclusion(entry.leaf, entry.index, proof, checkpoint)
        self._proofs.put(key, proof)
        return detail

    def _version(self, entry: Entry) -> PublishedAs | None:
        """The published version whose log entry this is (exports are logged but no version)."""
        version = self._versions.get(entry.index, _UNKNOWN)
        if version is _UNKNOWN:
            version = self._versions.put(entry.index, self._version_row(entry.index))
        return version

    def _version_row(self, index: int) -> PublishedAs | None:
        with self.db.sessions() as session:
            row = session.execute(
                sa.select(Document.kind, Document.slug, Version.number)
                .join(Document, Document.id == Version.document_id)
                .where(Version.log_index == index)).one_or_none()
        if row is None or row.kind not in self.kinds:
            return None
        return PublishedAs(kind=row.kind, slug=row.slug, number=row.number,
                           href=self.kinds[row.kind].version_path(row.slug, row.number))

    def _revocations(self, certificate_sha256: str, signed_at: str | None,
                     checkpoint: Checkpoint) -> list[Revocation]:
        """The certificate's revocation, if the registry recorded one by ``checkpoint``'s tree.

        A revocation is recorded in the same transaction as its log entry
        (:meth:`~app.certificates.service.CertificateService.revoke`), so none can appear while the log
        keeps its size: an answer read after ``checkpoint`` was current holds for as long as it
        is. And a revocation is final, so an answer that already includes a later one is right
        too. The answer is therefore remembered per certificate and tree size.
        """
        key = (certificate_sha256, checkpoint.tree_size)
        remembered = self._revocation_lists.get(key)
        if remembered is not None:
            return remembered
        status = self.certificates.status(certificate_sha256, parse_time(signed_at))
        revocations = [] if status.revoked_at is None else [Revocation(
            certificate_sha256=certificate_sha256, revoked_at=isoformat(status.revoked_at),
            reason=status.reason or "")]
        return self._revocation_lists.put(key, revocations)


class _RegistryLog:
    """The registry's own log as the evidence of one verification: the entry recording the file,
    the current checkpoint, the association CAs it approved and the revocations it recorded."""

    locating_step = RECORD
    locates_first = False

    def __init__(self, service: VerificationService):
        self.service = service
        self.entry: Entry | None = None
        self.note: str | None = None

    def locate(self, sha256: str, manifest_sha256: str) -> LoggedRecord:
        entry, record = self.service._logged(sha256, manifest_sha256)
        if entry is None or record is None:
            raise VerificationFailure(RECORD, f"no entry of the registry's log records a "
                                              f"document with SHA-256 {sha256}: the registry "
                                              f"did not publish this file")
        self.entry = entry
        # The current checkpoint, read once: the tree every later step is judged against.
        self.note = self.service._current_checkpoint(entry)
        return LoggedRecord(record=record, index=entry.index,
                            detail=f"log entry {entry.index} records the {record['type']} of "
                                   f"{record['subject']}")

    def trust_anchors(self, logged: LoggedRecord | None) -> bytes:
        return self.service._trust_anchors(logged.record if logged is not None else None,
                                           self.note)

    def context(self, trust_anchors_pem: bytes) -> c2pa.Context:
        return self.service._verification_context(trust_anchors_pem)

    def signers(self) -> None:
        return None  # the record's certificate digest is the registry's own record

    def checkpoint(self, logged: LoggedRecord) -> tuple[Checkpoint, str]:
        checkpoint = self.service._verified_checkpoint(self._note())
        return checkpoint, (f"the log's current checkpoint is signed by {checkpoint.origin}, "
                            f"tree size {checkpoint.tree_size}")

    def inclusion(self, logged: LoggedRecord, checkpoint: Checkpoint) -> str:
        if self.entry is None:
            raise RuntimeError("locate() finds the entry first")
        return self.service._check_inclusion(self.entry, checkpoint)

    def log_checks(self, logged: LoggedRecord, checkpoint: Checkpoint) -> Iterator[Step]:
        return iter(())  # witnesses are reported beside the steps (VerificationResult.witnesses)

    def revocations(self, logged: LoggedRecord, signed_at: str | None,
                    checkpoint: Checkpoint) -> list[Revocation]:
        return self.service._revocations(logged.record["signer_certificate_sha256"], signed_at,
                                         checkpoint)

    def _note(self) -> str:
        if self.note is None:
            raise RuntimeError("locate() reads the current checkpoint first")
        return self.note


def _record_of(entry: Entry) -> Mapping[str, Any] | None:
    try:
        record = json.loads(entry.leaf)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _state(steps: Sequence[Step], report: ManifestReport) -> str:
    """Trusted only when every step passed; Revoked when only the certificate's standing failed;
    Valid when c2pa trusts the manifest but the registry cannot vouch for the file."""
    failed = next((step for step in steps if not step.ok), None)
    if failed is None:
        return TRUSTED
    if failed.name == REVOCATION:
        return REVOKED
    if failed.name in _STILL_VALID and report.state == TRUSTED:
        return VALID
    return INVALID
