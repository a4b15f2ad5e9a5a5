"""The auditor's checks, each one step: the verify API and the ``tech7-audit`` command both run them.

An auditor holds a file and wants to know that it is exactly what the registry (or an association)
published, when, and that the log recording it was not rewritten. The steps below prove that, in
this order, stopping at the first that fails; :func:`tech7_audit.pipeline.run_checks` runs them.
Where the log's word comes from is a :class:`~tech7_audit.pipeline.LogEvidence`: the version's
receipt, offline (:func:`~tech7_audit.pipeline.audit_document`), or the registry's own log and
trust list (``POST /v1/verify``, ``app.verifier``, which finds the record by the file's digest and
reports that step second):

1. ``receipt`` — the receipt is a well-formed c2sp.org/tlog-proof whose ``extra`` is a log record
   (the RFC 8785 leaf the log hashed);
2. ``manifest`` — the C2PA manifest reads Trusted against the trust anchors *and* carries a
   trusted RFC 3161 timestamp (every registry manifest has one, so one without it is refused);
3. ``signer`` — the manifest was signed with the certificate the record names, and its
   ``org.tech7.document`` assertion names the record's document and association;
4. ``hashes`` — the file's SHA-256 is the record's ``document_sha256`` and the manifest bytes'
   SHA-256 its ``manifest_sha256`` (flipped bytes in unsigned regions of a manifest can still read
   Trusted, so the log pins the exact manifest bytes);
5. ``checkpoint`` — the receipt's checkpoint is signed by the log key (C2SP signed-note);
6. ``inclusion`` — the record is leaf ``index`` of that checkpoint's tree (RFC 9162 §2.1.3.2);
7. ``witnesses`` (optional) — under the auditor's pinned C2SP tlog-policy, the receipt's
   checkpoint carries cosignatures (C2SP tlog-cosignature) of enough of its witnesses to make
   the policy's quorum; a refusal names the witnesses that are missing;
8. ``consistency`` (optional) — that tree extends, or is, the auditor's last checkpoint
   (RFC 9162 §2.1.4.2);
9. ``revocation`` (optional) — the signing certificate was not revoked before it signed.

The checkpoint is authenticated before its tree size and root are used for inclusion, as in C2SP
tlog-proof verification, so a forged tree size fails as a bad checkpoint, not as a bad proof.

A whole history goes further than one version: :func:`tech7_audit.history.audit_history` runs those steps on every
version of a document, newest first, checks that each version's manifest names its parent exactly
(:func:`~tech7_audit.history.check_parent_link`), and that every checkpoint involved (each receipt's, each link's) is
consistent with one checkpoint the auditor holds.

A log monitor goes further than one receipt: :func:`tech7_audit.monitor.check_log` re-hashes every entry the log
serves and requires the recomputed tree to be the one the signed checkpoint commits to.

Everything here is a pure function over bytes and text: no Flask, no database, no network.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import c2pa
import rfc8785
from tech7_tlog.merkle import (
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from tech7_tlog.note import Checkpoint, NoteError, open_note, parse_checkpoint, parse_tlog_proof, parse_verifier_key
from tech7_tlog.policy import NONE, Policy

from tech7_audit.manifests import INVALID, TRUSTED, UNREADABLE, ManifestReport, read_manifest

RECEIPT = "receipt"
MANIFEST = "manifest"
SIGNER = "signer"
HASHES = "hashes"
CHECKPOINT = "checkpoint"
INCLUSION = "inclusion"
WITNESSES = "witnesses"
CONSISTENCY = "consistency"
REVOCATION = "revocation"
LOG = "log"
PARENT = "parent"

EXPORT_KIND = "export"
"""The ``kind`` of an export's ``org.tech7.document`` assertion (app.exports.service)."""

JSON_MEDIA_TYPE = "application/json"
PDF_MEDIA_TYPE = "application/pdf"

# The fields every log record of a signed document carries (app.publishing.service writes them).
_RECORD_STRINGS = ("type", "subject", "manifest_label", "signer", "time")
_RECORD_DIGESTS = ("document_sha256", "manifest_sha256", "signer_certificate_sha256")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_VERSION_NUMBER = re.compile(r"/versions/([1-9][0-9]*)$")

# Media types c2pa can only verify against a sidecar: a JSON or CSV file has no place for a
# manifest, so "no manifest given" is the auditor's mistake and deserves a plain answer.
_SIDECAR_ONLY = frozenset({JSON_MEDIA_TYPE, "text/csv", "application/octet-stream"})


class VerificationFailure(Exception):
    """One step of the chain failed; ``step`` names it and the message says exactly why."""

    def __init__(self, step: str, reason: str):
        super().__init__(reason)
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class Step:
    """One verified (or failed) step of the chain, with a sentence saying what was found."""

    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The step as a JSON object."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt: the exact leaf, the record it encodes, its index and inclusion proof,
    and the signed checkpoint note (not yet verified)."""

    leaf: bytes
    record: Mapping[str, Any]
    index: int
    proof_hashes: tuple[bytes, ...]
    signed_checkpoint: str


@dataclass(frozen=True)
class Revocation:
    """A signing certificate's revocation: manifests it signed at or after ``revoked_at``."""

    certificate_sha256: str
    revoked_at: str
    reason: str


# --- the steps ---------------------------------------------------------------------------------


def read_receipt(receipt_text: str | bytes) -> Receipt:
    """Parse a c2sp.org/tlog-proof receipt and the log record in its ``extra`` line.

    Nothing is authenticated yet (see :func:`verify_checkpoint` and :func:`check_inclusion`), but
    the record must already look like one the registry writes: RFC 8785 canonical JSON with the
    fields of a signed document. Raises :class:`VerificationFailure` (step ``receipt``).
    """
    if isinstance(receipt_text, bytes):
        try:
            receipt_text = receipt_text.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationFailure(RECEIPT, "the receipt is not UTF-8 text") from None
    try:
        proof = parse_tlog_proof(receipt_text)
    except NoteError as error:
        raise VerificationFailure(RECEIPT, f"not a c2sp.org/tlog-proof receipt: {error}") from None
    if proof.extra is None:
        raise VerificationFailure(RECEIPT, "the receipt carries no log record (no 'extra' line)")
    record = _record(proof.extra)
    return Receipt(leaf=proof.extra, record=record, index=proof.index,
                   proof_hashes=proof.proof_hashes, signed_checkpoint=proof.signed_checkpoint)


def _record(leaf: bytes) -> dict[str, Any]:
    try:
        record = json.loads(leaf)
    except (UnicodeDecodeError, ValueError):
        raise VerificationFailure(RECEIPT, "the receipt's log record is not JSON") from None
    if not isinstance(record, dict):
        raise VerificationFailure(RECEIPT, "the receipt's log record is not a JSON object")
    # The log hashes RFC 8785 bytes; any other spelling of the same record was not made by it.
    if rfc8785.dumps(record) != leaf:
        raise VerificationFailure(RECEIPT, "the receipt's log record is not RFC 8785 canonical "
                                           "JSON, so the log cannot have written it")
    for name in _RECORD_STRINGS:
        if not isinstance(record.get(name), str):
            raise VerificationFailure(RECEIPT, f"the receipt's log record has no {name!r}")
    for name in _RECORD_DIGESTS:
        if not _SHA256_HEX.fullmatch(str(record.get(name))):
            raise VerificationFailure(RECEIPT, f"the receipt's log record has no valid {name!r} "
                                               f"(64 lowercase hex digits)")
    if record.get("association") is not None and not isinstance(record["association"], str):
        raise VerificationFailure(RECEIPT, "the receipt's log record has an invalid association")
    return record


def infer_media_type(content: bytes, subject: str | None = None,
                     filename: str | None = None) -> str:
    """The media type to read ``content`` as: what the record's subject says, else its bytes.

    Published versions are JSON. A PDF names itself in its first bytes; a CSV export only by its
    file name. c2pa verifies a sidecar's data hash over the whole stream whatever the type, so
    ``application/octet-stream`` is a safe last resort.
    """
    if subject and "/versions/" in subject:
        return JSON_MEDIA_TYPE
    if content.startswith(b"%PDF-"):
        return PDF_MEDIA_TYPE
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    return {"json": JSON_MEDIA_TYPE, "csv": "text/csv", "pdf": PDF_MEDIA_TYPE}.get(
        suffix, "application/octet-stream")


def verify_manifest(content: bytes, media_type: str, manifest: bytes | None,
                    trust_anchors_pem: bytes, context: c2pa.Context | None = None
                    ) -> ManifestReport:
    """Read ``content``'s manifest (its sidecar ``manifest``, or embedded when ``None``) offline.

    :func:`~tech7_audit.manifests.read_manifest` against ``trust_anchors_pem`` (or ``context``,
    made from the same anchors in this process), remote manifest fetch off. A JSON or CSV file
    given without its sidecar reads Invalid with a reason that says so. Never raises.
    """
    if manifest is None and media_type in _SIDECAR_ONLY:
        return ManifestReport(state=INVALID, codes=(UNREADABLE,),
                              error=f"{media_type} cannot carry an embedded manifest: give its "
                                    f"sidecar manifest too")
    return read_manifest(content, media_type, manifest, trust_anchors_pem=trust_anchors_pem,
                         context=context)


def check_manifest(report: ManifestReport) -> str:
    """Require a Trusted manifest with a trusted RFC 3161 timestamp; return what was found.

    Registry manifests always carry a timestamp, which is what keeps them Trusted after their
    certificate expires; a Trusted manifest without one did not come from the registry's
    signing path. Raises :class:`VerificationFailure` (step ``manifest``).
    """
    codes = f" ({', '.join(report.codes)})" if report.codes else ""
    if UNREADABLE in report.codes:
        raise VerificationFailure(MANIFEST, f"no C2PA manifest could be read: {report.error}")
    if report.state == INVALID:
        raise VerificationFailure(MANIFEST, f"the manifest reads Invalid{codes}: the file or the "
                                            f"manifest was altered, or they do not belong together")
    if report.state != TRUSTED:
        raise VerificationFailure(MANIFEST, f"the manifest reads {report.state}{codes}: it is "
                                            f"intact but its signer does not chain to the trust "
                                            f"anchors")
    if not report.timestamp_trusted:
        raise VerificationFailure(MANIFEST, "the manifest reads Trusted but has no trusted RFC "
                                            "3161 timestamp, which every registry manifest has")
    return (f"Trusted: signed by {report.signer_common_name} ({report.signer_organization}), "
            f"timestamped {report.signed_at}")


def check_signer(record: Mapping[str, Any], report: ManifestReport,
                 certificates: Mapping[str, str] | None = None) -> str:
    """Require the manifest's signer to be the one the record names; return who it is.

    The manifest's signing certificate (its SHA-256) must be the record's
    ``signer_certificate_sha256``, and its ``org.tech7.document`` assertion must name the record's
    document (a version's ``sha256``, association and number; an export's id and association).
    ``certificates`` (certificate SHA-256 → signer name, from a trust list) adds: that
    certificate belongs to the record's signer.
    Raises :class:`VerificationFailure` (step ``signer``).
    """
    expected = record["signer_certificate_sha256"]
    if report.signer_certificate_sha256 != expected:
        raise VerificationFailure(SIGNER, f"the manifest was signed with certificate "
                                          f"{report.signer_certificate_sha256} but the log record "
                                          f"names {expected} ({record['signer']})")
    if certificates is not None and expected in certificates \
            and certificates[expected] != record["signer"]:
        raise VerificationFailure(SIGNER, f"the trust list says certificate {expected} belongs "
                                          f"to {certificates[expected]!r}, not to "
                                          f"{record['signer']!r}")
    identity = report.identity
    if not isinstance(identity, Mapping):
        raise VerificationFailure(SIGNER, "the manifest has no org.tech7.document assertion "
                                          "naming the document")
    if identity.get("kind") == EXPORT_KIND:
        _check_export_identity(record, identity)
    else:
        _check_version_identity(record, identity)
    whose = f" for {record['association']}" if record.get("association") else ""
    return f"signed by {record['signer']}{whose} with the certificate the log records"


def _check_version_identity(record: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    """A version's assertion names its bytes' SHA-256, its association and its number."""
    if identity.get("sha256") != record["document_sha256"]:
        raise VerificationFailure(SIGNER, f"the manifest's org.tech7.document names document "
                                          f"{identity.get('sha256')}, the log record "
                                          f"{record['document_sha256']}")
    if identity.get("association") != record.get("association"):
        raise VerificationFailure(SIGNER, f"the manifest names association "
                                          f"{identity.get('association')!r}, the log record "
                                          f"{record.get('association')!r}")
    number = _VERSION_NUMBER.search(record["subject"])
    if number is not None and identity.get("version") != int(number.group(1)):
        raise VerificationFailure(SIGNER, f"the manifest names version {identity.get('version')}"
                                          f", the log record {record['subject']}")


def _check_export_identity(record: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    """An export's assertion cannot hold the digest of the file it is embedded in, so it names
    the export's id instead (the last segment of the record's subject) and its scope."""
    if record["subject"].rsplit("/", 1)[-1] != identity.get("id"):
        raise VerificationFailure(SIGNER, f"the manifest names export {identity.get('id')!r}, the "
                                          f"log record {record['subject']}")
    scope = identity.get("scope")
    association = scope.get("association") if isinstance(scope, Mapping) else None
    if association != record.get("association"):
        raise VerificationFailure(SIGNER, f"the manifest names association {association!r}, the "
                                          f"log record {record.get('association')!r}")


def check_hashes(record: Mapping[str, Any], content_sha256: str, manifest_sha256: str) -> str:
    """Require the file and the manifest bytes to be exactly those the record names.

    For an embedded manifest ``manifest_sha256`` is the file's own digest. Raises
    :class:`VerificationFailure` (step ``hashes``).
    """
    if content_sha256 != record["document_sha256"]:
        raise VerificationFailure(HASHES, f"the file's SHA-256 is {content_sha256} but the log "
                                          f"record names {record['document_sha256']}")
    if manifest_sha256 != record["manifest_sha256"]:
        raise VerificationFailure(HASHES, f"the manifest's SHA-256 is {manifest_sha256} but the "
                                          f"log record names {record['manifest_sha256']}: these "
                                          f"are not the manifest bytes the registry logged")
    return f"file and manifest are the logged bytes (document SHA-256 {content_sha256})"


def verify_checkpoint(signed_checkpoint: str | bytes, verifier_key: str) -> Checkpoint:
    """Open a signed checkpoint with the log's verifier key and return its tree (C2SP signed-note,
    C2SP tlog-checkpoint).

    The key's name is the log's origin, so the checkpoint must name it too. Raises
    :class:`VerificationFailure` (step ``checkpoint``).
    """
    try:
        verifier = parse_verifier_key(verifier_key.strip())
    except NoteError as error:
        raise VerificationFailure(CHECKPOINT, f"the log verifier key is not usable: {error}") \
            from None
    try:
        checkpoint = parse_checkpoint(open_note(signed_checkpoint, [verifier]))
    except NoteError as error:
        raise VerificationFailure(CHECKPOINT, f"the checkpoint is not signed by the log key "
                                              f"{verifier.name}: {error}") from None
    if checkpoint.origin != verifier.name:
        raise VerificationFailure(CHECKPOINT, f"the checkpoint is for log {checkpoint.origin!r}, "
                                              f"not {verifier.name!r}")
    return checkpoint


def describe_quorum(policy: Policy, name: str | None = None) -> str:
    """The policy's quorum (or the group or witness ``name``) in words, e.g. ``2 of (a, b, c)``."""
    name = policy.quorum if name is None else name
    group = policy.groups.get(name)
    if group is None:
        return "no witness" if name == NONE else name
    members = ", ".join(describe_quorum(policy, member) for member in group.members)
    return f"{group.threshold} of ({members})"


def check_quorum(signed_checkpoint: str | bytes, policy: Policy) -> tuple[str, set[str]]:
    """Require the checkpoint to be valid under ``policy`` (C2SP tlog-policy "What is a policy?"):
    signed by one of its logs, with verified cosignatures (C2SP tlog-cosignature) of witnesses
    that make its quorum.

    Returns a sentence and the names of the witnesses that cosigned. Raises
    :class:`VerificationFailure` (step ``witnesses``) naming the witnesses that are missing.
    """
    try:
        _, cosigners = policy.verify(signed_checkpoint)
    except NoteError as error:
        raise VerificationFailure(WITNESSES, f"the checkpoint is not valid under the policy: "
                                             f"{error}") from None
    quorum = describe_quorum(policy)
    cosigned = ", ".join(sorted(cosigners)) or "no witness"
    if not policy.satisfied_by(cosigners):
        missing = ", ".join(name for name in policy.witnesses if name not in cosigners)
        raise VerificationFailure(WITNESSES, f"NOT QUORATE: the checkpoint is cosigned by "
                                             f"{cosigned}, and the policy's quorum is {quorum}; "
                                             f"missing cosignatures of {missing}")
    return f"cosigned by {cosigned}: the policy's quorum ({quorum}) holds", cosigners


def check_inclusion(leaf: bytes, index: int, proof_hashes: Sequence[bytes],
                    checkpoint: Checkpoint) -> str:
    """Require ``leaf`` to be entry ``index`` of ``checkpoint``'s tree (RFC 9162 §2.1.3.2).

    Raises :class:`VerificationFailure` (step ``inclusion``).
    """
    try:
        verify_inclusion(leaf_hash(leaf), index, checkpoint.tree_size, proof_hashes,
                         checkpoint.root_hash)
    except ProofError as error:
        raise VerificationFailure(INCLUSION, f"the record is not entry {index} of the log: "
                                             f"{error}") from None
    return f"entry {index} of the log's tree of size {checkpoint.tree_size}"


def verify_receipt(receipt_text: str | bytes, verifier_key: str
                   ) -> tuple[Mapping[str, Any], Checkpoint]:
    """Check a receipt on its own: well-formed, checkpoint signed by the log key, record included.

    Returns the (now authenticated) record and the checkpoint. Raises
    :class:`VerificationFailure` naming the step that failed.
    """
    receipt = read_receipt(receipt_text)
    checkpoint = verify_checkpoint(receipt.signed_checkpoint, verifier_key)
    check_inclusion(receipt.leaf, receipt.index, receipt.proof_hashes, checkpoint)
    return receipt.record, checkpoint


def check_consistency(checkpoint: Checkpoint, last_signed_checkpoint: str | bytes,
                      verifier_key: str,
                      proof: Mapping[str, Any] | None) -> str:
    """Require ``checkpoint``'s tree to be consistent with the auditor's last checkpoint.

    The last checkpoint must itself be signed by the log key. Equal sizes need equal roots;
    different sizes need ``proof``, a consistency proof as served by
    ``GET /v1/log/proofs/consistency`` (``first``, ``second``, base64 ``hashes``) between the two
    sizes, in either order (RFC 9162 §2.1.4.2). Raises :class:`VerificationFailure` (step
    ``consistency``).
    """
    try:
        last = verify_checkpoint(last_signed_checkpoint, verifier_key)
    except VerificationFailure as failure:
        raise VerificationFailure(CONSISTENCY, f"your last checkpoint does not verify: "
                                               f"{failure.reason}") from None
    if last.tree_size == checkpoint.tree_size:
        if last.root_hash != checkpoint.root_hash:
            raise VerificationFailure(CONSISTENCY, f"LOG REWRITTEN: a fork: your last "
                                                   f"checkpoint and this one, both signed by the "
                                                   f"log key, have different roots for the same "
                                                   f"tree size {last.tree_size}")
        return f"the same tree as your last checkpoint (size {last.tree_size})"
    older, newer = sorted((last, checkpoint), key=lambda c: c.tree_size)
    if proof is None:
        raise VerificationFailure(CONSISTENCY, f"the receipt's checkpoint has size "
                                               f"{checkpoint.tree_size} and yours "
                                               f"{last.tree_size}: a consistency proof is needed; "
                                               f"run `tech7-audit fetch URL --checkpoint "
                                               f"<your checkpoint>` to download consistency.json")
    hashes = _proof_hashes(proof, older.tree_size, newer.tree_size)
    try:
        verify_consistency(older.tree_size, newer.tree_size, older.root_hash, newer.root_hash,
                           hashes)
    except ProofError as error:
        raise VerificationFailure(CONSISTENCY, f"LOG REWRITTEN: the tree of size "
                                               f"{newer.tree_size} does not extend the tree of "
                                               f"size {older.tree_size}: {error}") from None
    return (f"the tree of size {newer.tree_size} extends the tree of size {older.tree_size} "
            f"(RFC 9162 consistency proof verified)")


def _proof_hashes(proof: Mapping[str, Any], first: int, second: int) -> list[bytes]:
    if not isinstance(proof, Mapping) or proof.get("first") != first \
            or proof.get("second") != second or not isinstance(proof.get("hashes"), list):
        raise VerificationFailure(CONSISTENCY, f"the consistency proof is not a proof from tree "
                                               f"size {first} to {second} (fetch it again)")
    try:
        return [base64.b64decode(h, validate=True) for h in proof["hashes"]]
    except (binascii.Error, TypeError, ValueError):
        raise VerificationFailure(CONSISTENCY, "the consistency proof's hashes are not base64") \
            from None


def revocations_from_trust_list(trust_list: Mapping[str, Any]) -> list[Revocation]:
    """The revocations a trust list (``GET /v1/trust``) publishes, under ``revocations``."""
    return [Revocation(certificate_sha256=str(item["certificate_sha256"]),
                       revoked_at=str(item["revoked_at"]), reason=str(item.get("reason", "")))
            for item in trust_list.get("revocations") or []
            if isinstance(item, Mapping) and "certificate_sha256" in item
            and "revoked_at" in item]


def certificates_from_trust_list(trust_list: Mapping[str, Any]) -> dict[str, str]:
    """Certificate SHA-256 → signer name, from a trust list's ``signers`` and ``certificates``."""
    owners: dict[str, str] = {}
    for item in [*(trust_list.get("signers") or []), *(trust_list.get("certificates") or [])]:
        if isinstance(item, Mapping) and isinstance(item.get("sha256"), str):
            owner = item.get("signer", item.get("name"))
            if isinstance(owner, str):
                owners[item["sha256"]] = owner
    return owners


def applicable_revocation(certificate_sha256: str, signed_at: str | None,
                          revocations: Iterable[Revocation]) -> Revocation | None:
    """The revocation of ``certificate_sha256`` that covers a signature made at ``signed_at``.

    A revocation covers what the certificate signed at or after ``revoked_at``; what it signed
    before stays valid, which the trusted timestamp proves. Without a signing time any
    revocation of the certificate applies.
    """
    signed = parse_time(signed_at)
    for revocation in revocations:
        if revocation.certificate_sha256 != certificate_sha256:
            continue
        revoked = parse_time(revocation.revoked_at)
        if signed is None or revoked is None or signed >= revoked:
            return revocation
    return None


def check_revocation(certificate_sha256: str, signed_at: str | None,
                     revocations: Iterable[Revocation]) -> str:
    """Require that no revocation covers this signature. Raises :class:`VerificationFailure`
    (step ``revocation``)."""
    revocations = list(revocations)
    revocation = applicable_revocation(certificate_sha256, signed_at, revocations)
    if revocation is not None:
        raise VerificationFailure(REVOCATION, f"REVOKED: certificate {certificate_sha256} was "
                                              f"revoked at {revocation.revoked_at} "
                                              f"({revocation.reason or 'no reason given'}) and "
                                              f"signed this at {signed_at}")
    later = [r for r in revocations if r.certificate_sha256 == certificate_sha256]
    if later:
        return (f"the certificate was revoked at {later[0].revoked_at}, after it signed this at "
                f"{signed_at}: the signature stands")
    return "the signing certificate is not revoked"


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time as an aware datetime (UTC when it names no offset); None when absent or
    unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
