"""A document's whole history: each version names its parent exactly (:func:`check_parent_link`,
which own-key intake uses too), and every version and link is consistent with one checkpoint the
auditor holds (:func:`audit_history`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import c2pa
from tech7_tlog.note import Checkpoint

from tech7_audit.manifests import TRUSTED, ManifestReport
from tech7_audit.pipeline import AuditReport, audit_document
from tech7_audit.verification import (
    JSON_MEDIA_TYPE,
    PARENT,
    Step,
    VerificationFailure,
    check_consistency,
    check_inclusion,
    read_receipt,
    verify_checkpoint,
)

# --- a version's link to its parent ------------------------------------------------------------


@dataclass(frozen=True)
class ParentCheck:
    """A link found to name its parent exactly: what it says, and the checkpoint of its proof
    (``None`` for the older form, which embeds the parent's manifest and carries no proof)."""

    reason: str
    checkpoint: Checkpoint | None = None
    signed_checkpoint: str | None = None


def check_parent_link(report: ManifestReport, *, number: int, sha256: str, manifest_sha256: str,
                      manifest_label: str, verifier_key: str) -> ParentCheck:
    """Require the manifest ``report`` to name version ``number`` (the parent) exactly.

    The parent is given by its bytes' and its manifest's SHA-256 and its manifest label. The
    bounded form (:class:`~app.provenance.signing.ParentLink`) must have one ``parentOf``
    ingredient without a manifest link, whose instance ID is the parent's SHA-256 and whose
    recorded results say Trusted, and an ``org.tech7.parent-proof`` assertion naming the same
    hashes, label and version, whose tlog-proof is signed by the log key and includes (RFC 9162
    §2.1.3.2) a log record of exactly these hashes at the index it names. The older form must
    have a ``parentOf`` ingredient whose manifest is the parent's label and reads Trusted (c2pa
    re-validated it while reading). Raises :class:`VerificationFailure` (step ``parent``).
    """
    parents = [i for i in report.ingredients if i.relationship == "parentOf"]
    if len(parents) != 1:
        raise VerificationFailure(PARENT, f"the manifest has {len(parents)} parentOf "
                                          f"ingredients, not one naming version {number}")
    ingredient = parents[0]
    proof = report.parent_proof
    if proof is not None and not isinstance(proof, Mapping):
        raise VerificationFailure(PARENT, f"the parent proof assertion is not a JSON object "
                                          f"but {type(proof).__name__}")
    if proof is None:
        if ingredient.active_manifest != manifest_label:
            raise VerificationFailure(PARENT, f"the parentOf ingredient is manifest "
                                              f"{ingredient.active_manifest}, not version "
                                              f"{number}'s ({manifest_label})")
        if ingredient.state != TRUSTED:
            raise VerificationFailure(PARENT, f"the embedded parent manifest reads "
                                              f"{ingredient.state} ({', '.join(ingredient.codes)})")
        return ParentCheck(f"embeds version {number}'s manifest {manifest_label}, Trusted")
    expected = {"version": number, "sha256": sha256, "manifest_sha256": manifest_sha256,
                "manifest_label": manifest_label}
    for name, value in expected.items():
        if proof.get(name) != value:
            raise VerificationFailure(PARENT, f"the parent proof's {name} is {proof.get(name)!r}, "
                                              f"but version {number}'s is {value!r}")
    if ingredient.active_manifest is not None or ingredient.instance_id != f"sha256:{sha256}":
        raise VerificationFailure(PARENT, f"the parentOf ingredient is not version {number} by "
                                          f"its SHA-256 (instance ID {ingredient.instance_id!r})")
    if ingredient.state != TRUSTED:
        raise VerificationFailure(PARENT, f"the parentOf ingredient records {ingredient.state}, "
                                          f"not Trusted, for version {number}")
    text = proof.get("tlog_proof")
    log_index = proof.get("log_index")
    if not isinstance(text, str) or not isinstance(log_index, int) or isinstance(log_index, bool):
        raise VerificationFailure(PARENT, "the parent proof has no tlog_proof or log_index")
    try:
        receipt = read_receipt(text)
        checkpoint = verify_checkpoint(receipt.signed_checkpoint, verifier_key)
        check_inclusion(receipt.leaf, receipt.index, receipt.proof_hashes, checkpoint)
    except VerificationFailure as failure:
        raise VerificationFailure(PARENT, f"the parent's log proof fails ({failure.step}): "
                                          f"{failure.reason}") from None
    record = receipt.record
    if receipt.index != log_index or record.get("document_sha256") != sha256 \
            or record.get("manifest_sha256") != manifest_sha256 \
            or record.get("manifest_label") != manifest_label:
        raise VerificationFailure(PARENT, f"the parent proof's log entry {receipt.index} does "
                                          f"not record version {number}'s bytes and manifest")
    return ParentCheck(f"names version {number} (SHA-256 {sha256}, manifest SHA-256 "
                       f"{manifest_sha256}), entry {receipt.index} of the log's tree of size "
                       f"{checkpoint.tree_size}", checkpoint, receipt.signed_checkpoint)



# --- a document's whole history ----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryVersion:
    """One version as an auditor fetched it: its bytes, sidecar manifest and log receipt."""

    number: int
    content: bytes
    manifest: bytes
    receipt: str | bytes


@dataclass(frozen=True)
class VersionAudit:
    """One version's :class:`AuditReport`, and the check of its link to the version before."""

    number: int
    report: AuditReport
    link: Step | None


@dataclass(frozen=True)
class HistoryReport:
    """The outcome of :func:`audit_history`, newest version first; ``ok`` when all passed."""

    ok: bool
    versions: tuple[VersionAudit, ...]
    checkpoint_size: int
    problems: tuple[str, ...] = ()


def audit_history(
    versions: Sequence[HistoryVersion],
    *,
    signed_checkpoint: str | bytes,
    consistency_proof: Callable[[int, int], Mapping[str, Any]],
    trust_anchors_pem: bytes,
    verifier_key: str,
    context: c2pa.Context | None = None,
) -> HistoryReport:
    """Prove, offline, a document's whole history: versions ``1`` to ``N`` (all of them).

    Each version must pass :func:`audit_document` with ``signed_checkpoint`` (the one checkpoint
    the auditor holds) as its last checkpoint; each version from 2 on must name the version
    before it exactly (:func:`check_parent_link`), and the checkpoint of its link's proof must be
    consistent with ``signed_checkpoint`` too. ``consistency_proof(first, second)`` supplies the
    proofs between tree sizes, as served by ``GET /v1/log/proofs/consistency``. Every failure is
    named in ``problems`` (``version N: …``); the audit goes on past it, so one broken link
    does not hide another.
    """
    by_number = {version.number: version for version in versions}
    newest = max(by_number, default=0)
    problems: list[str] = []
    if sorted(by_number) != list(range(1, newest + 1)):
        problems.append(f"the versions given are {sorted(by_number)}, not 1 to {newest}")
    anchor = verify_checkpoint(signed_checkpoint, verifier_key)
    proofs: dict[int, Mapping[str, Any]] = {}

    def proof_to(size: int) -> Mapping[str, Any] | None:
        if size == anchor.tree_size:
            return None
        if size not in proofs:
            first, second = sorted((size, anchor.tree_size))
            proofs[size] = consistency_proof(first, second)
        return proofs[size]

    reports: dict[int, AuditReport] = {}
    for number in sorted(by_number, reverse=True):
        version = by_number[number]
        try:
            size = verify_checkpoint(read_receipt(version.receipt).signed_checkpoint,
                                     verifier_key).tree_size
            proof = proof_to(size)
        except VerificationFailure:
            proof = None  # audit_document names what is wrong with the receipt
        reports[number] = audit_document(
            version.content, version.manifest, version.receipt,
            trust_anchors_pem=trust_anchors_pem, verifier_key=verifier_key,
            media_type=JSON_MEDIA_TYPE, context=context, last_checkpoint=signed_checkpoint,
            consistency_proof=proof)
    audits: list[VersionAudit] = []
    for number in sorted(by_number, reverse=True):
        report = reports[number]
        if not report.ok and (failure := report.failure) is not None:
            problems.append(f"version {number}: {failure.name}: {failure.detail}")
        link = None
        parent = by_number.get(number - 1)
        if parent is not None and report.manifest is not None:
            link = _link_step(report.manifest, parent, reports[number - 1].manifest,
                              signed_checkpoint, verifier_key, proof_to)
            if not link.ok:
                problems.append(f"version {number}: the link to version {number - 1} is "
                                f"broken: {link.detail}")
        audits.append(VersionAudit(number, report, link))
    return HistoryReport(ok=not problems, versions=tuple(audits),
                         checkpoint_size=anchor.tree_size, problems=tuple(problems))


def _link_step(report: ManifestReport, parent: HistoryVersion,
               parent_report: ManifestReport | None, signed_checkpoint: str | bytes,
               verifier_key: str, proof_to: Callable[[int], Mapping[str, Any] | None]) -> Step:
    """The ``parent`` step of one version: its link names ``parent`` exactly (``parent_report``
    is the parent's own manifest, already read), and the link's checkpoint is consistent with
    the auditor's."""
    try:
        check = check_parent_link(report, number=parent.number,
                                  sha256=hashlib.sha256(parent.content).hexdigest(),
                                  manifest_sha256=hashlib.sha256(parent.manifest).hexdigest(),
                                  manifest_label=(parent_report.label if parent_report
                                                  else None) or "",
                                  verifier_key=verifier_key)
        reason = check.reason
        if check.checkpoint is not None:
            try:
                consistent = check_consistency(check.checkpoint, signed_checkpoint, verifier_key,
                                               proof_to(check.checkpoint.tree_size))
            except VerificationFailure as failure:
                raise VerificationFailure(PARENT, f"its proof's checkpoint: "
                                                  f"{failure.reason}") from None
            reason += f"; {consistent}"
    except VerificationFailure as failure:
        return Step(PARENT, False, failure.reason)
    return Step(PARENT, True, reason)
