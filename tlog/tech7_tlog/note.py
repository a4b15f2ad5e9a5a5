"""C2SP signed-note with Ed25519, the C2SP tlog-checkpoint body, and C2SP tlog-proof.

A signed note is a text, a blank line, and signature lines ``— <key name> base64(key ID ||
signature)``. A checkpoint is a note whose text is the log's origin, tree size and root hash;
a tlog-proof bundles an entry's index and inclusion proof with such a signed checkpoint so that
anyone holding the log's public key can check the entry was logged, offline.

Of the note signature types, Ed25519 (0x01) is implemented here and the witnesses' timestamped
Ed25519 cosignatures (0x04) in :mod:`tech7_tlog.cosignature`: the spec asks implementations to
support only the types their design needs, and signatures of other types are simply unknown keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tech7_tlog.merkle import HASH_SIZE, verify_inclusion

SIGNATURE_TYPE_ED25519 = 0x01
"""The signature type identifier byte of Ed25519 note signatures (C2SP signed-note "Signature types")."""

MAX_SIGNATURES = 100
"""Signature lines a note may carry before it is rejected; the spec requires accepting at least 16."""

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
"""First line of a C2SP tlog-proof."""

_SIGNATURE_PREFIX = "\N{EM DASH} "
_KEY_ID_SIZE = 4
_ED25519_PUBLIC_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_MAX_UINT64 = (1 << 64) - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, verifier key, checkpoint or tlog-proof is malformed, or a note does not verify."""


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier: the key name, its 4-byte key ID and the public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of the note text ``text``."""
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a C2SP tlog-checkpoint: origin, tree size, root hash and any extension lines."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class TlogProof:
    """A parsed C2SP tlog-proof: optional extra data, entry index, inclusion proof, signed checkpoint."""

    extra: bytes | None
    index: int
    proof_hashes: tuple[bytes, ...]
    signed_checkpoint: str


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID of an Ed25519 note key (C2SP signed-note "Ed25519 signatures").

    key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]; Go's sumdb/note
    calls it the key hash. It identifies a key, it does not authenticate one: verifiers always
    check the signature with the public key they were configured with.
    """
    return typed_key_id(name, SIGNATURE_TYPE_ED25519, _raw_public_key(public_key))


def typed_key_id(name: str, signature_type: int, key_material: bytes) -> bytes:
    """SHA-256(key name || 0x0A || signature type || key material)[:4] (C2SP signed-note "Signatures").

    Every signature type derives its key ID this way; the type byte keeps one public key used for
    two signature types (a note key and a cosigner key, C2SP tlog-cosignature "Format") apart.
    """
    _check_key_name(name)
    material = name.encode() + b"\n" + bytes([signature_type]) + key_material
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The verifier key ``<name>+<key ID hex>+<base64(0x01 || public key)>`` clients are given.

    This is the encoding Go's sumdb/note and the C2SP ecosystem (witnesses, tlog clients) exchange.
    """
    return typed_verifier_key(name, SIGNATURE_TYPE_ED25519, public_key)


def typed_verifier_key(name: str, signature_type: int, public_key: Ed25519PublicKey) -> str:
    """The vkey ``<name>+<key ID hex>+<base64(type || public key)>`` (C2SP signed-note "Verifier keys")."""
    raw = _raw_public_key(public_key)
    encoded = base64.b64encode(bytes([signature_type]) + raw).decode()
    return f"{name}+{typed_key_id(name, signature_type, raw).hex()}+{encoded}"


def parse_verifier_key(text: str) -> Verifier:
    """Read a verifier key made by :func:`verifier_key`, checking its key ID against its name and key."""
    name, kid, public_key = parse_typed_verifier_key(text, SIGNATURE_TYPE_ED25519)
    return Verifier(name=name, key_id=kid, public_key=public_key)


def parse_typed_verifier_key(text: str, signature_type: int) -> tuple[str, bytes, Ed25519PublicKey]:
    """Read a vkey of ``signature_type`` holding an Ed25519 public key: (key name, key ID, public key).

    The key ID is checked against the name and key (C2SP signed-note "Verifier keys"); a key of
    another type, or not 32 bytes, is refused.
    """
    fields = text.split("+", 2)
    if len(fields) != 3:
        raise NoteError("a verifier key is <name>+<key ID>+<base64 key>")
    name, id_hex, encoded = fields
    _check_key_name(name)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise NoteError(f"verifier key ID must be 8 lowercase hex digits, got {id_hex!r}")
    key = _b64decode(encoded, "verifier key")
    if len(key) != 1 + _ED25519_PUBLIC_KEY_SIZE or key[0] != signature_type:
        raise NoteError(
            f"verifier key is not of type 0x{signature_type:02x} followed by a 32-byte Ed25519 key"
        )
    try:
        public_key = Ed25519PublicKey.from_public_bytes(key[1:])
    except ValueError as exc:
        raise NoteError("verifier key holds an invalid Ed25519 public key") from exc
    if typed_key_id(name, signature_type, key[1:]).hex() != id_hex:
        raise NoteError(f"verifier key ID {id_hex} does not match the key name and public key")
    return name, bytes.fromhex(id_hex), public_key


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` with Ed25519: the text, a blank line, ``— <name> base64(key ID || signature)``.

    The signature covers the text including its final newline, not the blank line (C2SP
    signed-note "Format"). The text must itself be valid note text: ending in a newline, with no
    ASCII control characters other than newline.
    """
    _check_note_characters(text)
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    signature = private_key.sign(text.encode())
    kid = key_id(name, private_key.public_key())
    return f"{text}\n{format_signature_line(name, kid + signature)}"


def format_signature_line(name: str, blob: bytes) -> str:
    """One note signature line ``— <name> base64(blob)``, newline included (C2SP signed-note "Format").

    ``blob`` is the key ID followed by the signature, whatever the signature type: Ed25519 note
    signatures here, and the timestamped cosignatures of :mod:`tech7_tlog.cosignature`.
    """
    _check_key_name(name)
    return f"{_SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> str:
    """Verify a signed note against trusted keys and return its text (C2SP signed-note "Signatures").

    Signature lines whose (key name, key ID) is not among ``verifiers`` are ignored, as the spec
    requires, so witnesses' cosignatures and rotated keys do not break verification. A signature
    from a known key that fails to verify rejects the whole note, and so does a note with no
    verified signature from a known key. Raises :class:`NoteError` for those and for malformed
    notes: not UTF-8, control characters, no blank line before the signatures, malformed lines.
    """
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = False
    for name, kid, signature in signatures:
        verifier = known.get((name, kid))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), signature):
            raise NoteError(f"signature by {name} (key ID {kid.hex()}) does not verify")
        verified = True
    if not verified:
        raise NoteError("note has no signature from a known key")
    return text


def format_checkpoint(origin: str, tree_size: int, root_hash: bytes) -> str:
    """The C2SP tlog-checkpoint note text ``<origin>\\n<tree size>\\n<base64 root>\\n``, ready to sign."""
    _check_origin(origin)
    if not 0 <= tree_size <= _MAX_UINT64:
        raise NoteError(f"tree size must be between 0 and 2**64 - 1, got {tree_size}")
    if len(root_hash) != HASH_SIZE:
        raise NoteError(f"root hash must be {HASH_SIZE} bytes, got {len(root_hash)}")
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a C2SP tlog-checkpoint note text (already verified with :func:`open_note`) strictly.

    At least three non-empty lines, each ending in a newline: a non-empty origin; the tree size
    as an ASCII decimal with no leading zeroes; the root hash as canonical base64 of 32 bytes.
    Any further lines are extension lines and must be non-empty. Raises :class:`NoteError`.
    """
    _check_note_characters(text)
    if not text.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint text needs an origin, a tree size and a root hash line")
    origin, size_text, root_text, *extensions = lines
    _check_origin(origin)
    tree_size = _parse_uint64(size_text, "checkpoint tree size")
    root_hash = _b64decode(root_text, "checkpoint root hash")
    if len(root_hash) != HASH_SIZE:
        raise NoteError(f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(root_hash)}")
    if any(line == "" for line in extensions):
        raise NoteError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, tree_size, root_hash, extensions=tuple(extensions))


def format_tlog_proof(
    extra: bytes | None, index: int, proof_hashes: Sequence[bytes], signed_checkpoint: str
) -> str:
    """A C2SP tlog-proof: header, optional ``extra`` line, ``index N``, proof hashes, blank line, checkpoint.

    ``proof_hashes`` is the RFC 9162 inclusion proof of entry ``index`` in the checkpoint's tree,
    leaf sibling first, one base64 hash per line. ``extra`` None omits the extra line; b"" writes
    an empty one. ``signed_checkpoint`` is included verbatim and must be a well-formed signed
    checkpoint note (it is not verified here: the reader of the proof does that).
    """
    if not 0 <= index <= _MAX_UINT64:
        raise NoteError(f"entry index must be between 0 and 2**64 - 1, got {index}")
    _check_signed_checkpoint(signed_checkpoint)
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append(f"extra {base64.b64encode(extra).decode()}")
    lines.append(f"index {index}")
    for position, proof_hash in enumerate(proof_hashes):
        if len(proof_hash) != HASH_SIZE:
            raise NoteError(f"inclusion proof hash {position} must be {HASH_SIZE} bytes")
        lines.append(base64.b64encode(proof_hash).decode())
    return "\n".join(lines) + "\n\n" + signed_checkpoint


def parse_tlog_proof(text: str) -> TlogProof:
    """Read a C2SP tlog-proof strictly, without verifying it (see :func:`verify_tlog_proof`).

    Raises :class:`NoteError` for a wrong header, a malformed extra or index line, a proof line
    that is not canonical base64 of 32 bytes, a missing blank line, or a malformed checkpoint note.
    """
    header, separator, rest = text.partition("\n")
    if header != TLOG_PROOF_HEADER or not separator:
        raise NoteError(f"a tlog-proof starts with the line {TLOG_PROOF_HEADER!r}")
    line, _, rest = rest.partition("\n")
    extra = None
    if line.startswith("extra "):
        extra = _b64decode(line.removeprefix("extra "), "tlog-proof extra data")
        line, _, rest = rest.partition("\n")
    if not line.startswith("index "):
        raise NoteError("a tlog-proof needs an 'index N' line after its header and optional extra line")
    index = _parse_uint64(line.removeprefix("index "), "tlog-proof index")
    proof_hashes: list[bytes] = []
    while True:
        line, separator, rest = rest.partition("\n")
        if not separator:
            raise NoteError("a tlog-proof needs a blank line between its inclusion proof and checkpoint")
        if line == "":
            break
        proof_hash = _b64decode(line, "tlog-proof inclusion proof hash")
        if len(proof_hash) != HASH_SIZE:
            raise NoteError(f"tlog-proof inclusion proof hashes are {HASH_SIZE} bytes, got {len(proof_hash)}")
        proof_hashes.append(proof_hash)
    _check_signed_checkpoint(rest)
    return TlogProof(extra=extra, index=index, proof_hashes=tuple(proof_hashes), signed_checkpoint=rest)


def verify_tlog_proof(text: str, leaf_hash: bytes, origin: str, verifiers: Iterable[Verifier]) -> TlogProof:
    """Check a C2SP tlog-proof offline: ``origin``'s checkpoint, signed by a known key, includes ``leaf_hash``.

    Raises :class:`NoteError` if the proof or its checkpoint is malformed, not signed by a known
    key, or for another log; :class:`~tech7_tlog.merkle.ProofError` if the inclusion proof fails.
    The extra data is returned but, as the spec warns, not authenticated.
    """
    proof = parse_tlog_proof(text)
    checkpoint = parse_checkpoint(open_note(proof.signed_checkpoint, verifiers))
    if checkpoint.origin != origin:
        raise NoteError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    verify_inclusion(
        leaf_hash, proof.index, checkpoint.tree_size, proof.proof_hashes, checkpoint.root_hash
    )
    return proof


def split_note(note: str | bytes) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Split a signed note into its text and ``(key name, key ID, signature)`` triples, checking the format.

    Nothing is verified: :func:`open_note` and :func:`tech7_tlog.cosignature.verify_cosignatures`
    check the signatures of the keys they are given.

    The text ends at the last blank line (C2SP signed-note "Format": the text MAY contain empty
    lines) and includes its final newline; every line after it must be a signature line.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _check_note_characters(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("note has no signature lines, or its last one does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise NoteError("signature lines start with an em dash (U+2014) and a space")
        name, space, encoded = line.removeprefix(_SIGNATURE_PREFIX).partition(" ")
        if not space:
            raise NoteError("a signature line is '— <key name> <base64 signature>'")
        _check_key_name(name)
        blob = _b64decode(encoded, f"signature by {name}")
        if len(blob) <= _KEY_ID_SIZE:
            raise NoteError(f"signature by {name} is too short to hold a key ID and a signature")
        signatures.append((name, blob[:_KEY_ID_SIZE], blob[_KEY_ID_SIZE:]))
    return text, signatures


def _check_signed_checkpoint(note: str) -> None:
    """Reject a string not shaped like a signed checkpoint note (structure only, signatures unchecked)."""
    text, _ = split_note(note)
    parse_checkpoint(text)


def _check_note_characters(text: str) -> None:
    """Notes are valid UTF-8 with no ASCII control characters but newline (C2SP signed-note "Format")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be encoded as UTF-8
        raise NoteError("note is not valid UTF-8") from exc
    for char in text:
        if char < " " and char != "\n":
            raise NoteError(f"note contains the control character U+{ord(char):04X}")


def _check_key_name(name: str) -> None:
    """Key names are non-empty and contain neither Unicode spaces nor '+' (C2SP signed-note "Format")."""
    if not name or "+" in name or any(char.isspace() for char in name):
        raise NoteError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")


def _check_origin(origin: str) -> None:
    """A checkpoint origin is one non-empty line (C2SP tlog-checkpoint "Note text")."""
    if not origin or "\n" in origin:
        raise NoteError("checkpoint origin must be a non-empty single line")
    _check_note_characters(origin)


def _parse_uint64(text: str, what: str) -> int:
    """An ASCII decimal with no leading zeroes that fits in 64 bits."""
    if not _DECIMAL.fullmatch(text):
        raise NoteError(f"{what} must be an ASCII decimal with no leading zeroes, got {text!r}")
    value = int(text)
    if value > _MAX_UINT64:
        raise NoteError(f"{what} does not fit in 64 bits")
    return value


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard base64 (RFC 4648 §4), accepting only its canonical spelling.

    Python's decoder tolerates non-zero padding bits, so two spellings could decode to the same
    bytes; requiring the re-encoding to match keeps every signed or hashed field single-valued.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(data).decode() != text:
        raise NoteError(f"{what} is not canonical base64")
    return data


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of an Ed25519 public key."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
