"""The auditor's chain (tech7_audit.verification): it passes for every published version, and fails
at exactly the step that was tampered with, saying why."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_audit.monitor import check_log
from tech7_audit.pipeline import AuditReport, audit_document
from tech7_audit.verification import (
    CHECKPOINT,
    CONSISTENCY,
    HASHES,
    INCLUSION,
    LOG,
    MANIFEST,
    RECEIPT,
    REVOCATION,
    SIGNER,
    Revocation,
    VerificationFailure,
    applicable_revocation,
    infer_media_type,
    parse_time,
    verify_receipt,
)
from tech7_tlog.merkle import leaf_hash, merkle_tree_hash
from tech7_tlog.note import Checkpoint, format_checkpoint, format_tlog_proof, parse_tlog_proof, sign_note, verifier_key

from app.pki.keyring import REGISTRY_SIGNER
from tests.support.audit import (
    OTHER_VERSION,
    VERSION,
    fetch_materials,
    identity_of,
    one_byte_changed,
    publish_new_version,
    published_versions,
    sign,
)

OFFLINE_STEPS = [RECEIPT, MANIFEST, SIGNER, HASHES, CHECKPOINT, INCLUSION]


def _audit(materials, *, body=None, manifest=..., receipt=None, **options) -> AuditReport:
    return audit_document(materials.body if body is None else body,
                          materials.manifest if manifest is ... else manifest,
                          materials.receipt if receipt is None else receipt,
                          **materials.audit_inputs(), **options)


def _failed_at(report: AuditReport, step: str, *fragments: str) -> None:
    """The chain stopped at ``step`` (every earlier step passed) with a reason naming
    ``fragments``."""
    assert not report.ok
    assert report.failure is report.steps[-1], "the chain stops at the first failure"
    assert report.failure.name == step, report.steps
    assert all(earlier.ok for earlier in report.steps[:-1])
    for fragment in fragments:
        assert fragment in report.failure.detail, report.failure.detail


def _receipt_with(receipt: str, **changes) -> str:
    """The receipt with its extra, index, proof hashes or checkpoint replaced."""
    proof = parse_tlog_proof(receipt)
    fields = {"extra": proof.extra, "index": proof.index,
              "proof_hashes": list(proof.proof_hashes),
              "signed_checkpoint": proof.signed_checkpoint}
    fields.update(changes)
    return format_tlog_proof(fields["extra"], fields["index"], fields["proof_hashes"],
                             fields["signed_checkpoint"])


# --- every published version passes -------------------------------------------------------------


def test_every_published_version_passes_every_step(client):
    hrefs = published_versions(client)
    assert len(hrefs) == 32, "1 declaration, 7 priorities, 14 recommendations, 10 associations"
    for href in hrefs:
        materials = fetch_materials(client, href)
        report = audit_document(materials.body, materials.manifest, materials.receipt,
                                trust_list=materials.trust, **materials.audit_inputs())
        assert report.ok, (href, report.failure)
        assert [step.name for step in report.steps] == OFFLINE_STEPS + [REVOCATION]
        assert report.record["subject"] == href
        assert report.record["document_sha256"] == materials.sha256
        assert report.signer == REGISTRY_SIGNER
        assert report.time is not None and report.checkpoint_size >= len(hrefs)


def test_a_receipt_verifies_on_its_own(materials):
    version = materials()
    record, checkpoint = verify_receipt(version.receipt, version.verifier_key)
    assert record["subject"] == VERSION and record["document_sha256"] == version.sha256
    assert checkpoint.origin == version.verifier_key.split("+")[0]
    with pytest.raises(VerificationFailure) as failure:
        verify_receipt(version.receipt.replace("index ", "index 1"), version.verifier_key)
    assert failure.value.step == INCLUSION


# --- the file and its manifest ------------------------------------------------------------------


def test_one_altered_byte_in_the_file_fails_at_the_manifest(materials):
    version = materials()
    for position in (0, len(version.body) // 2, len(version.body) - 1):
        report = _audit(version, body=one_byte_changed(version.body, position))
        _failed_at(report, MANIFEST, "Invalid", "assertion.dataHash.mismatch")


def test_a_truncated_file_fails_at_the_manifest(materials):
    version = materials()
    _failed_at(_audit(version, body=version.body[:-10]), MANIFEST, "assertion.dataHash.mismatch")


def test_another_versions_manifest_fails_at_the_manifest(materials):
    version, other = materials(), materials(OTHER_VERSION)
    _failed_at(_audit(version, manifest=other.manifest), MANIFEST, "assertion.dataHash.mismatch")


def test_a_truncated_or_garbage_manifest_is_unreadable(materials):
    version = materials()
    for manifest in (version.manifest[: len(version.manifest) // 2], b"not a manifest", b""):
        _failed_at(_audit(version, manifest=manifest), MANIFEST, "no C2PA manifest could be read")


def test_a_json_file_without_its_sidecar_says_the_sidecar_is_needed(materials):
    _failed_at(_audit(materials(), manifest=None), MANIFEST, "sidecar")


def test_a_manifest_from_another_ca_fails_at_the_manifest(materials, foreign_signer):
    version = materials()
    forged = sign(foreign_signer, version.body)
    _failed_at(_audit(version, manifest=forged), MANIFEST, "Valid", "signingCredential.untrusted",
               "trust anchors")


def test_a_trusted_manifest_without_a_timestamp_is_refused(materials, untimestamped_signer):
    version = materials()
    report = _audit(version, manifest=sign(untimestamped_signer, version.body))
    assert report.manifest.trusted, "c2pa itself trusts it"
    _failed_at(report, MANIFEST, "no trusted RFC 3161 timestamp")


# --- the signer and the hashes the log records ---------------------------------------------------


def test_another_registry_signer_fails_at_the_signer(materials, registry_signer):
    version = materials()
    manifest = sign(registry_signer, version.body, signer_name="bitkom")
    _failed_at(_audit(version, manifest=manifest), SIGNER, "signed with certificate",
               "names", "(registry)")


def test_a_manifest_naming_another_association_fails_at_the_signer(materials, registry_signer):
    version = materials()
    manifest = sign(registry_signer, version.body, identity=identity_of(version.body, "bitkom"))
    _failed_at(_audit(version, manifest=manifest), SIGNER, "association 'bitkom'")


def test_the_receipt_of_another_version_fails_at_the_signer(materials):
    version, other = materials(), materials(OTHER_VERSION)
    _failed_at(_audit(version, receipt=other.receipt), SIGNER, "org.tech7.document names document",
               version.sha256)


def test_a_trust_list_naming_another_owner_fails_at_the_signer(materials):
    version = materials()
    trust = json.loads(json.dumps(version.trust))
    for certificate in trust["signers"] + trust.get("certificates", []):
        certificate["name"] = certificate["signer"] = "bitkom"
    _failed_at(_audit(version, trust_list=trust), SIGNER, "belongs to 'bitkom'")


def test_a_re_signed_manifest_is_not_the_logged_one(materials, registry_signer):
    """Same key, same identity, Trusted and timestamped: only the logged bytes tell it apart."""
    version = materials()
    report = _audit(version, manifest=sign(registry_signer, version.body))
    _failed_at(report, HASHES, "not the manifest bytes the registry logged")


# --- the receipt and its checkpoint --------------------------------------------------------------


def test_an_altered_proof_hash_fails_at_inclusion(materials):
    version = materials()
    proof = parse_tlog_proof(version.receipt)
    for position in range(len(proof.proof_hashes)):
        hashes = list(proof.proof_hashes)
        hashes[position] = one_byte_changed(hashes[position], 0)
        report = _audit(version, receipt=_receipt_with(version.receipt, proof_hashes=hashes))
        _failed_at(report, INCLUSION, f"not entry {proof.index}")


def test_an_altered_index_fails_at_inclusion(materials):
    version = materials()
    index = parse_tlog_proof(version.receipt).index
    for other in (index - 1, index + 1):
        report = _audit(version, receipt=_receipt_with(version.receipt, index=other))
        _failed_at(report, INCLUSION, f"not entry {other}")


def test_an_altered_leaf_fails_at_inclusion(materials):
    version = materials()
    record = json.loads(parse_tlog_proof(version.receipt).extra)
    record["time"] = "2025-02-10T00:00:00.000Z"
    report = _audit(version, receipt=_receipt_with(version.receipt, extra=rfc8785.dumps(record)))
    _failed_at(report, INCLUSION)


def test_a_leaf_the_log_cannot_have_written_fails_at_the_receipt(materials):
    version = materials()
    record = json.loads(parse_tlog_proof(version.receipt).extra)
    spelled_otherwise = json.dumps(record, indent=1).encode()
    report = _audit(version, receipt=_receipt_with(version.receipt, extra=spelled_otherwise))
    _failed_at(report, RECEIPT, "RFC 8785")
    for broken in ("", "garbage", version.receipt.replace("c2sp.org", "example.org"),
                   version.receipt.encode("utf-8") + b"\xff"):
        _failed_at(_audit(version, receipt=broken), RECEIPT)
    _failed_at(_audit(version, receipt=_receipt_with(version.receipt, extra=None)), RECEIPT,
               "no log record")


def test_an_altered_checkpoint_size_or_signature_fails_at_the_checkpoint(materials):
    version = materials()
    note = parse_tlog_proof(version.receipt).signed_checkpoint
    origin, size, rest = note.split("\n", 2)
    resized = f"{origin}\n{int(size) + 1}\n{rest}"
    _failed_at(_audit(version, receipt=_receipt_with(version.receipt, signed_checkpoint=resized)),
               CHECKPOINT, "not signed by the log key")
    text, signature_line = note.rstrip("\n").rsplit("\n", 1)
    name, signature = signature_line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 0x01
    resigned = f"{text}\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    _failed_at(_audit(version, receipt=_receipt_with(version.receipt, signed_checkpoint=resigned)),
               CHECKPOINT, "does not verify")


def test_a_checkpoint_signed_by_another_key_fails_at_the_checkpoint(materials):
    version = materials()
    origin = version.verifier_key.split("+")[0]
    impostor = verifier_key(origin, Ed25519PrivateKey.generate().public_key())
    report = audit_document(version.body, version.manifest, version.receipt,
                            trust_anchors_pem=version.anchors, verifier_key=impostor)
    _failed_at(report, CHECKPOINT, "no signature from a known key")


# --- consistency with the auditor's last checkpoint ----------------------------------------------


def test_the_same_checkpoint_is_consistent(materials):
    version = materials()
    note = parse_tlog_proof(version.receipt).signed_checkpoint
    report = _audit(version, last_checkpoint=note)
    assert report.ok and report.steps[-1].name == CONSISTENCY


def test_a_grown_log_is_consistent_with_the_proof_and_not_without(client, operator, materials):
    before = client.get("/v1/log/checkpoint").get_data(as_text=True)
    old_size = int(before.split("\n")[1])
    publish_new_version(client, operator)
    version = materials()
    new_size = parse_tlog_proof(version.receipt).signed_checkpoint.split("\n")[1]
    proof = client.get("/v1/log/proofs/consistency",
                       query_string={"first": old_size, "second": new_size}).json

    report = _audit(version, last_checkpoint=before, consistency_proof=proof)
    assert report.ok, report.failure
    assert "extends the tree of size" in report.steps[-1].detail

    _failed_at(_audit(version, last_checkpoint=before), CONSISTENCY,
               "a consistency proof is needed", "tech7-audit fetch")
    forged = {**proof, "hashes": [base64.b64encode(one_byte_changed(
        base64.b64decode(proof["hashes"][0]), 0)).decode(), *proof["hashes"][1:]]}
    _failed_at(_audit(version, last_checkpoint=before, consistency_proof=forged), CONSISTENCY,
               "LOG REWRITTEN")
    _failed_at(_audit(version, last_checkpoint=before, consistency_proof={**proof, "first": 1}),
               CONSISTENCY, "not a proof from tree size")


def test_a_forked_checkpoint_of_the_same_size_is_caught(app, materials, registry_keys):
    """A log that shows two different trees of one size to two people (split view)."""
    version = materials()
    size = int(parse_tlog_proof(version.receipt).signed_checkpoint.split("\n")[1])
    origin = app.config["LOG_ORIGIN"]
    fork = sign_note(format_checkpoint(origin, size, b"\x07" * 32), origin,
                     registry_keys.log_private_key)
    _failed_at(_audit(version, last_checkpoint=fork), CONSISTENCY, "LOG REWRITTEN: a fork")
    stranger = sign_note(format_checkpoint(origin, size, b"\x07" * 32), origin,
                         Ed25519PrivateKey.generate())
    _failed_at(_audit(version, last_checkpoint=stranger), CONSISTENCY,
               "your last checkpoint does not verify")


# --- revocation -----------------------------------------------------------------------------------


def test_a_revocation_covers_what_was_signed_from_its_time_on():
    revocations = [Revocation("ab" * 32, "2025-02-10T12:00:00.000Z", "keyCompromise")]
    assert applicable_revocation("ab" * 32, "2025-02-10T12:00:00+00:00", revocations)
    assert applicable_revocation("ab" * 32, "2025-02-11T00:00:00+00:00", revocations)
    assert applicable_revocation("ab" * 32, "2025-02-10T11:59:59+00:00", revocations) is None
    assert applicable_revocation("cd" * 32, "2025-02-11T00:00:00+00:00", revocations) is None
    assert applicable_revocation("ab" * 32, None, revocations), "unknown time: revoked"
    assert parse_time("2025-02-10T12:00:00") == parse_time("2025-02-10T12:00:00Z")


def test_a_certificate_revoked_before_it_signed_fails_at_revocation(app, client, materials):
    version = materials()
    signed_at = _audit(version).time
    app.extensions["tech7.certificates"].revoke(
        REGISTRY_SIGNER, "keyCompromise", at=parse_time(signed_at) - timedelta(seconds=1))
    trust = client.get("/v1/trust").json
    assert trust["revocations"], "the trust list publishes the revocation"
    _failed_at(_audit(version, trust_list=trust), REVOCATION, "REVOKED", "keyCompromise")


def test_a_certificate_revoked_after_it_signed_still_passes(app, client, materials):
    version = materials()
    app.extensions["tech7.certificates"].revoke(REGISTRY_SIGNER, "superseded")
    report = _audit(version, trust_list=client.get("/v1/trust").json)
    assert report.ok, report.failure
    assert "after it signed this" in report.steps[-1].detail


# --- the monitor's re-hash of the whole log -------------------------------------------------------


def _synthetic_log(size: int) -> tuple[list[bytes], Checkpoint, dict[tuple[int, int, int], bytes]]:
    """Leaves, checkpoint and tiles of a log, computed from the RFC 9162 definition directly."""
    leaves = [f'{{"n":{n}}}'.encode() for n in range(size)]
    checkpoint = Checkpoint("example/log", size, merkle_tree_hash(leaves))
    tiles = {}
    for index in range(-(-size // 256)):
        chunk = leaves[index * 256:(index + 1) * 256]
        tiles[(0, index, len(chunk))] = b"".join(leaf_hash(leaf) for leaf in chunk)
    full = size // 256
    tiles[(1, 0, full)] = b"".join(merkle_tree_hash(leaves[i * 256:(i + 1) * 256])
                                   for i in range(full))
    return leaves, checkpoint, tiles


def test_check_log_accepts_the_log_it_recomputes():
    leaves, checkpoint, tiles = _synthetic_log(600)
    assert "all 600 entries" in check_log(leaves, checkpoint, lambda *key: tiles[key])


def test_check_log_names_the_rewritten_entry():
    leaves, checkpoint, tiles = _synthetic_log(600)
    leaves[300] = b'{"n":"rewritten"}'
    with pytest.raises(VerificationFailure) as failure:
        check_log(leaves, checkpoint, lambda *key: tiles[key])
    assert failure.value.step == LOG
    assert failure.value.reason.startswith("LOG REWRITTEN: entry 300 ")


def test_check_log_catches_rewritten_tiles_and_roots():
    leaves, checkpoint, tiles = _synthetic_log(600)
    bad_tiles = {**tiles, (1, 0, 2): one_byte_changed(tiles[(1, 0, 2)], 40)}
    with pytest.raises(VerificationFailure, match="LOG REWRITTEN: hash 1 of tile 1/0"):
        check_log(leaves, checkpoint, lambda *key: bad_tiles[key])
    other_root = Checkpoint(checkpoint.origin, checkpoint.tree_size, b"\x00" * 32)
    with pytest.raises(VerificationFailure, match="LOG REWRITTEN: the 600 entries re-hash"):
        check_log(leaves, other_root, lambda *key: tiles[key])
    with pytest.raises(VerificationFailure, match="served 599 entries"):
        check_log(leaves[:-1], checkpoint, lambda *key: tiles[key])


def test_media_types_come_from_the_record_then_the_bytes():
    assert infer_media_type(b"%PDF-1.7", VERSION) == "application/json"
    assert infer_media_type(b"%PDF-1.7", "/v1/exports/x") == "application/pdf"
    assert infer_media_type(b"a,b\n", None, "export.csv") == "text/csv"
    assert infer_media_type(b"\x00", None, None) == "application/octet-stream"
