"""C2SP tlog-cosignature: a witness's timestamped statement that it saw a checkpoint, cosignature/v1.

A cosignature is a note signature line on a checkpoint (C2SP tlog-cosignature "Format")::

    — <witness name> base64(key ID[4] || u64 big-endian timestamp || Ed25519 signature[64])

whose key ID is SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4], and whose
signature covers ``cosignature/v1\\ntime <timestamp>\\n`` followed by the whole checkpoint text
(C2SP tlog-cosignature "Signed message"). It states that, as of that time, the consistent tree
head of largest size the witness has seen for the origin has that root hash.

Cosigners share one small interface, :class:`Cosigner`, so that another cosignature type (the
ML-DSA-44 subtree cosignatures the spec also describes) can sit beside :class:`Ed25519Cosigner`
in a witness without the witness changing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tech7_tlog.note import (
    NoteError,
    _raw_public_key,
    format_signature_line,
    parse_checkpoint,
    parse_typed_verifier_key,
    split_note,
    typed_key_id,
    typed_verifier_key,
)

COSIGNATURE_TYPE_ED25519 = 0x04
"""Signature type byte of cosignature/v1 keys.

C2SP tlog-cosignature "Format"; tlog-policy "Public key representation".
"""

COSIGNATURE_V1_HEADER = "cosignature/v1"
"""The header line of the signed message, for domain separation (C2SP tlog-cosignature "Signed message")."""

MAX_TIMESTAMP = (1 << 63) - 1
"""The largest timestamp a cosignature carries: POSIX seconds, as a u64 that stays a signed 64-bit value."""

_TIMESTAMPED_SIGNATURE = struct.Struct(">Q64s")
"""``struct timestamped_signature { u64 timestamp; u8 signature[64]; }`` (RFC 8446 §3 notation)."""


class Cosigner(Protocol):
    """What a witness needs of a cosigning key, whatever its type."""

    @property
    def name(self) -> str:
        """The cosigner's key name, as it appears in its signature lines."""
        ...

    def verifier_key(self) -> str:
        """The vkey that verifiers and policy files are given (C2SP signed-note "Verifier keys")."""
        ...

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """The signature line (newline included) cosigning ``checkpoint_text`` as of ``timestamp``."""
        ...


@dataclass(frozen=True)
class Ed25519Cosigner:
    """A cosignature/v1 signing key: the witness name and its Ed25519 private key."""

    name: str
    private_key: Ed25519PrivateKey

    def verifier_key(self) -> str:
        """``<name>+<key ID hex>+base64(0x04 || public key)`` (C2SP tlog-cosignature "Format")."""
        return cosigner_verifier_key(self.name, self.private_key.public_key())

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """``— <name> base64(key ID || timestamp || signature)``, newline included.

        ``checkpoint_text`` is the note text of a checkpoint (its origin, size and root lines and
        any extension lines, with the final newline; no signature lines), which the signature
        covers whole, extension lines included (C2SP tlog-cosignature "Signed message").
        """
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise NoteError(f"a cosignature timestamp is between 1 and 2**63 - 1, got {timestamp}")
        signature = self.private_key.sign(signed_message(checkpoint_text, timestamp))
        kid = cosigner_key_id(self.name, self.private_key.public_key())
        return format_signature_line(self.name, kid + _TIMESTAMPED_SIGNATURE.pack(timestamp, signature))


@dataclass(frozen=True)
class CosignatureVerifier:
    """A cosignature/v1 verifier: the witness's key name, 4-byte key ID and Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def verify(self, checkpoint_text: str, blob: bytes) -> int | None:
        """The timestamp of ``blob`` (a signature line's bytes after the key ID) if it verifies, else None."""
        if len(blob) != _TIMESTAMPED_SIGNATURE.size:
            return None
        timestamp, signature = _TIMESTAMPED_SIGNATURE.unpack(blob)
        try:
            self.public_key.verify(signature, signed_message(checkpoint_text, timestamp))
        except InvalidSignature:
            return None
        return timestamp


def cosigner_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """SHA-256(name || "\\n" || 0x04 || 32-byte Ed25519 public key)[:4] (C2SP tlog-cosignature "Format")."""
    return typed_key_id(name, COSIGNATURE_TYPE_ED25519, _raw_public_key(public_key))


def cosigner_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The witness's vkey ``<name>+<key ID hex>+base64(0x04 || public key)`` (C2SP tlog-cosignature "Format")."""
    return typed_verifier_key(name, COSIGNATURE_TYPE_ED25519, public_key)


def parse_cosigner_key(text: str) -> CosignatureVerifier:
    """Read a witness vkey of type 0x04, checking its key ID against its name and key."""
    name, kid, public_key = parse_typed_verifier_key(text, COSIGNATURE_TYPE_ED25519)
    return CosignatureVerifier(name=name, key_id=kid, public_key=public_key)


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` + the checkpoint text (C2SP tlog-cosignature "Signed message").

    The time line is the timestamp in ASCII decimal with no leading zeroes, and must equal the
    timestamp of the ``timestamped_signature`` it is signed with.
    """
    return f"{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{checkpoint_text}".encode()


def verify_cosignatures(
    note: str | bytes, verifiers: Iterable[CosignatureVerifier]
) -> dict[tuple[str, bytes], int]:
    """The cosignatures on a signed checkpoint that verify: (key name, key ID) → timestamp.

    Signature lines of keys not among ``verifiers`` (the log's own signature, witnesses one does
    not trust) are ignored, as C2SP signed-note "Signatures" requires; a line whose name and key
    ID are a known witness's but whose signature fails rejects the note (:class:`NoteError`).
    This checks only cosignatures: the log's signature is :func:`tech7_tlog.note.open_note`'s.
    """
    text, signatures = split_note(note)
    parse_checkpoint(text)
    known = {(v.name, v.key_id): v for v in verifiers}
    cosigned: dict[tuple[str, bytes], int] = {}
    for name, kid, blob in signatures:
        verifier = known.get((name, kid))
        if verifier is None:
            continue
        timestamp = verifier.verify(text, blob)
        if timestamp is None:
            raise NoteError(f"cosignature by {name} (key ID {kid.hex()}) does not verify")
        cosigned[name, kid] = max(timestamp, cosigned.get((name, kid), 0))
    return cosigned
