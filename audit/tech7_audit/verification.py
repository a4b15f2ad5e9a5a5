"""The auditor's checks, in one place: the verify API and the ``tech7-audit`` command both run them.

An auditor holds a file and wants to know that it is exactly what the registry (or an association)
published, when, and that the log recording it was not rewritten. :func:`run_checks` proves that,
one step at a time, and stops at the first step that fails. Where the log's word comes from is a
:class:`LogEvidence`: the version's receipt, offline (:class:`ReceiptEvidence`, which
:func:`audit_document` uses), or the registry's own log and trust list (``POST /v1/verify``,
``app.verifier``, which finds the record by the file's digest and reports that step second):

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

A whole history goes further than one version: :func:`audit_history` runs those steps on every
version of a document, newest first, checks that each version's manifest names its parent exactly
(:func:`check_parent_link`), and that every checkpoint involved (each receipt's, each link's) is
consistent with one checkpoint the auditor holds.

A log monitor goes further than one receipt: :func:`check_log` re-hashes every entry the log
serves and requires the recomputed tree to be the one the signed checkpoint commits to.

Everything here is a pure function over bytes and text: no Flask, no database, no network.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import c2pa
import rfc8785
from tech7_tlog.merkle import (
    HASH_SIZE,
    ProofError,
    leaf_hash,
    parent_level,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from tech7_tlog.note import Checkpoint, NoteError, open_note, parse_checkpoint, parse_tlog_proof, parse_verifier_key
from tech7_tlog.policy import NONE, Policy
from tech7_tlog.tiles import TILE_WIDTH, tile_hashes, tiles_for_size

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


def check_log(leaves: Sequence[bytes], checkpoint: Checkpoint,
              tile: Callable[[int, int, int], bytes]) -> str:
    """Re-hash every entry of the log and require the tree to be the one ``checkpoint`` signs.

    ``leaves`` are all ``checkpoint.tree_size`` entries (from the entry bundles); ``tile(level,
    index, width)`` returns the log's stored hash tile (C2SP tlog-tiles). The root recomputed from
    the leaves must be the checkpoint's, and every tile must hold exactly the hashes recomputed
    from the leaves: the level-0 tiles are the leaf hashes themselves (RFC 9162 §2.1.1). Raises
    :class:`VerificationFailure` (step ``log``) with ``LOG REWRITTEN`` and the first difference.
    """
    if len(leaves) != checkpoint.tree_size:
        raise VerificationFailure(LOG, f"the log served {len(leaves)} entries for a tree of size "
                                       f"{checkpoint.tree_size}")
    levels = [b"".join(leaf_hash(leaf) for leaf in leaves)]
    while len(levels[-1]) >= 2 * HASH_SIZE:
        below = levels[-1]
        levels.append(parent_level(below[:len(below) // (2 * HASH_SIZE) * 2 * HASH_SIZE]))

    def hash_at(level: int, index: int) -> bytes:
        return levels[level][index * HASH_SIZE:(index + 1) * HASH_SIZE]

    for level, index, width in tiles_for_size(checkpoint.tree_size):
        expected = tile_hashes(level, index, width, hash_at)
        served = tile(level, index, width)
        if served != expected:
            raise VerificationFailure(LOG, "LOG REWRITTEN: " + _tile_difference(
                level, index, expected, served, leaves))
    root = tree_root(checkpoint.tree_size, hash_at)
    if root != checkpoint.root_hash:
        raise VerificationFailure(LOG, f"LOG REWRITTEN: the {checkpoint.tree_size} entries "
                                       f"re-hash to root {base64.b64encode(root).decode()}, the "
                                       f"signed checkpoint says "
                                       f"{base64.b64encode(checkpoint.root_hash).decode()}")
    return (f"all {checkpoint.tree_size} entries re-hash to the signed root, and every tile "
            f"matches them")


def _tile_difference(level: int, index: int, expected: bytes, served: bytes,
                     leaves: Sequence[bytes]) -> str:
    first = next((i for i in range(0, len(expected), HASH_SIZE)
                  if expected[i:i + HASH_SIZE] != served[i:i + HASH_SIZE]), 0) // HASH_SIZE
    if level == 0:
        entry = index * TILE_WIDTH + first
        what = ""
        with contextlib.suppress(ValueError, AttributeError, UnicodeDecodeError):
            what = f" ({json.loads(leaves[entry]).get('subject')})"
        return (f"entry {entry}{what} re-hashes to "
                f"{base64.b64encode(expected[first * HASH_SIZE:(first + 1) * HASH_SIZE]).decode()}"
                f" but the log's tile 0/{index} says "
                f"{base64.b64encode(served[first * HASH_SIZE:(first + 1) * HASH_SIZE]).decode()}"
                f": its leaf was changed after it was logged")
    return f"hash {first} of tile {level}/{index} is not the hash of the entries below it"


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


# --- the whole chain ---------------------------------------------------------------------------


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
