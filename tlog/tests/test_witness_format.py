"""C2SP tlog-witness bodies: the add-checkpoint request, the text/x.tlog.size body, the answer."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_tlog.cosignature import Ed25519Cosigner
from tech7_tlog.note import NoteError, format_checkpoint, sign_note
from tech7_tlog.witness import (
    MAX_PROOF_LINES,
    add_cosignatures,
    format_add_checkpoint,
    format_tlog_size,
    parse_add_checkpoint,
    parse_tlog_size,
)

TEXT = format_checkpoint("example.com/behind-the-sofa", 20852163, bytes(range(32)))
NOTE = sign_note(TEXT, "example.com/behind-the-sofa", Ed25519PrivateKey.generate())
PROOF = [bytes([i]) * 32 for i in range(4)]


def test_request_body_is_old_line_proof_lines_empty_line_checkpoint():
    body = format_add_checkpoint(20852014, PROOF, NOTE)
    expected = "old 20852014\n" + "".join(base64.b64encode(h).decode() + "\n" for h in PROOF) + "\n" + NOTE
    assert body == expected.encode()
    request = parse_add_checkpoint(body)
    assert request.old_size == 20852014
    assert request.proof == tuple(PROOF)
    assert request.note == NOTE
    assert request.checkpoint.tree_size == 20852163


def test_request_with_no_proof():
    request = parse_add_checkpoint(b"old 0\n\n" + NOTE.encode())
    assert request.old_size == 0 and request.proof == ()


@pytest.mark.parametrize(
    "body",
    [
        b"old 01\n\n" + NOTE.encode(),  # leading zero
        b"old  1\n\n" + NOTE.encode(),
        b"old -1\n\n" + NOTE.encode(),
        b"Old 1\n\n" + NOTE.encode(),
        b"old 1\n" + NOTE.encode(),  # no empty line before the checkpoint: its lines are not hashes
        b"old 1\nAAAA\n\n" + NOTE.encode(),  # a 3-byte "hash"
        b"old 1\n" + b"\n".join([base64.b64encode(bytes(32))] * (MAX_PROOF_LINES + 1)) + b"\n\n" + NOTE.encode(),
        b"old 1\n\n" + TEXT.encode(),  # a checkpoint with no signature
        b"old 1\n\nnot a checkpoint\n\n\xe2\x80\x94 x AAAAAAAAAA==\n",
        b"old 1\n\n\xff" + NOTE.encode(),
        b"old 1",
    ],
)
def test_malformed_requests_are_refused(body):
    with pytest.raises(NoteError):
        parse_add_checkpoint(body)


def test_63_proof_lines_are_accepted():
    proof = [bytes(32)] * MAX_PROOF_LINES
    assert len(parse_add_checkpoint(format_add_checkpoint(1, proof, NOTE)).proof) == MAX_PROOF_LINES
    with pytest.raises(NoteError):
        format_add_checkpoint(1, proof + [bytes(32)], NOTE)


def test_tlog_size_body():
    assert format_tlog_size(42) == b"42\n"
    assert parse_tlog_size(b"42\n") == 42
    for bad in (b"42", b"042\n", b"x\n", b""):
        with pytest.raises(NoteError):
            parse_tlog_size(bad)


def test_cosignature_answer_appends_to_the_note():
    line = Ed25519Cosigner("witness.example/w1", Ed25519PrivateKey.generate()).cosign(TEXT, 5)
    assert add_cosignatures(NOTE, line.encode()) == NOTE + line
    for bad in (b"", b"hello\n", line.encode().rstrip(b"\n"), b"\n" + line.encode()):
        with pytest.raises(NoteError):
            add_cosignatures(NOTE, bad)
