"""C2PA manifests: sidecar and embedded, provenance chains, timestamps, and verification."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import c2pa
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st
from tech7_audit import manifests
from tech7_audit.manifests import read_manifest, verification_context

from app.pki.authority import KeyStore, init_keys, rotate_signer
from app.pki.timestamping import LoopbackTSA, TimestampAuthority
from app.provenance import signing
from app.provenance.signing import (
    CREATED,
    DIGITAL_CREATION,
    EDITED,
    HUMAN_EDITS,
    PUBLISHED,
    Ingredient,
    IngredientNotTrustedError,
    ManifestSigner,
    SelfCheckError,
    SigningError,
    self_check,
)

SIGNERS = ("registry", "bitkom", "hsm")
JSON = "application/json"
V1 = b'{"slug":"sme-participation","text":"Support SMEs.","version":1}'
V2 = b'{"slug":"sme-participation","text":"Support SMEs and start-ups.","version":2}'
V3 = b'{"slug":"sme-participation","version":3,"withdrawn":true}'


def _identity(version: int, content: bytes) -> dict[str, object]:
    return {"kind": "recommendation", "slug": "sme-participation", "version": version,
            "sha256": hashlib.sha256(content).hexdigest(), "association": None}


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> KeyStore:
    directory = tmp_path_factory.mktemp("provenance") / "keys"
    init_keys(directory, SIGNERS)
    return KeyStore.load(directory)


@pytest.fixture(scope="session")
def tsa(keys) -> Iterator[LoopbackTSA]:
    authority = TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key, chain=keys.tsa_chain)
    with authority.serve_loopback() as server:
        yield server


@pytest.fixture(scope="session")
def signer(keys, tsa) -> ManifestSigner:
    return ManifestSigner(keys, tsa_url=tsa.url)


@pytest.fixture(scope="session")
def anchors(keys) -> bytes:
    return keys.trust_anchors_pem


@pytest.fixture(scope="session")
def v1(signer) -> bytes:
    return signer.sign_sidecar(V1, JSON, signer_name="registry", title="SME participation v1",
                               action=CREATED, identity=_identity(1, V1))


@pytest.fixture(scope="session")
def v2(signer, v1) -> bytes:
    return signer.sign_sidecar(V2, JSON, signer_name="registry", title="SME participation v2",
                               action=EDITED, identity=_identity(2, V2),
                               parent_manifest=v1, parent_content=V1)


def _pdf(text: str) -> bytes:
    document = FPDF()
    document.set_compression(False)  # keep the page text findable, to tamper with it
    document.add_page()
    document.set_font("helvetica", size=12)
    document.cell(text=text)
    return bytes(document.output())


def _fingerprint(certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


# --- a first version ----------------------------------------------------------------------------


def test_json_sidecar_reads_trusted_with_only_the_root_as_anchor(keys, anchors, v1):
    report = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors)

    assert report.state == "Trusted" and report.trusted
    assert report.codes == ()
    assert {"assertion.dataHash.match", "signingCredential.trusted",
            "claimSignature.validated"} <= set(report.success_codes)
    assert report.label.startswith("urn:c2pa:")
    assert report.title == "SME participation v1"
    assert report.identity == _identity(1, V1)
    assert report.actions == ({"action": CREATED, "digitalSourceType": DIGITAL_CREATION},)
    assert report.ingredients == ()


def test_report_names_the_signer_and_its_certificate(keys, anchors, v1):
    report = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors)
    certificate = keys.signer_certificate("registry")

    assert report.signer_common_name == "registry C2PA signer"
    assert report.signer_organization == "registry"
    assert report.signer_serial_number == str(certificate.serial_number)
    assert report.signer_certificate_sha256 == _fingerprint(certificate)


def test_manifest_carries_a_trusted_timestamp(anchors, v1):
    report = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors)

    assert report.timestamped and report.timestamp_trusted
    assert "timeStamp.validated" in report.success_codes
    signed_at = datetime.fromisoformat(report.signed_at)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=5)


def test_a_shared_verification_context_gives_the_same_answer(anchors, v1):
    context = verification_context(anchors)
    first = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors, context=context)
    second = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors, context=context)
    assert first.state == second.state == "Trusted"


def test_csv_sidecar_binds_the_exact_bytes(signer, anchors):
    table = b"slug,version\r\nsme-participation,1\r\n"
    manifest = signer.sign_sidecar(table, "text/csv", signer_name="registry", title="export.csv",
                                   action=CREATED, identity={"kind": "export", "format": "csv"})

    assert read_manifest(table, "text/csv", manifest, trust_anchors_pem=anchors).trusted
    tampered = read_manifest(table.replace(b"1", b"2"), "text/csv", manifest,
                             trust_anchors_pem=anchors)
    assert tampered.state == "Invalid"
    assert "assertion.dataHash.mismatch" in tampered.codes


# --- tampering and foreign material -------------------------------------------------------------


def test_one_changed_content_byte_reads_invalid(anchors, v1):
    content = bytearray(V1)
    content[10] ^= 0x01
    report = read_manifest(bytes(content), JSON, v1, trust_anchors_pem=anchors)

    assert report.state == "Invalid"
    assert "assertion.dataHash.mismatch" in report.codes


def _signed_regions(manifest: bytes, keys: KeyStore) -> dict[str, int]:
    """Offsets of bytes the claim signature covers, found by what they contain."""
    certificate = keys.signer_certificate("registry").public_bytes(serialization.Encoding.DER)
    return {
        "identity assertion": manifest.index(b"sme-participation"),
        "claim title": manifest.index(b"SME participation v1"),
        "claim generator": manifest.index(b"tech7-registry"),
        "data hash": manifest.index(b"jumbf manifest") - 40,
        "signing certificate": manifest.index(certificate) + 200,
        # COSE_Sign1 ends with the signature itself (RFC 9052 §4.2); it is the last item.
        "signature value": len(manifest) - 10,
    }


@pytest.mark.parametrize("region", ["identity assertion", "claim title", "claim generator",
                                    "data hash", "signing certificate", "signature value"])
def test_a_flipped_byte_in_a_signed_region_never_reads_trusted(keys, anchors, v1, region):
    manifest = bytearray(v1)
    manifest[_signed_regions(v1, keys)[region]] ^= 0x01
    report = read_manifest(V1, JSON, bytes(manifest), trust_anchors_pem=anchors)

    assert report.state == "Invalid"
    assert report.codes


def test_unsigned_manifest_bytes_are_not_protected(anchors, v1):
    # Characterisation of c2pa 0.91, not a wish: JUMBF box headers and description boxes, and the
    # padding c2pa reserves in the COSE unprotected header, are outside the claim signature (about
    # a third of a sidecar's bytes). Changing them changes nothing a verifier reports, so a
    # manifest is identified by its claim, and the transparency log must record the sha256 of the
    # exact sidecar bytes it published.
    original = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors)
    manifest = bytearray(v1)
    manifest[0] ^= 0x01  # high byte of the outer superbox length
    damaged = read_manifest(V1, JSON, bytes(manifest), trust_anchors_pem=anchors)

    assert damaged.state == "Trusted"
    assert (damaged.label, damaged.identity, damaged.signer_certificate_sha256) == (
        original.label, original.identity, original.signer_certificate_sha256)
    assert hashlib.sha256(manifest).digest() != hashlib.sha256(v1).digest()


def test_a_damaged_timestamp_is_not_a_failure(keys, anchors, v1):
    # Also c2pa 0.91 behaviour: the token sits outside the claim signature, and one that does not
    # verify only earns an informational code, so the manifest stays Trusted while its certificate
    # is valid (and the time may still be shown). Auditors of registry manifests must therefore
    # require timestamp_trusted, not just Trusted.
    tsa_certificate = keys.tsa_certificate.public_bytes(serialization.Encoding.DER)
    manifest = bytearray(v1)
    manifest[v1.index(tsa_certificate) + 200] ^= 0x01
    report = read_manifest(V1, JSON, bytes(manifest), trust_anchors_pem=anchors)

    assert report.trusted
    assert not report.timestamp_trusted
    assert "timeStamp.untrusted" in report.informational_codes


@settings(max_examples=25, deadline=None)
@given(index=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_random_manifest_damage_is_caught_or_changes_nothing_reported(anchors, v1, index, bit):
    original = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors)
    manifest = bytearray(v1)
    manifest[index % len(manifest)] ^= 1 << bit
    report = read_manifest(V1, JSON, bytes(manifest), trust_anchors_pem=anchors)

    if report.state == "Trusted":
        assert (report.label, report.identity, report.actions, report.signer_serial_number) == (
            original.label, original.identity, original.actions, original.signer_serial_number)
        # The timestamp token sits in the unsigned COSE header: damage to it silently drops it
        # (Trusted while the certificate is valid), but can never make it claim another time.
        assert report.signed_at in (None, original.signed_at)
        # The fingerprint comes from our own reading of the store: absent is fine, wrong is not.
        assert report.signer_certificate_sha256 in (None, original.signer_certificate_sha256)


@pytest.mark.parametrize(
    ("content", "media_type", "manifest"),
    [
        (V1, JSON, b"garbage"),
        (V1, JSON, b""),
        (V1, JSON, None),  # JSON has nowhere to embed a manifest
        (b"%PDF-1.7 garbage", "application/pdf", None),
        (b"", "application/pdf", None),
        (_pdf("no manifest here"), "application/pdf", None),
        (V1, "no/such-type", b"\x00\x00\x00\x08jumb"),
    ],
    ids=["garbage-manifest", "empty-manifest", "json-without-sidecar", "garbage-pdf", "empty-pdf",
         "unsigned-pdf", "truncated-jumbf"],
)
def test_unreadable_input_is_reported_not_raised(anchors, content, media_type, manifest):
    report = read_manifest(content, media_type, manifest, trust_anchors_pem=anchors)

    assert report.state == "Invalid"
    assert report.codes == ("manifest.unreadable",)
    assert report.error


def test_garbage_trust_anchors_are_reported_not_raised(v1):
    report = read_manifest(V1, JSON, v1, trust_anchors_pem=b"-----BEGIN CERTIFICATE-----\nAA==\n")
    assert report.state == "Invalid" and report.codes == ("manifest.unreadable",)


def test_a_manifest_from_another_ca_is_not_trusted(foreign_keys, anchors):
    foreign = ManifestSigner(foreign_keys)
    manifest = foreign.sign_sidecar(V1, JSON, signer_name="registry", title="impostor",
                                    action=CREATED, identity=_identity(1, V1))

    report = read_manifest(V1, JSON, manifest, trust_anchors_pem=anchors)

    assert report.state != "Trusted"
    assert "signingCredential.untrusted" in report.codes
    # Intact, and trusted by its own CA: the difference is only the anchor.
    assert read_manifest(V1, JSON, manifest,
                         trust_anchors_pem=foreign_keys.trust_anchors_pem).trusted


def test_our_manifest_is_not_trusted_under_another_root(foreign_keys, v1):
    report = read_manifest(V1, JSON, v1, trust_anchors_pem=foreign_keys.trust_anchors_pem)
    assert report.state != "Trusted"


# --- provenance chains --------------------------------------------------------------------------


def test_the_previous_version_is_a_trusted_parent_ingredient(anchors, v1, v2):
    parent_label = read_manifest(V1, JSON, v1, trust_anchors_pem=anchors).label
    report = read_manifest(V2, JSON, v2, trust_anchors_pem=anchors)

    assert report.trusted
    (parent,) = report.ingredients
    assert parent.relationship == "parentOf"
    assert parent.state == "Trusted"
    assert parent.active_manifest == parent_label
    assert parent.title == "SME participation v1"
    assert [a["action"] for a in report.actions] == ["c2pa.opened", EDITED]
    assert report.actions[1]["digitalSourceType"] == HUMAN_EDITS
    assert report.identity == _identity(2, V2)


def test_a_chain_of_three_versions(signer, anchors, v2):
    v3 = signer.sign_sidecar(V3, JSON, signer_name="registry", title="SME participation v3",
                             action=PUBLISHED, identity=_identity(3, V3),
                             parent_manifest=v2, parent_content=V2)
    report = read_manifest(V3, JSON, v3, trust_anchors_pem=anchors)

    assert report.trusted
    assert [a["action"] for a in report.actions] == ["c2pa.opened", PUBLISHED]
    assert [(i.title, i.state) for i in report.ingredients] == [("SME participation v2", "Trusted")]


def test_a_parent_altered_inside_the_child_store_invalidates_the_child(anchors, v2):
    # v2's store carries v1's manifest; change v1's identity assertion in there.
    damaged = bytearray(v2)
    damaged[v2.index(b"sme-participation")] ^= 0x01
    report = read_manifest(V2, JSON, bytes(damaged), trust_anchors_pem=anchors)

    assert report.state == "Invalid"
    assert "ingredient.manifest.mismatch" in report.codes
    (parent,) = report.ingredients
    assert parent.state == "Invalid"
    assert "ingredient.manifest.mismatch" in parent.codes


def test_a_tampered_parent_is_refused(signer, v1):
    with pytest.raises(IngredientNotTrustedError, match=r"assertion\.dataHash\.mismatch") as caught:
        signer.sign_sidecar(V2, JSON, signer_name="registry", title="v2", action=EDITED,
                            identity=_identity(2, V2), parent_manifest=v1,
                            parent_content=V1 + b" ")
    assert caught.value.report.state == "Invalid"


def test_a_parent_from_another_ca_is_refused(signer, foreign_keys):
    foreign = ManifestSigner(foreign_keys)
    manifest = foreign.sign_sidecar(V1, JSON, signer_name="registry", title="v1", action=CREATED,
                                    identity=_identity(1, V1))
    with pytest.raises(IngredientNotTrustedError):
        signer.sign_sidecar(V2, JSON, signer_name="registry", title="v2", action=EDITED,
                            identity=_identity(2, V2), parent_manifest=manifest,
                            parent_content=V1)


@pytest.mark.parametrize(
    ("action", "parent"),
    [(CREATED, True), (EDITED, False), (PUBLISHED, False), ("c2pa.deleted", False)],
)
def test_action_and_parent_must_agree(signer, v1, action, parent):
    with pytest.raises(ValueError):
        signer.sign_sidecar(V2, JSON, signer_name="registry", title="v2", action=action,
                            identity=_identity(2, V2),
                            parent_manifest=v1 if parent else None,
                            parent_content=V1 if parent else None)


def test_identity_must_be_json(signer):
    with pytest.raises(ValueError, match="JSON"):
        signer.sign_sidecar(V1, JSON, signer_name="registry", title="v1", action=CREATED,
                            identity={"when": datetime.now(UTC)})


def test_an_unknown_signer_is_a_signing_error(signer):
    with pytest.raises(SigningError, match="unknown signer"):
        signer.sign_sidecar(V1, JSON, signer_name="nobody", title="v1", action=CREATED,
                            identity=_identity(1, V1))


# --- exports ------------------------------------------------------------------------------------


def test_a_json_bundle_lists_its_versions_as_components(signer, anchors, v1, v2):
    bundle = json.dumps([json.loads(V1), json.loads(V2)]).encode()
    manifest = signer.sign_sidecar(
        bundle, JSON, signer_name="registry", title="declaration export", action=CREATED,
        identity={"kind": "export", "format": "json"},
        ingredients=[Ingredient("SME participation v1", JSON, V1, v1),
                     Ingredient("SME participation v2", JSON, V2, v2)],
    )
    report = read_manifest(bundle, JSON, manifest, trust_anchors_pem=anchors)

    assert report.trusted
    assert [(i.title, i.relationship, i.state) for i in report.ingredients] == [
        ("SME participation v1", "componentOf", "Trusted"),
        ("SME participation v2", "componentOf", "Trusted"),
    ]
    assert [a["action"] for a in report.actions] == [CREATED, "c2pa.placed", "c2pa.placed"]


def test_a_pdf_export_with_embedded_manifest_reads_trusted(signer, anchors, keys, v1):
    pdf = _pdf("TECH7 declaration")
    signed = signer.sign_embedded(
        pdf, signer_name="registry", title="declaration.pdf", action=CREATED,
        identity={"kind": "export", "format": "pdf"},
        ingredients=[Ingredient("SME participation v1", JSON, V1, v1)],
    )
    report = read_manifest(signed, "application/pdf", None, trust_anchors_pem=anchors)

    assert signed != pdf and signed.startswith(b"%PDF")
    assert report.trusted
    assert report.identity == {"kind": "export", "format": "pdf"}
    assert [(i.relationship, i.state) for i in report.ingredients] == [("componentOf", "Trusted")]
    # The fingerprint is found in the manifest store embedded in the PDF, too.
    assert report.signer_certificate_sha256 == _fingerprint(keys.signer_certificate("registry"))


def test_a_changed_pdf_reads_invalid(signer, anchors):
    signed = signer.sign_embedded(_pdf("TECH7 declaration"), signer_name="registry",
                                  title="d.pdf", action=CREATED, identity={"kind": "export"})
    tampered = signed.replace(b"TECH7 declaration", b"TECH8 declaration", 1)
    assert tampered != signed
    report = read_manifest(tampered, "application/pdf", None, trust_anchors_pem=anchors)
    assert report.state == "Invalid"


def test_a_signed_pdf_can_be_the_parent_of_the_next_one(signer, anchors):
    first = signer.sign_embedded(_pdf("edition 1"), signer_name="registry", title="edition 1",
                                 action=CREATED, identity={"edition": 1})
    second = signer.sign_embedded(_pdf("edition 2"), signer_name="registry", title="edition 2",
                                  action=EDITED, identity={"edition": 2}, parent_content=first)
    report = read_manifest(second, "application/pdf", None, trust_anchors_pem=anchors)

    assert report.trusted
    assert [(i.title, i.relationship, i.state) for i in report.ingredients] == [
        ("edition 1", "parentOf", "Trusted")
    ]


# --- timestamps and expiry ----------------------------------------------------------------------


def test_a_timestamp_keeps_a_manifest_trusted_after_its_certificate_expires(tmp_path, tsa):
    # c2pa refuses to sign with a certificate that is not valid *now*, so the certificate is
    # issued to live two seconds, used at once, and the reads happen after it has expired.
    init_keys(tmp_path / "keys", ["brief"], signer_validity=timedelta(seconds=2))
    keys = KeyStore.load(tmp_path / "keys")
    expiry = keys.signer_certificate("brief").not_valid_after_utc
    with TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                            chain=keys.tsa_chain).serve_loopback() as own_tsa:
        stamped = ManifestSigner(keys, tsa_url=own_tsa.url)
        with_timestamp = stamped.sign_sidecar(V1, JSON, signer_name="brief", title="v1",
                                              action=CREATED, identity=_identity(1, V1))
    unstamped = ManifestSigner(keys, tsa_url=None)
    without_timestamp = unstamped.sign_sidecar(V1, JSON, signer_name="brief", title="v1",
                                               action=CREATED, identity=_identity(1, V1))
    assert datetime.now(UTC) < expiry, "signing took longer than the certificate lived"

    before = read_manifest(V1, JSON, without_timestamp, trust_anchors_pem=keys.trust_anchors_pem)
    assert before.trusted and not before.timestamped
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 1.1)

    kept = read_manifest(V1, JSON, with_timestamp, trust_anchors_pem=keys.trust_anchors_pem)
    lost = read_manifest(V1, JSON, without_timestamp, trust_anchors_pem=keys.trust_anchors_pem)
    assert kept.trusted and kept.timestamp_trusted
    assert lost.state == "Invalid"
    assert "signingCredential.expired" in lost.codes


def test_an_expired_certificate_cannot_sign(tmp_path):
    now = datetime.now(UTC)
    init_keys(tmp_path / "keys", ["old"], now=now - timedelta(days=3),
              signer_validity=timedelta(days=1))
    signer = ManifestSigner(KeyStore.load(tmp_path / "keys"))
    with pytest.raises(SigningError, match="not valid"):
        signer.sign_sidecar(V1, JSON, signer_name="old", title="v1", action=CREATED,
                            identity=_identity(1, V1))


# --- rotation -----------------------------------------------------------------------------------


def test_rotation_keeps_old_manifests_trusted_and_signs_with_the_new_certificate(keys, tmp_path,
                                                                                  tsa):
    directory = tmp_path / "keys"
    shutil.copytree(keys.directory, directory)
    old_keys = KeyStore.load(directory)
    old_manifest = ManifestSigner(old_keys, tsa_url=tsa.url).sign_sidecar(
        V1, JSON, signer_name="bitkom", title="v1", action=CREATED, identity=_identity(1, V1))

    new_certificate = rotate_signer(directory, "bitkom")
    new_keys = KeyStore.load(directory)
    new_manifest = ManifestSigner(new_keys, tsa_url=tsa.url).sign_sidecar(
        V2, JSON, signer_name="bitkom", title="v2", action=EDITED, identity=_identity(2, V2),
        parent_manifest=old_manifest, parent_content=V1)

    old = read_manifest(V1, JSON, old_manifest, trust_anchors_pem=new_keys.trust_anchors_pem)
    new = read_manifest(V2, JSON, new_manifest, trust_anchors_pem=new_keys.trust_anchors_pem)
    assert old.trusted and new.trusted
    assert old.signer_certificate_sha256 == _fingerprint(old_keys.signer_certificate("bitkom"))
    assert new.signer_certificate_sha256 == _fingerprint(new_certificate)
    assert old.signer_certificate_sha256 != new.signer_certificate_sha256
    assert new.ingredients[0].state == "Trusted"


# --- keys held elsewhere ------------------------------------------------------------------------


def _hsm(keys: KeyStore, encoding: str, calls: list[int]):
    """A stand-in for an HSM: signs with a key this test holds, as an HSM API would."""
    key = serialization.load_pem_private_key(keys.signer_key_pem("hsm"), password=None)

    def sign(data: bytes) -> bytes:
        calls.append(len(data))
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))
        if encoding == "der":
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@pytest.mark.parametrize("encoding", ["der", "raw"])
def test_a_callback_signer_reads_trusted(keys, anchors, tsa, encoding):
    calls: list[int] = []
    signer = ManifestSigner(
        keys, tsa_url=tsa.url,
        sign_callbacks={"hsm": _hsm(keys, encoding, calls)},
        callback_chains_pem={"hsm": keys.signer_chain_pem("hsm")},
    )
    manifest = signer.sign_sidecar(V1, JSON, signer_name="hsm", title="v1", action=CREATED,
                                   identity=_identity(1, V1))
    report = read_manifest(V1, JSON, manifest, trust_anchors_pem=anchors)

    assert calls, "the callback was not used"
    assert report.trusted and report.timestamp_trusted
    assert report.signer_certificate_sha256 == _fingerprint(keys.signer_certificate("hsm"))


def test_a_callback_returning_a_bad_signature_fails_to_sign(keys):
    signer = ManifestSigner(keys, sign_callbacks={"hsm": lambda data: bytes(64)})
    with pytest.raises(SigningError):
        signer.sign_sidecar(V1, JSON, signer_name="hsm", title="v1", action=CREATED,
                            identity=_identity(1, V1))


def test_a_callback_signer_needs_a_certificate_chain(keys):
    with pytest.raises(ValueError, match="no certificate chain"):
        ManifestSigner(keys, sign_callbacks={"kms-only": lambda data: b""})


# --- process and settings guards ----------------------------------------------------------------


def test_a_signer_refuses_to_work_in_another_process(keys, monkeypatch):
    signer = ManifestSigner(keys)
    monkeypatch.setattr(signing.os, "getpid", lambda: -1)
    with pytest.raises(RuntimeError, match="per worker"):
        signer.sign_sidecar(V1, JSON, signer_name="registry", title="v1", action=CREATED,
                            identity=_identity(1, V1))


def test_self_check_passes_with_the_right_anchors(signer, anchors):
    self_check(signer, anchors)


def test_self_check_fails_with_the_wrong_anchors(signer, foreign_keys):
    with pytest.raises(SelfCheckError, match="registry"):
        self_check(signer, foreign_keys.trust_anchors_pem, signer_names=["registry"])


def test_self_check_fails_when_the_tsa_is_gone(keys, anchors):
    authority = TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key)
    with authority.serve_loopback() as gone:
        url = gone.url
    with pytest.raises(SelfCheckError, match="cannot sign"):
        self_check(ManifestSigner(keys, tsa_url=url), anchors, signer_names=["registry"])


class _CountingHandler(BaseHTTPRequestHandler):
    """Records the path of every GET; answers 404."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


def test_reading_never_fetches_a_remote_manifest(keys, anchors):
    handler = type("Handler", (_CountingHandler,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/manifest.c2pa"
        # A PDF that points at its manifest instead of embedding it (C2PA 2.2 §11.5).
        context = c2pa.Context.from_dict({"trust": {"trust_anchors": anchors.decode()},
                                          "builder": {"thumbnail": {"enabled": False}}})
        actions = {"actions": [{"action": CREATED, "digitalSourceType": DIGITAL_CREATION}]}
        builder = c2pa.Builder(
            {"title": "remote", "assertions": [{"label": "c2pa.actions", "data": actions}]},
            context=context,
        )
        builder.set_no_embed()
        builder.set_remote_url(url)
        with c2pa.Signer.from_info(c2pa.C2paSignerInfo(
                c2pa.C2paSigningAlg.ES256, keys.signer_chain_pem("registry"),
                keys.signer_key_pem("registry"), None)) as c2pa_signer:
            destination = io.BytesIO()
            builder.sign(c2pa_signer, "application/pdf", io.BytesIO(_pdf("remote")), destination)
        pointing = destination.getvalue()

        report = read_manifest(pointing, "application/pdf", None, trust_anchors_pem=anchors)

        assert report.state == "Invalid" and report.codes == ("manifest.unreadable",)
        assert handler.hits == []
        # Control: with c2pa's defaults the same read does go out, so the check above is real.
        with pytest.raises(c2pa.C2paError):
            c2pa.Reader("application/pdf", io.BytesIO(pointing), context=context)
        assert handler.hits == ["/manifest.c2pa"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- trust settings ------------------------------------------------------------------------------


def test_every_context_uses_the_split_trust_settings(anchors):
    # c2pa-rs 0.92 trusts a timestamp only through a "tsa" entry of trust.anchors: with the
    # older single trust.trust_anchors it reads our timestamps as timeStamp.untrusted.
    pem = anchors.decode("ascii")
    for verify_after_sign in (True, False):
        settings = signing._settings(anchors, verify_after_sign=verify_after_sign)
        assert settings["trust"] == {"anchors": [
            {"trust_anchors": pem, "trust_kind": "manifest"},
            {"trust_anchors": pem, "trust_kind": "tsa"}]}
        assert settings["verify"]["verify_trust"] and settings["verify"]["verify_timestamp_trust"]
        assert not settings["verify"]["remote_manifest_fetch"]


def test_the_verifier_settings_of_both_forms(anchors, foreign_keys):
    pem, other = anchors.decode(), foreign_keys.trust_anchors_pem.decode()
    uri = "https://registry.example/v1/trust/anchors.pem"
    verify = {"verify_after_reading": True, "verify_trust": True, "verify_timestamp_trust": True,
              "remote_manifest_fetch": False, "ocsp_fetch": False}
    split = manifests.verifier_settings(manifests.trust_settings(
        anchors, foreign_keys.trust_anchors_pem, trust_uri=uri))
    assert split == {"version": 1, "verify": verify, "trust": {"anchors": [
        {"trust_anchors": pem, "trust_kind": "manifest", "trust_uri": uri},
        {"trust_anchors": other, "trust_kind": "tsa", "trust_uri": uri}]}}
    assert manifests.verifier_settings(manifests.legacy_trust_settings(anchors)) == {
        "version": 1, "verify": verify, "trust": {"trust_anchors": pem}}


def test_split_settings_refuse_a_bundle_without_certificates(anchors):
    with pytest.raises(ValueError):
        manifests.trust_settings(b"-----BEGIN CERTIFICATE-----\nAA==\n")
    with pytest.raises(ValueError):
        manifests.trust_settings(anchors, b"not a pem")


def _read_with(settings: dict, content: bytes, manifest: bytes) -> tuple[str, set[str]]:
    reader = c2pa.Reader(JSON, io.BytesIO(content), manifest,
                         context=c2pa.Context.from_dict(settings))
    results = json.loads(reader.json())["validation_results"]["activeManifest"]
    codes = {c["code"] for kind in ("success", "failure", "informational")
             for c in results.get(kind, [])}
    return reader.get_validation_state(), codes


@pytest.mark.parametrize("form", ["split", "legacy"])
def test_our_manifests_read_trusted_with_a_trusted_timestamp_in_both_forms(anchors, v1, v2, form):
    trust = (manifests.trust_settings(anchors) if form == "split"
             else manifests.legacy_trust_settings(anchors))
    settings = manifests.verifier_settings(trust)
    for content, manifest in ((V1, v1), (V2, v2)):
        state, codes = _read_with(settings, content, manifest)
        assert state == "Trusted"
        assert {"signingCredential.trusted", "timeStamp.trusted"} <= codes


def test_the_split_settings_are_read_not_ignored(foreign_keys, v1):
    # c2pa ignores keys it does not know: the foreign root must make the same manifest untrusted.
    settings = manifests.verifier_settings(manifests.trust_settings(foreign_keys.trust_anchors_pem))
    state, codes = _read_with(settings, V1, v1)
    assert state == "Valid"
    assert {"signingCredential.untrusted", "timeStamp.untrusted"} <= codes
