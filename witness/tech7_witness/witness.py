"""The checks of C2SP tlog-witness "add-checkpoint", in the spec's order, apart from HTTP.

For a request body the witness answers, in this order:

- 400 if the body is malformed;
- 404 if the checkpoint's origin is not a log it witnesses;
- 403 if no signature on it verifies with a key it trusts for that origin;
- 400 if ``old`` is bigger than the checkpoint's size;
- 409, with its own size as ``text/x.tlog.size``, if ``old`` is not the size it last cosigned;
- 422 if the consistency proof from its last checkpoint does not verify, which covers the same
  size with another root and a size-0 checkpoint whose root is not the empty tree's (the July
  2026 revision of the spec: both are inconsistent requests; older texts answered 409 for the
  former);
- otherwise 200 with its cosignature lines, once the new checkpoint is durably recorded.

It also serves the latest cosigned checkpoint of each origin, with the log's signatures it
verified and its own cosignatures, for monitors (``GET <monitoring prefix>/<origin hash>/checkpoint``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from tech7_tlog.cosignature import Cosigner
from tech7_tlog.merkle import ProofError, verify_consistency
from tech7_tlog.note import (
    NoteError,
    Verifier,
    format_signature_line,
    open_note,
    split_note,
)
from tech7_tlog.witness import (
    TLOG_SIZE_CONTENT_TYPE,
    AddCheckpoint,
    format_tlog_size,
    parse_add_checkpoint,
)

from tech7_witness.state import State

TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, media type and body."""

    status: int
    content_type: str
    body: bytes


class Witness:
    """A witness: its cosigners, the log keys it trusts per origin, and its state."""

    def __init__(self, cosigners: Sequence[Cosigner], logs: Iterable[Verifier], state: State) -> None:
        if not cosigners:
            raise ValueError("a witness needs at least one cosigner")
        self.cosigners = tuple(cosigners)
        self.logs: dict[str, list[Verifier]] = {}
        for verifier in logs:
            # A log's key name is its origin (C2SP tlog-policy "Defining a log"); several keys for
            # one origin are a log rotating its key.
            self.logs.setdefault(verifier.name, []).append(verifier)
        self.state = state

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one ``add-checkpoint`` request body (C2SP tlog-witness "add-checkpoint")."""
        try:
            request = parse_add_checkpoint(body)
        except NoteError as exc:
            return problem(400, f"malformed add-checkpoint request: {exc}")
        checkpoint = request.checkpoint
        verifiers = self.logs.get(checkpoint.origin)
        if verifiers is None:
            return problem(404, f"this witness does not witness the log {checkpoint.origin!r}")
        try:
            text = open_note(request.note, verifiers)
        except NoteError as exc:
            return problem(403, f"the checkpoint is not signed by a key of {checkpoint.origin!r}: {exc}")
        if request.old_size > checkpoint.tree_size:
            return problem(400, f"old size {request.old_size} is bigger than "
                                f"the checkpoint's size {checkpoint.tree_size}")
        with self.state.update(checkpoint.origin) as update:
            latest = update.latest
            if request.old_size != latest.tree_size:
                return Answer(409, TLOG_SIZE_CONTENT_TYPE, format_tlog_size(latest.tree_size))
            try:
                verify_consistency(
                    latest.tree_size, checkpoint.tree_size, latest.root_hash, checkpoint.root_hash, request.proof
                )
            except ProofError as exc:
                _report_inconsistency(request, exc)
                return problem(422, f"the checkpoint is not consistent with the one this witness cosigned: {exc}")
            timestamp = int(time.time())
            cosignatures = "".join(cosigner.cosign(text, timestamp) for cosigner in self.cosigners)
            update.record(checkpoint.tree_size, checkpoint.root_hash, _served_note(request, verifiers) + cosignatures)
        return Answer(200, TEXT_CONTENT_TYPE, cosignatures.encode())

    def cosigned_checkpoint(self, hashed_origin: str) -> Answer:
        """The latest checkpoint cosigned for the origin whose SHA-256 is ``hashed_origin`` (hex), or 404."""
        note = self.state.cosigned_note(hashed_origin)
        if note is None:
            return problem(404, "this witness never cosigned a checkpoint of that origin")
        return Answer(200, TEXT_CONTENT_TYPE, note.encode())


def _served_note(request: AddCheckpoint, verifiers: Sequence[Verifier]) -> str:
    """The checkpoint with only the signatures of the log keys this witness verified.

    ``open_note`` has refused the note if any of them failed, so every line of a known key is a
    verified one; lines of unknown keys are left out, as a monitor could not rely on them.
    """
    text, signatures = split_note(request.note)
    known = {(v.name, v.key_id) for v in verifiers}
    lines = [format_signature_line(name, kid + sig) for name, kid, sig in signatures if (name, kid) in known]
    return text + "\n" + "".join(lines)


def _report_inconsistency(request: AddCheckpoint, error: ProofError) -> None:
    """Keep the evidence of a log signing an inconsistent checkpoint (C2SP tlog-witness allows it).

    The signature verified, so this note is the log's own statement: written whole to stderr, it
    is what an auditor needs to show the log forked.
    """
    print(
        f"tech7-witness: refused an inconsistent checkpoint of {request.checkpoint.origin!r} "
        f"(old size {request.old_size}): {error}\n{request.note}",
        file=sys.stderr,
        flush=True,
    )


def problem(status: int, detail: str) -> Answer:
    """An RFC 9457 problem: ``about:blank``, the status's own title, and what was wrong."""
    problem = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return Answer(status, PROBLEM_CONTENT_TYPE, json.dumps(problem).encode())
