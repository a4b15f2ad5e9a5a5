"""The process's view of the key folder: loaded on first use, checked as a whole, and read again
when the key state recorded in the database changes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Hashable
from pathlib import Path

from app.pki.authority import KeyMaterialError, KeyStore, init_keys

REGISTRY_SIGNER = "registry"

log = logging.getLogger(__name__)


class Keyring:
    """Holds the :class:`KeyStore` of ``directory``, loading it lazily.

    Commands that do not sign (``keys init``, ``migrate``) must work before any key exists, so
    nothing is read until a service asks; the server's start-up check asks at once.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._store: KeyStore | None = None
        self._generation: Hashable | None = None
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

    def refresh(self, generation: Hashable) -> KeyStore:
        """The store, read again first unless it was loaded after the key state ``generation``.

        ``generation`` names the signing-key state recorded in the database
        (:meth:`app.certificates.service.CertificateService.current_keys`). ``keys rotate`` writes the
        folder before it records the new certificate, so a folder read after seeing a generation
        is at least as new as that generation. If the folder cannot be read (another rotation is
        moving its files), the previous store stays in use and the next call tries again.
        """
        if generation == self._generation and self._store is not None:
            return self._store
        with self._lock:
            if generation != self._generation or self._store is None:
                try:
                    self._store = KeyStore.load(self.directory)
                except KeyMaterialError as error:
                    if self._store is None:
                        raise
                    log.warning("the key folder did not load; signing with the keys loaded "
                                "before: %s", error)
                    return self._store
                self._generation = generation
            return self._store


def signer_names_from_seed(seed_file: str | Path) -> list[str]:
    """The registry's own signer plus one per member association listed in the seed file."""
    data = json.loads(Path(seed_file).read_text(encoding="utf-8"))
    return [REGISTRY_SIGNER, *(a["slug"] for a in data["associations"])]


def ensure_keys(directory: str | Path, seed_file: str | Path) -> None:
    """Create whatever key material is missing (``keys init``)."""
    init_keys(Path(directory), signer_names_from_seed(seed_file))
