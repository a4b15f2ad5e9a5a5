"""The ordered checks: :func:`run_checks` runs them, for ``tech7-audit verify`` (on a receipt, with
:func:`audit_document`) and for ``POST /v1/verify`` (on the registry's own log, ``app.verifier``).

The steps themselves, and the order they run in, are described in :mod:`tech7_audit.verification`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import c2pa
from tech7_tlog.note import Checkpoint
from tech7_tlog.policy import Policy

from tech7_audit.manifests import ManifestReport
from tech7_audit.verification import (
    CHECKPOINT,
    CONSISTENCY,
    HASHES,
    INCLUSION,
    MANIFEST,
    RECEIPT,
    REVOCATION,
    SIGNER,
    WITNESSES,
    Receipt,
    Revocation,
    Step,
    VerificationFailure,
    applicable_revocation,
    certificates_from_trust_list,
    check_consistency,
    check_hashes,
    check_inclusion,
    check_manifest,
    check_quorum,
    check_revocation,
    check_signer,
    infer_media_type,
    read_receipt,
    revocations_from_trust_list,
    verify_checkpoint,
    verify_manifest,
)


@dataclass(frozen=True)
class AuditReport:
    """The outcome of :func:`audit_document`: every step run, in order, and what they established.

    ``ok`` only when every step passed. ``record`` is the log record from the receipt (``None``
    if the receipt could not be read) and ``index`` its entry's index, ``checkpoint_size`` the
    tree size of the receipt's checkpoint once verified, ``signer`` the record's signer and
    ``time`` the trusted timestamp of the manifest.
    """

    ok: bool
    steps: tuple[Step, ...]
    record: Mapping[str, Any] | None = None
    index: int | None = None
    checkpoint_size: int | None = None
    signer: str | None = None
    time: str | None = None
    manifest: ManifestReport | None = field(default=None, repr=False)

    @property
    def failure(self) -> Step | None:
        """The step that failed, if any."""
        return next((step for step in self.steps if not step.ok), None)

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object."""
        return {"ok": self.ok, "steps": [step.as_json() for step in self.steps],
                "record": dict(self.record) if self.record is not None else None,
                "index": self.index, "checkpoint_size": self.checkpoint_size, "signer": self.signer,
                "time": self.time}



# --- the ordered checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedRecord:
    """The log entry a verifier found for a file: its record, its index, and what to say of it."""

    record: Mapping[str, Any]
    index: int
    detail: str


class LogEvidence(Protocol):
    """Where the log's word on a file comes from: a receipt the auditor holds
    (:class:`ReceiptEvidence`), or the registry's own log (:mod:`app.verifier`). The checks and
    their order are :func:`run_checks`'s; a source only answers its questions."""

    #: The name of the step that finds the file's log record.
    locating_step: str
    #: Whether that step comes first and stops everything when it fails (a receipt must be read
    #: before anything is checked against it), or follows the manifest step (the registry reads
    #: any manifest, and only then says whether it logged the file).
    locates_first: bool

    def locate(self, sha256: str, manifest_sha256: str) -> LoggedRecord:
        """The record of the file with these digests; raises :class:`VerificationFailure`."""
        ...

    def trust_anchors(self, logged: LoggedRecord | None) -> bytes:
        """The anchors the manifest must chain to."""
        ...

    def context(self, trust_anchors_pem: bytes) -> c2pa.Context | None:
        """A c2pa context made from ``trust_anchors_pem`` in this process, or None."""
        ...

    def signers(self) -> Mapping[str, str] | None:
        """Certificate SHA-256 → signer name, when the source publishes them."""
        ...

    def checkpoint(self, logged: LoggedRecord) -> tuple[Checkpoint, str]:
        """The verified checkpoint the record is judged against, and what to say of it."""
        ...

    def inclusion(self, logged: LoggedRecord, checkpoint: Checkpoint) -> str:
        """Prove the record is in ``checkpoint``'s tree (:func:`check_inclusion`)."""
        ...

    def log_checks(self, logged: LoggedRecord, checkpoint: Checkpoint) -> Iterator[Step]:
        """Further checks of the checkpoint (witnesses, consistency), each a passed step; a
        failure raises :class:`VerificationFailure`."""
        ...

    def revocations(self, logged: LoggedRecord, signed_at: str | None,
                    checkpoint: Checkpoint) -> Sequence[Revocation] | None:
        """The revocations of the signing certificate known by ``checkpoint``; None skips the
        revocation step (the auditor gave no trust list)."""
        ...


@dataclass(frozen=True)
class CheckOutcome:
    """What :func:`run_checks` established: the steps in order, the manifest's report, the log
    record found, the verified checkpoint, whether inclusion in it was proven, and the
    revocation that failed the last step, if one did."""

    steps: tuple[Step, ...]
    report: ManifestReport | None
    logged: LoggedRecord | None
    checkpoint: Checkpoint | None
    inclusion_verified: bool
    revocation: Revocation | None


def run_checks(content: bytes, manifest: bytes | None, evidence: LogEvidence, *,
               media_type: str | None = None, filename: str | None = None) -> CheckOutcome:
    """Run the checks of the module docstring on ``content`` (with its sidecar ``manifest``, or
    the one it embeds when ``None``), in order, against the log ``evidence`` speaks for; stop at
    the first that fails. ``tech7-audit verify`` and ``POST /v1/verify`` both run this."""
    steps: list[Step] = []
    logged: LoggedRecord | None = None
    report: ManifestReport | None = None
    checkpoint: Checkpoint | None = None
    inclusion_verified = False
    revocation: Revocation | None = None
    sha256 = hashlib.sha256(content).hexdigest()
    signed_sha256 = hashlib.sha256(manifest).hexdigest() if manifest is not None else sha256
    try:
        found: LoggedRecord | VerificationFailure
        try:
            found = evidence.locate(sha256, signed_sha256)
        except VerificationFailure as failure:
            if evidence.locates_first:
                raise
            found = failure
        if evidence.locates_first and isinstance(found, LoggedRecord):
            steps.append(Step(evidence.locating_step, True, found.detail))

        subject = found.record["subject"] if isinstance(found, LoggedRecord) else None
        media_type = media_type or infer_media_type(content, subject, filename)
        anchors = evidence.trust_anchors(found if isinstance(found, LoggedRecord) else None)
        report = verify_manifest(content, media_type, manifest, anchors, evidence.context(anchors))
        steps.append(Step(MANIFEST, True, check_manifest(report)))

        if isinstance(found, VerificationFailure):
            raise found
        logged = found
        if not evidence.locates_first:
            steps.append(Step(evidence.locating_step, True, logged.detail))
        record = logged.record
        steps.append(Step(SIGNER, True, check_signer(record, report, evidence.signers())))
        steps.append(Step(HASHES, True, check_hashes(record, sha256, signed_sha256)))

        checkpoint, detail = evidence.checkpoint(logged)
        steps.append(Step(CHECKPOINT, True, detail))
        steps.append(Step(INCLUSION, True, evidence.inclusion(logged, checkpoint)))
        inclusion_verified = True
        steps.extend(evidence.log_checks(logged, checkpoint))

        revocations = evidence.revocations(logged, report.signed_at, checkpoint)
        if revocations is not None:
            certificate = record["signer_certificate_sha256"]
            revocation = applicable_revocation(certificate, report.signed_at, revocations)
            steps.append(Step(REVOCATION, True, check_revocation(
                certificate, report.signed_at, revocations)))
    except VerificationFailure as failure:
        steps.append(Step(failure.step, False, failure.reason))
    return CheckOutcome(steps=tuple(steps), report=report, logged=logged, checkpoint=checkpoint,
                        inclusion_verified=inclusion_verified, revocation=revocation)


class ReceiptEvidence:
    """The log's word on a file as an auditor holds it, offline: the version's receipt, the log's
    verifier key and, optionally, a checkpoint kept from before, a pinned witness policy and the
    registry's trust list (see :func:`audit_document`)."""

    locating_step = RECEIPT
    locates_first = True

    def __init__(self, receipt_text: str | bytes, *, trust_anchors_pem: bytes, verifier_key: str,
                 context: c2pa.Context | None = None,
                 last_checkpoint: str | bytes | None = None,
                 consistency_proof: Mapping[str, Any] | None = None,
                 trust_list: Mapping[str, Any] | None = None, policy: Policy | None = None):
        self.receipt_text = receipt_text
        self.trust_anchors_pem = trust_anchors_pem
        self.verifier_key = verifier_key
        self._context = context
        self.last_checkpoint = last_checkpoint
        self.consistency_proof = consistency_proof
        self.trust_list = trust_list
        self.policy = policy
        self.receipt: Receipt | None = None

    def locate(self, sha256: str, manifest_sha256: str) -> LoggedRecord:
        receipt = self.receipt = read_receipt(self.receipt_text)
        record = receipt.record
        return LoggedRecord(record=record, index=receipt.index,
                            detail=f"entry {receipt.index} records the {record['type']} of "
                                   f"{record['subject']} at {record['time']}")

    def trust_anchors(self, logged: LoggedRecord | None) -> bytes:
        return self.trust_anchors_pem

    def context(self, trust_anchors_pem: bytes) -> c2pa.Context | None:
        return self._context

    def signers(self) -> Mapping[str, str] | None:
        return certificates_from_trust_list(self.trust_list) if self.trust_list else None

    def checkpoint(self, logged: LoggedRecord) -> tuple[Checkpoint, str]:
        checkpoint = verify_checkpoint(self._receipt().signed_checkpoint, self.verifier_key)
        return checkpoint, f"signed by the log key {checkpoint.origin}, tree size " \
                           f"{checkpoint.tree_size}"

    def inclusion(self, logged: LoggedRecord, checkpoint: Checkpoint) -> str:
        receipt = self._receipt()
        return check_inclusion(receipt.leaf, receipt.index, receipt.proof_hashes, checkpoint)

    def log_checks(self, logged: LoggedRecord, checkpoint: Checkpoint) -> Iterator[Step]:
        if self.policy is not None:
            yield Step(WITNESSES, True,
                       check_quorum(self._receipt().signed_checkpoint, self.policy)[0])
        if self.last_checkpoint is not None:
            yield Step(CONSISTENCY, True, check_consistency(
                checkpoint, self.last_checkpoint, self.verifier_key, self.consistency_proof))

    def revocations(self, logged: LoggedRecord, signed_at: str | None,
                    checkpoint: Checkpoint) -> Sequence[Revocation] | None:
        if self.trust_list is None:
            return None
        return revocations_from_trust_list(self.trust_list)

    def _receipt(self) -> Receipt:
        if self.receipt is None:
            raise RuntimeError("locate() reads the receipt first")
        return self.receipt


def audit_document(
    content: bytes,
    manifest: bytes | None,
    receipt_text: str | bytes,
    *,
    trust_anchors_pem: bytes,
    verifier_key: str,
    media_type: str | None = None,
    filename: str | None = None,
    context: c2pa.Context | None = None,
    last_checkpoint: str | bytes | None = None,
    consistency_proof: Mapping[str, Any] | None = None,
    trust_list: Mapping[str, Any] | None = None,
    policy: Policy | None = None,
) -> AuditReport:
    """Prove, offline, that ``content`` is what the registry published and logged.

    ``manifest`` is the sidecar (``None`` when the file embeds its manifest, a PDF),
    ``receipt_text`` the version's receipt, ``trust_anchors_pem`` the registry's anchors and
    ``verifier_key`` the log's C2SP verifier key. With ``last_checkpoint`` (a signed checkpoint
    the auditor kept) the log must be consistent with it, using ``consistency_proof`` when the
    sizes differ; with ``trust_list`` (``GET /v1/trust``) the signing certificate must not be
    revoked; with ``policy`` (the auditor's pinned C2SP tlog-policy) the checkpoint must carry
    the policy's quorum of witness cosignatures. ``media_type`` overrides what the record's
    subject and the file say. Runs :func:`run_checks` on the receipt's evidence.
    """
    outcome = run_checks(content, manifest, ReceiptEvidence(
        receipt_text, trust_anchors_pem=trust_anchors_pem, verifier_key=verifier_key,
        context=context, last_checkpoint=last_checkpoint, consistency_proof=consistency_proof,
        trust_list=trust_list, policy=policy), media_type=media_type, filename=filename)
    record = outcome.logged.record if outcome.logged is not None else None
    return AuditReport(
        ok=all(step.ok for step in outcome.steps), steps=outcome.steps, record=record,
        index=outcome.logged.index if outcome.logged is not None else None,
        checkpoint_size=outcome.checkpoint.tree_size if outcome.checkpoint is not None else None,
        signer=record["signer"] if record is not None else None,
        time=outcome.report.signed_at if outcome.report is not None else None,
        manifest=outcome.report)
