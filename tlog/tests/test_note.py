"""C2SP signed-note (Ed25519), tlog-checkpoint bodies and tlog-proof.

The fixed vectors come from the reference implementation's documentation (Go's
golang.org/x/mod/sumdb/note, "PeterNeumann"), the C2SP signed-note example ("example.com/foo"),
the Go checksum database's published verifier key and the C2SP tlog-checkpoint example. Ed25519
is deterministic, so signing the reference text with the reference key must give the reference
note byte for byte.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from tech7_tlog.merkle import ProofError, inclusion_proof, leaf_hash, node_hash, tree_root
from tech7_tlog.note import (
    Checkpoint,
    NoteError,
    TlogProof,
    Verifier,
    format_checkpoint,
    format_tlog_proof,
    key_id,
    open_note,
    parse_checkpoint,
    parse_tlog_proof,
    parse_verifier_key,
    sign_note,
    verifier_key,
    verify_tlog_proof,
)

EM_DASH = "\N{EM DASH}"

GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]  # from PRIVATE+KEY+PeterNeumann+c74f20a3+...
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n"
    + f"{EM_DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM_DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
# A checkpoint signed by the Go checksum database, as it served one.
SUMDB_CHECKPOINT = (
    "go.sum database tree\n65664258\nWVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=\n\n"
    f"{EM_DASH} sum.golang.org Az3grligJmgX7KGyGPKybykNTh3VgsbLvUuvOwrM5zLVlulmFp2wdvbxOw74/gcNxURShXEpb7RXcs3+BYflYN+w0gQ=\n"
)

SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

ORIGIN = "registry.example/log"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test log key").digest())
LOG_VERIFIER = parse_verifier_key(verifier_key(ORIGIN, LOG_KEY.public_key()))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"another key").digest())


def _go_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(GO_SEED)


# --- keys ---------------------------------------------------------------------------------------


def test_reference_key_encodes_to_the_reference_verifier_key() -> None:
    public_key = _go_key().public_key()
    assert key_id("PeterNeumann", public_key).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", public_key) == GO_VKEY


@pytest.mark.parametrize("text", [GO_VKEY, SPEC_VKEY, SUMDB_VKEY])
def test_verifier_keys_round_trip(text: str) -> None:
    verifier = parse_verifier_key(text)
    assert verifier_key(verifier.name, verifier.public_key) == text
    assert verifier.key_id.hex() == text.split("+")[1]


def test_key_id_is_the_spec_definition() -> None:
    public_key = LOG_KEY.public_key()
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    assert key_id(ORIGIN, public_key) == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert LOG_VERIFIER.key_id == key_id(ORIGIN, public_key)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key ID does not match
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not the canonical hex
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not base64 of 33 bytes
        "PeterNeumann+c74f20a3+AhpcW2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+" + base64.b64encode(b"\x02" + bytes(32)).decode(),  # not Ed25519
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
    ],
)
def test_malformed_verifier_keys_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(text)


# --- signing and opening notes ---------------------------------------------------------------------


def test_signing_reproduces_the_reference_note() -> None:
    assert sign_note(GO_TEXT, "PeterNeumann", _go_key()) == GO_NOTE
    assert open_note(GO_NOTE, [parse_verifier_key(GO_VKEY)]) == GO_TEXT


def test_the_spec_example_note_opens() -> None:
    assert open_note(SPEC_NOTE, [parse_verifier_key(SPEC_VKEY)]) == "This is an example message.\n"
    assert open_note(SPEC_NOTE.encode(), [parse_verifier_key(SPEC_VKEY)]) == "This is an example message.\n"


@settings(max_examples=100, deadline=None)
@given(
    text=st.lists(
        st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), max_size=40), min_size=1, max_size=5
    ).map(lambda lines: "\n".join(lines) + "\n")
)
def test_sign_and_open_round_trip(text: str) -> None:
    note = sign_note(text, ORIGIN, LOG_KEY)
    assert open_note(note, [LOG_VERIFIER]) == text


def test_a_note_text_may_contain_blank_lines() -> None:
    text = "first\n\nsecond\n\n"
    assert open_note(sign_note(text, ORIGIN, LOG_KEY), [LOG_VERIFIER]) == text


def test_wrong_key_is_rejected() -> None:
    note = sign_note("hello\n", ORIGIN, OTHER_KEY)
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(note, [LOG_VERIFIER])
    # Same name and key ID but another public key: the signature is checked, and fails.
    impostor = Verifier(name=ORIGIN, key_id=key_id(ORIGIN, OTHER_KEY.public_key()), public_key=LOG_KEY.public_key())
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, [impostor])
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(note, [])


def test_altered_text_or_signature_is_rejected() -> None:
    note = sign_note("tree size 5\n", ORIGIN, LOG_KEY)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("5", "6", 1), [LOG_VERIFIER])
    text, signature_line = note.split("\n\n")
    name, encoded = signature_line.removeprefix(f"{EM_DASH} ").rstrip("\n").split(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[10] ^= 1
    altered = f"{text}\n\n{EM_DASH} {name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        open_note(altered, [LOG_VERIFIER])


def test_unknown_signatures_are_ignored_but_a_bad_known_one_rejects() -> None:
    text = "cosigned\n"
    ours = sign_note(text, ORIGIN, LOG_KEY)
    theirs = sign_note(text, "witness.example", OTHER_KEY).split("\n\n")[1]
    assert open_note(ours + theirs, [LOG_VERIFIER]) == text
    assert open_note(text + "\n" + theirs + ours.split("\n\n")[1], [LOG_VERIFIER]) == text
    # A line with a known name but an unknown key ID is another key: ignored.
    foreign = f"{EM_DASH} {ORIGIN} {base64.b64encode(b'abcd' + bytes(64)).decode()}\n"
    assert open_note(ours + foreign, [LOG_VERIFIER]) == text
    # A line from the known key that does not verify rejects the note even beside a good one.
    forged = f"{EM_DASH} {ORIGIN} {base64.b64encode(LOG_VERIFIER.key_id + bytes(64)).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        open_note(ours + forged, [LOG_VERIFIER])


def _signature_line() -> str:
    return sign_note("x\n", ORIGIN, LOG_KEY).split("\n\n")[1]


@pytest.mark.parametrize(
    "note",
    [
        "",
        "text without signatures\n",
        "text\n\n",
        "text\n" + _signature_line(),  # no blank line
        "text\n\n" + _signature_line().rstrip("\n"),  # last line unterminated
        "text\n\n" + _signature_line().replace(EM_DASH, "-", 1),
        "text\n\n" + _signature_line().replace(EM_DASH, "\N{EN DASH}", 1),
        "text\n\n" + _signature_line() + "\n",  # trailing blank line
        "text\n\n" + _signature_line() + "not a signature\n",
        "text\r\n\n" + _signature_line(),  # control character
        "te\x00xt\n\n" + _signature_line(),
        "text\n\n" + _signature_line().replace(ORIGIN, "bad+name"),
        "text\n\n" + _signature_line().replace(f" {ORIGIN} ", f" {ORIGIN}  "),
        "text\n\n" + f"{EM_DASH} {ORIGIN}\n",
        "text\n\n" + f"{EM_DASH} {ORIGIN} \n",
        "text\n\n" + f"{EM_DASH} {ORIGIN} !!!!\n",
        "text\n\n" + f"{EM_DASH} {ORIGIN} AAAAAA==\n",  # too short to hold a key ID and a signature
        "text\n\n" + f"{EM_DASH} {ORIGIN} AAAAAAB=\n",  # non-canonical base64
        "text\ud800\n\n" + _signature_line(),  # not encodable as UTF-8
    ],
)
def test_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note, [LOG_VERIFIER])


def test_signature_count_limit() -> None:
    note = sign_note("many witnesses\n", ORIGIN, LOG_KEY)
    witnesses = "".join(
        sign_note("many witnesses\n", f"witness{i}.example", OTHER_KEY).split("\n\n")[1] for i in range(99)
    )
    # The spec requires accepting at least 16 signatures; up to 100 are accepted.
    assert open_note(note + witnesses, [LOG_VERIFIER]) == "many witnesses\n"
    with pytest.raises(NoteError, match="more than 100 signatures"):
        open_note(note + witnesses + witnesses[: witnesses.index("\n") + 1], [LOG_VERIFIER])


def test_invalid_utf8_bytes_are_rejected() -> None:
    note = sign_note("caf\u00e9\n", ORIGIN, LOG_KEY).encode()
    assert open_note(note, [LOG_VERIFIER]) == "caf\u00e9\n"
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(note.replace("\u00e9".encode(), b"\xe9"), [LOG_VERIFIER])


@pytest.mark.parametrize(("text", "name"), [("no newline", ORIGIN), ("", ORIGIN), ("tab\there\n", ORIGIN), ("ok\n", "has space"), ("ok\n", "a+b"), ("ok\n", "")])
def test_sign_note_refuses_what_it_cannot_sign(text: str, name: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, name, LOG_KEY)


# --- checkpoints -------------------------------------------------------------------------------------


def test_the_spec_checkpoint_parses() -> None:
    checkpoint = parse_checkpoint(SPEC_CHECKPOINT)
    assert checkpoint == Checkpoint(
        origin="example.com/behind-the-sofa",
        tree_size=20852163,
        root_hash=base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert format_checkpoint(checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash) == SPEC_CHECKPOINT


def test_a_checkpoint_signed_by_the_go_checksum_database_opens_and_parses() -> None:
    checkpoint = parse_checkpoint(open_note(SUMDB_CHECKPOINT, [parse_verifier_key(SUMDB_VKEY)]))
    assert checkpoint.origin == "go.sum database tree"
    assert checkpoint.tree_size == 65664258
    assert checkpoint.root_hash.hex() == "59554d543daac7e7d3ab7d73923e9402ac53e57e87bc6a6118cfa8f138676ec8"
    with pytest.raises(NoteError, match="does not verify"):
        open_note(SUMDB_CHECKPOINT.replace("65664258", "65664259"), [parse_verifier_key(SUMDB_VKEY)])


@settings(max_examples=100, deadline=None)
@given(
    origin=st.text(st.characters(min_codepoint=0x21, exclude_categories=("Cs",)), min_size=1, max_size=30),
    tree_size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
)
def test_checkpoints_round_trip(origin: str, tree_size: int, root_hash: bytes) -> None:
    assert parse_checkpoint(format_checkpoint(origin, tree_size, root_hash)) == Checkpoint(origin, tree_size, root_hash)


def test_checkpoint_extension_lines_are_kept() -> None:
    checkpoint = parse_checkpoint(SPEC_CHECKPOINT + "ext one\next two\n")
    assert checkpoint.extensions == ("ext one", "ext two")


ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n5\n" + ROOT_B64,  # no final newline
        "origin\n5\n",
        "\n5\n" + ROOT_B64 + "\n",
        "origin\n05\n" + ROOT_B64 + "\n",
        "origin\n-5\n" + ROOT_B64 + "\n",
        "origin\n+5\n" + ROOT_B64 + "\n",
        "origin\n 5\n" + ROOT_B64 + "\n",
        "origin\n5_0\n" + ROOT_B64 + "\n",
        "origin\n\u0665\n" + ROOT_B64 + "\n",  # an Arabic-Indic digit, not ASCII
        f"origin\n{2**64}\n" + ROOT_B64 + "\n",
        "origin\n5\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "origin\n5\nnot base64!\n",
        "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # non-canonical base64
        "origin\n5\n" + ROOT_B64 + "\n\n",  # empty extension line
        "origin\n5\n" + ROOT_B64 + "\next\n\n",
        "ori\tgin\n5\n" + ROOT_B64 + "\n",
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    ("origin", "tree_size", "root_hash"),
    [("", 1, bytes(32)), ("two\nlines", 1, bytes(32)), ("o", -1, bytes(32)), ("o", 2**64, bytes(32)), ("o", 1, bytes(31))],
)
def test_format_checkpoint_refuses_invalid_fields(origin: str, tree_size: int, root_hash: bytes) -> None:
    with pytest.raises(NoteError):
        format_checkpoint(origin, tree_size, root_hash)


# --- tlog-proof --------------------------------------------------------------------------------------


def _log(size: int) -> tuple[list[bytes], list[list[bytes]]]:
    entries = [b"document %d" % i for i in range(size)]
    levels = [[leaf_hash(e) for e in entries]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)])
    return entries, levels


ENTRIES, LEVELS = _log(13)
ROOT = tree_root(13, lambda level, index: LEVELS[level][index])
SIGNED_CHECKPOINT = sign_note(format_checkpoint(ORIGIN, 13, ROOT), ORIGIN, LOG_KEY)


def _proof_for(index: int, extra: bytes | None = None) -> str:
    hashes = inclusion_proof(index, 13, lambda level, i: LEVELS[level][i])
    return format_tlog_proof(extra, index, hashes, SIGNED_CHECKPOINT)


def test_tlog_proof_layout() -> None:
    hashes = inclusion_proof(5, 13, lambda level, i: LEVELS[level][i])
    text = format_tlog_proof(b"context", 5, hashes, SIGNED_CHECKPOINT)
    expected = (
        "c2sp.org/tlog-proof@v1\n"
        f"extra {base64.b64encode(b'context').decode()}\n"
        "index 5\n"
        + "".join(base64.b64encode(h).decode() + "\n" for h in hashes)
        + "\n"
        + SIGNED_CHECKPOINT
    )
    assert text == expected
    assert format_tlog_proof(None, 5, hashes, SIGNED_CHECKPOINT).split("\n")[1] == "index 5"


@pytest.mark.parametrize("extra", [None, b"", b"\x00\xffvrf proof"])
@pytest.mark.parametrize("index", [0, 5, 12])
def test_tlog_proofs_round_trip_and_verify(extra: bytes | None, index: int) -> None:
    text = _proof_for(index, extra)
    hashes = tuple(inclusion_proof(index, 13, lambda level, i: LEVELS[level][i]))
    expected = TlogProof(extra=extra, index=index, proof_hashes=hashes, signed_checkpoint=SIGNED_CHECKPOINT)
    assert parse_tlog_proof(text) == expected
    assert verify_tlog_proof(text, leaf_hash(ENTRIES[index]), ORIGIN, [LOG_VERIFIER]) == expected


def test_a_tlog_proof_with_no_hashes() -> None:
    checkpoint = sign_note(format_checkpoint(ORIGIN, 1, leaf_hash(b"only")), ORIGIN, LOG_KEY)
    text = format_tlog_proof(None, 0, [], checkpoint)
    assert text == "c2sp.org/tlog-proof@v1\nindex 0\n\n" + checkpoint
    assert verify_tlog_proof(text, leaf_hash(b"only"), ORIGIN, [LOG_VERIFIER]).proof_hashes == ()


def test_tlog_proof_verification_failures() -> None:
    text = _proof_for(7)
    with pytest.raises(ProofError):
        verify_tlog_proof(text, leaf_hash(ENTRIES[6]), ORIGIN, [LOG_VERIFIER])
    with pytest.raises(NoteError, match="expected"):
        verify_tlog_proof(text, leaf_hash(ENTRIES[7]), "another.example/log", [LOG_VERIFIER])
    with pytest.raises(NoteError, match="known key"):
        verify_tlog_proof(text, leaf_hash(ENTRIES[7]), ORIGIN, [parse_verifier_key(GO_VKEY)])
    with pytest.raises(ProofError):
        verify_tlog_proof(text.replace("index 7", "index 6"), leaf_hash(ENTRIES[7]), ORIGIN, [LOG_VERIFIER])


HASH_LINE = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "c2sp.org/tlog-proof@v2\nindex 0\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1",
        "c2sp.org/tlog-proof@v1\n\n\n" + SIGNED_CHECKPOINT,  # missing index
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nextra\nindex 0\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 0\nextra AA==\n\n" + SIGNED_CHECKPOINT,  # extra after index
        "c2sp.org/tlog-proof@v1\nindex 01\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex -1\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex x\n\n" + SIGNED_CHECKPOINT,
        f"c2sp.org/tlog-proof@v1\nindex {2**64}\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(64)).decode() + "\n\n" + SIGNED_CHECKPOINT,
        "c2sp.org/tlog-proof@v1\nindex 0\n" + HASH_LINE,  # no blank line, no checkpoint
        "c2sp.org/tlog-proof@v1\nindex 0\n" + HASH_LINE + "\n\n",  # no checkpoint
        "c2sp.org/tlog-proof@v1\nindex 0\n\nnot a checkpoint\n",
        "c2sp.org/tlog-proof@v1\nindex 0\n\n" + SIGNED_CHECKPOINT.split("\n\n")[0] + "\n",  # unsigned
    ],
)
def test_malformed_tlog_proofs_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        parse_tlog_proof(text)


def test_format_tlog_proof_refuses_invalid_fields() -> None:
    with pytest.raises(NoteError):
        format_tlog_proof(None, -1, [], SIGNED_CHECKPOINT)
    with pytest.raises(NoteError):
        format_tlog_proof(None, 0, [bytes(31)], SIGNED_CHECKPOINT)
    with pytest.raises(NoteError):
        format_tlog_proof(None, 0, [], "origin\n1\n")
