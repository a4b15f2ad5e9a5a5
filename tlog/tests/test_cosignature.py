"""C2SP tlog-cosignature, cosignature/v1: key IDs, vkeys, the signed message and verification.

The expected bytes are built here from the spec's own definitions with hashlib, struct and the
cryptography library, independently of the module under test.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tech7_tlog.cosignature import (
    Ed25519Cosigner,
    cosigner_key_id,
    cosigner_verifier_key,
    parse_cosigner_key,
    signed_message,
    verify_cosignatures,
)
from tech7_tlog.note import NoteError, format_checkpoint, parse_verifier_key, sign_note, verifier_key

EM_DASH = "\N{EM DASH}"
ROOT = bytes(range(32))
TEXT = format_checkpoint("example.com/behind-the-sofa", 20852163, ROOT)


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)


def test_key_id_is_sha256_of_name_newline_0x04_key(witness_key):
    expected = hashlib.sha256(b"witness.example/w1\n\x04" + raw(witness_key)).digest()[:4]
    assert cosigner_key_id("witness.example/w1", witness_key.public_key()) == expected


def test_vkey_has_type_0x04_and_reads_back(witness_key):
    vkey = cosigner_verifier_key("witness.example/w1", witness_key.public_key())
    name, id_hex, encoded = vkey.split("+")
    assert name == "witness.example/w1"
    assert base64.b64decode(encoded) == b"\x04" + raw(witness_key)
    assert bytes.fromhex(id_hex) == cosigner_key_id(name, witness_key.public_key())
    verifier = parse_cosigner_key(vkey)
    assert verifier.name == name and verifier.key_id.hex() == id_hex


def test_a_note_key_is_not_a_cosigner_key_and_back(witness_key):
    note_vkey = verifier_key("witness.example/w1", witness_key.public_key())
    with pytest.raises(NoteError, match="type 0x04"):
        parse_cosigner_key(note_vkey)
    cosigner_vkey = cosigner_verifier_key("witness.example/w1", witness_key.public_key())
    with pytest.raises(NoteError, match="type 0x01"):
        parse_verifier_key(cosigner_vkey)


def test_signed_message_is_header_time_line_and_checkpoint():
    assert signed_message(TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        + base64.b64encode(ROOT) + b"\n"
    )


def test_signature_line_is_key_id_timestamp_and_ed25519_signature(witness_key):
    line = Ed25519Cosigner("witness.example/w1", witness_key).cosign(TEXT, 1679315147)
    assert line.startswith(f"{EM_DASH} witness.example/w1 ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == hashlib.sha256(b"witness.example/w1\n\x04" + raw(witness_key)).digest()[:4]
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    assert timestamp == 1679315147
    message = f"cosignature/v1\ntime {timestamp}\n{TEXT}".encode()
    witness_key.public_key().verify(blob[12:], message)  # raises if the signature is not over it


@pytest.mark.parametrize("timestamp", [0, -1, 1 << 63])
def test_timestamp_out_of_range_is_refused(witness_key, timestamp):
    with pytest.raises(NoteError, match="timestamp"):
        Ed25519Cosigner("w", witness_key).cosign(TEXT, timestamp)


def test_verify_cosignatures_finds_known_witnesses_and_ignores_others(witness_key):
    log_key = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    note = sign_note(TEXT, "example.com/behind-the-sofa", log_key)
    note += Ed25519Cosigner("witness.example/w1", witness_key).cosign(TEXT, 100)
    note += Ed25519Cosigner("witness.example/w2", other).cosign(TEXT, 200)
    w1 = parse_cosigner_key(cosigner_verifier_key("witness.example/w1", witness_key.public_key()))
    assert verify_cosignatures(note, [w1]) == {(w1.name, w1.key_id): 100}
    # The log's own Ed25519 signature has another key ID, so a cosigner key of the same name and
    # public key never mistakes it for a cosignature.
    same_as_log = parse_cosigner_key(cosigner_verifier_key("example.com/behind-the-sofa", log_key.public_key()))
    assert verify_cosignatures(note, [same_as_log]) == {}


def test_a_known_cosignature_that_fails_rejects_the_note(witness_key):
    line = Ed25519Cosigner("witness.example/w1", witness_key).cosign(TEXT, 100)
    other_text = format_checkpoint("example.com/behind-the-sofa", 20852164, ROOT)
    note = sign_note(other_text, "log", Ed25519PrivateKey.generate()) + line  # moved to another checkpoint
    w1 = parse_cosigner_key(cosigner_verifier_key("witness.example/w1", witness_key.public_key()))
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(note, [w1])


def test_a_changed_timestamp_fails(witness_key):
    line = Ed25519Cosigner("witness.example/w1", witness_key).cosign(TEXT, 100)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1
    forged = f"{EM_DASH} witness.example/w1 {base64.b64encode(bytes(blob)).decode()}\n"
    note = sign_note(TEXT, "log", Ed25519PrivateKey.generate()) + forged
    w1 = parse_cosigner_key(cosigner_verifier_key("witness.example/w1", witness_key.public_key()))
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(note, [w1])
