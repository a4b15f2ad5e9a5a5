"""The process's view of the key folder: loaded once, on first use, and checked as a whole."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from app.pki.authority import KeyStore, init_keys

REGISTRY_SIGNER = "registry"


class Keyring:
    """Holds the :class:`KeyStore` of ``directory``, loading it lazily.

    Commands that do not sign (``keys init``, ``migrate``) must work before any key exists, so
    nothing is read until a service asks; the server's start-up check asks at once.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._store: KeyStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> KeyStore:
        """The loaded key store; raises :class:`~app.pki.authority.KeyMaterialError` when a file
        is missing or corrupt."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = KeyStore.load(self.directory)
        return self._store

    def reload(self) -> KeyStore:
        """Read the folder again (after a rotation or a revocation)."""
        with self._lock:
            self._store = KeyStore.load(self.directory)
        return self._store


def signer_names_from_seed(seed_file: str | Path) -> list[str]:
    """The registry's own signer plus one per member association listed in the seed file."""
    data = json.loads(Path(seed_file).read_text(encoding="utf-8"))
    return [REGISTRY_SIGNER, *(a["slug"] for a in data["associations"])]


def ensure_keys(directory: str | Path, seed_file: str | Path) -> None:
    """Create whatever key material is missing (``keys init``)."""
    init_keys(Path(directory), signer_names_from_seed(seed_file))
