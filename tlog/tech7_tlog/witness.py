"""C2SP tlog-witness wire formats: the add-checkpoint request, the 409 size body and the 200 response.

A log asks a witness to cosign a checkpoint with ``POST <submission prefix>/add-checkpoint``
(C2SP tlog-witness "add-checkpoint"), whose body is::

    old <size of the checkpoint the witness last cosigned>
    <base64 consistency proof hash>        (zero to 63 lines)
    <empty line>
    <signed checkpoint note>

The witness answers 200 with its cosignature lines, or 409 with its own size as
``text/x.tlog.size`` when ``old`` is not it. These functions read and write those bodies; the
checks a witness makes in between belong to the witness.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from tech7_tlog.merkle import HASH_SIZE
from tech7_tlog.note import (
    Checkpoint,
    NoteError,
    _b64decode,
    _parse_uint64,
    parse_checkpoint,
    split_note,
)

MAX_PROOF_LINES = 63
"""Consistency proof lines a client may send at most (C2SP tlog-witness "add-checkpoint")."""

TLOG_SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""Media type of a 409 answer's body: the witness's latest cosigned size (C2SP tlog-witness "add-checkpoint")."""


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint body: the old size, the consistency proof and the signed checkpoint.

    ``note`` is the signed checkpoint as sent; ``checkpoint`` is its parsed note text. Nothing is
    verified yet: neither the signatures nor the proof.
    """

    old_size: int
    proof: tuple[bytes, ...]
    note: str
    checkpoint: Checkpoint


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint request body: ``old N``, one base64 hash a line, an empty line, the note."""
    if len(proof) > MAX_PROOF_LINES:
        raise NoteError(f"a consistency proof sent to a witness has at most {MAX_PROOF_LINES} hashes")
    lines = [f"old {old_size}"]
    for position, proof_hash in enumerate(proof):
        if len(proof_hash) != HASH_SIZE:
            raise NoteError(f"consistency proof hash {position} must be {HASH_SIZE} bytes")
        lines.append(base64.b64encode(proof_hash).decode())
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Read an add-checkpoint request body strictly (C2SP tlog-witness "add-checkpoint").

    Every line ends in a newline; the old size line is ``old``, one space and an ASCII decimal
    with no leading zeroes; each proof line is the canonical base64 of one 32-byte hash, at most
    63 of them; then an empty line and a signed checkpoint note, well formed but not verified.
    Raises :class:`~tech7_tlog.note.NoteError` for anything else.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("the request body is not valid UTF-8") from exc
    line, separator, rest = text.partition("\n")
    if not separator or not line.startswith("old "):
        raise NoteError("the request body starts with the line 'old <size>'")
    old_size = _parse_uint64(line.removeprefix("old "), "old size")
    proof: list[bytes] = []
    while True:
        line, separator, rest = rest.partition("\n")
        if not separator:
            raise NoteError("the request body needs an empty line between the proof and the checkpoint")
        if line == "":
            break
        if len(proof) == MAX_PROOF_LINES:
            raise NoteError(f"the consistency proof has more than {MAX_PROOF_LINES} lines")
        proof_hash = _b64decode(line, "consistency proof hash")
        if len(proof_hash) != HASH_SIZE:
            raise NoteError(f"consistency proof hashes are {HASH_SIZE} bytes, got {len(proof_hash)}")
        proof.append(proof_hash)
    note_text, _ = split_note(rest)
    return AddCheckpoint(old_size, tuple(proof), rest, parse_checkpoint(note_text))


def format_tlog_size(size: int) -> bytes:
    """The 409 body: the tree size in ASCII decimal and a newline (C2SP tlog-witness "add-checkpoint")."""
    return f"{size}\n".encode()


def parse_tlog_size(body: bytes) -> int:
    """Read a ``text/x.tlog.size`` body made by :func:`format_tlog_size`."""
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n"):
        raise NoteError("a text/x.tlog.size body is a decimal size and a newline")
    return _parse_uint64(text[:-1], "witness tree size")


def add_cosignatures(note: str, response: bytes) -> str:
    """``note`` with a witness's 200 answer appended: one or more signature lines, each ending in a newline.

    C2SP tlog-witness lets a client concatenate the answer to the checkpoint and verify the
    result as a note; this checks the answer is signature lines only, so the concatenation stays
    one well-formed note. The cosignatures themselves are verified by
    :func:`tech7_tlog.cosignature.verify_cosignatures`, with the witness keys one trusts.
    """
    try:
        lines = response.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("the witness's answer is not valid UTF-8") from exc
    if not lines or "\n\n" in lines:
        raise NoteError("the witness's answer is not one or more signature lines")
    _, before = split_note(note)
    _, after = split_note(note + lines)
    if len(after) <= len(before):
        raise NoteError("the witness's answer holds no signature line")
    return note + lines
