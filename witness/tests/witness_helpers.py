"""A log made in the test: its key, signed checkpoints and consistency proofs, and its forks."""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_tlog.merkle import consistency_proof, merkle_tree_hash
from tech7_tlog.note import format_checkpoint, sign_note, verifier_key
from tech7_tlog.witness import format_add_checkpoint


class Log:
    """A log of numbered entries, its Ed25519 key, signed checkpoints and consistency proofs.

    ``fork`` names another history under the same origin and key: the split view an attacker
    holding the log's key would show.
    """

    def __init__(self, origin: str = "log.example/test", key: Ed25519PrivateKey | None = None, fork: str = "") -> None:
        self.origin = origin
        self.key = key or Ed25519PrivateKey.generate()
        self.fork = fork

    @property
    def vkey(self) -> str:
        return verifier_key(self.origin, self.key.public_key())

    def forked(self, fork: str) -> Log:
        return Log(self.origin, self.key, fork)

    def leaves(self, size: int) -> tuple[bytes, ...]:
        return tuple(f"{self.fork}entry {i}".encode() for i in range(size))

    def root(self, size: int) -> bytes:
        return _tree_hash(self.leaves(size))

    def checkpoint(self, size: int) -> str:
        return sign_note(format_checkpoint(self.origin, size, self.root(size)), self.origin, self.key)

    def proof(self, old: int, size: int) -> list[bytes]:
        leaves = self.leaves(size)
        return consistency_proof(
            old, size, lambda level, index: _tree_hash(leaves[index << level : (index + 1) << level]))

    def request(self, old: int, size: int) -> bytes:
        """The add-checkpoint body from ``old`` (this history's proof) to ``size``."""
        return format_add_checkpoint(old, self.proof(old, size), self.checkpoint(size))


@lru_cache(maxsize=100_000)
def _tree_hash(leaves: tuple[bytes, ...]) -> bytes:
    return merkle_tree_hash(leaves)
