"""The signing certificate read from a manifest store's COSE signature (tech7_audit.jumbf)."""

from __future__ import annotations

import random

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from tech7_audit import jumbf
from tech7_audit.manifests import read_manifest

from app.pki.authority import KeyStore, init_keys
from app.provenance.signing import CREATED, ManifestSigner

CONTENT = b'{"slug":"probe","version":1}'


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> KeyStore:
    directory = tmp_path_factory.mktemp("jumbf") / "keys"
    init_keys(directory, ("registry", "bitkom"))
    return KeyStore.load(directory)


@pytest.fixture(scope="module")
def sidecar(keys) -> tuple[bytes, str]:
    manifest = ManifestSigner(keys, tsa_url=None).sign_sidecar(
        CONTENT, "application/json", signer_name="registry", title="probe", action=CREATED,
        identity={"kind": "probe"})
    report = read_manifest(CONTENT, "application/json", manifest,
                           trust_anchors_pem=keys.trust_anchors_pem)
    assert report.label
    return manifest, report.label


def test_the_signers_certificate_is_found_in_a_sidecar(keys, sidecar):
    manifest, label = sidecar
    expected = keys.signer_certificate("registry")
    assert jumbf.signing_certificate(manifest, label, expected.serial_number) == expected


def test_a_serial_number_that_c2pa_did_not_verify_finds_nothing(keys, sidecar):
    manifest, label = sidecar
    other = keys.signer_certificate("bitkom")
    assert jumbf.signing_certificate(manifest, label, other.serial_number) is None
    serial = keys.signer_certificate("registry").serial_number
    assert jumbf.signing_certificate(manifest, label + "x", serial) is None


def test_the_chain_may_sit_in_the_unprotected_header(keys):
    certificate = keys.signer_certificate("registry")
    der = certificate.public_bytes(serialization.Encoding.DER)
    unprotected = cbor2.dumps(cbor2.CBORTag(18, [b"", {33: der}, None, b"signature"]))
    assert jumbf._x5chain_leaf(unprotected) == certificate
    protected = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -7, 33: [der]}), {}, None, b"s"]))
    assert jumbf._x5chain_leaf(protected) == certificate
    assert jumbf._x5chain_leaf(cbor2.dumps([b"", {}, None, b"s"])) is None


def test_damaged_stores_give_no_certificate_and_never_raise(keys, sidecar):
    manifest, label = sidecar
    serial = keys.signer_certificate("registry").serial_number
    rng = random.Random(7)
    for cut in range(0, len(manifest), max(1, len(manifest) // 200)):
        jumbf.signing_certificate(manifest[:cut], label, serial)  # must not raise
    for _ in range(200):
        damaged = bytearray(manifest)
        for _ in range(3):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        found = jumbf.signing_certificate(bytes(damaged), label, serial)
        # A flipped byte inside the certificate may still parse: only the serial number is
        # vouched for here, and c2pa reads such a store Invalid (the chain is signed).
        assert found is None or found.serial_number == serial
    assert jumbf.signing_certificate(b"", label, serial) is None
