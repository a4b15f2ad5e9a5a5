"""Signing published versions and verifying manifests, with per-process c2pa objects.

c2pa objects made before a gunicorn fork are invalid in the worker, so the signer, the
verification context and the loopback timestamp listener are created lazily, in the process that
uses them, and remade if the process id changes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any

import c2pa
from cryptography.hazmat.primitives import serialization

from app.errors import Conflict, ServiceUnavailable
from app.pki.keyring import REGISTRY_SIGNER, Keyring
from app.pki.timestamping import LoopbackTSA, TimestampAuthority
from app.provenance.manifests import (CREATED, EDITED, Ingredient, ManifestReport, ManifestSigner,
                                      SigningError, read_manifest, self_check,
                                      verification_context)

JSON = "application/json"


class ParentNotTrusted(Conflict):
    """The previous version's manifest no longer reads Trusted, so nothing may build on it."""

    problem = "parent-not-trusted"
    title = "The previous version does not verify"


class SigningUnavailable(ServiceUnavailable):
    """The manifest could not be signed or timestamped; nothing was published."""

    problem = "signing-unavailable"
    title = "Signing is unavailable"


@dataclass(frozen=True)
class SignedManifest:
    """A sidecar manifest and the facts about it that the log records."""

    manifest: bytes | None
    sha256: str
    label: str
    signer: str
    signer_certificate_sha256: str
    signed_at: str | None


class ProvenanceService:
    """Signs and verifies manifests for one application."""

    def __init__(self, keyring: Keyring, *, tsa_url: str | None = None):
        self.keyring = keyring
        self._tsa_url = tsa_url or None
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._signer: ManifestSigner | None = None
        self._context: c2pa.Context | None = None

    # -- per-process objects --------------------------------------------------------------------

    def _process_objects(self) -> tuple[ManifestSigner, c2pa.Context]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    keys = self.keyring.store
                    url = self._tsa_url or self._loopback_tsa().url
                    # Every manifest is read back below (to learn its label and check it is
                    # Trusted), so the SDK's own verify-after-sign would only repeat that work.
                    self._signer = ManifestSigner(keys, tsa_url=url, verify_after_sign=False)
                    self._context = verification_context(keys.trust_anchors_pem)
                    self._pid = os.getpid()
        return self._signer, self._context

    def _loopback_tsa(self) -> LoopbackTSA:
        """One loopback RFC 3161 listener per process and key folder, shared by the apps in it."""
        key = (os.getpid(), str(self.keyring.directory.resolve()))
        with _loopbacks_lock:
            listener = _loopbacks.get(key)
            if listener is None:
                listener = self.timestamp_authority().serve_loopback()
                _loopbacks[key] = listener
            return listener

    def timestamp_authority(self) -> TimestampAuthority:
        """The built-in RFC 3161 authority (used when no external TSA is configured)."""
        keys = self.keyring.store
        return TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                                  chain=keys.tsa_chain)

    def start(self) -> None:
        """Load the keys and prove, with a signed probe, that manifests read Trusted.

        Raises :class:`~app.pki.authority.KeyMaterialError` or
        :class:`~app.provenance.manifests.SelfCheckError`; the server refuses to start on either.
        """
        signer, _ = self._process_objects()
        self_check(signer, self.keyring.store.trust_anchors_pem, signer_names=[REGISTRY_SIGNER])

    @property
    def trust_anchors_pem(self) -> bytes:
        return self.keyring.store.trust_anchors_pem

    # -- verifying ------------------------------------------------------------------------------

    def verify(self, content: bytes, media_type: str, manifest: bytes | None) -> ManifestReport:
        """Read a manifest offline against the registry's trust anchors."""
        _, context = self._process_objects()
        return read_manifest(content, media_type, manifest,
                             trust_anchors_pem=self.trust_anchors_pem, context=context)

    # -- signing --------------------------------------------------------------------------------

    def sign_version(self, *, body: bytes, identity: dict[str, Any], signer_name: str,
                     title: str, parent: tuple[bytes, bytes] | None) -> SignedManifest:
        """Sign a version's canonical bytes; ``parent`` is the previous (body, manifest).

        The parent must still read Trusted: c2pa does not let a tampered parent invalidate the
        child, so this check is ours to make (409 otherwise).
        """
        if parent is not None:
            report = self.verify(parent[0], JSON, parent[1])
            if not report.trusted:
                raise ParentNotTrusted(
                    f"The previous version's manifest reads {report.state} "
                    f"({', '.join(report.codes) or 'no codes'}); refusing to build on it.",
                    codes=list(report.codes))
        signer, _ = self._process_objects()
        try:
            manifest = signer.sign_sidecar(
                body, JSON, signer_name=signer_name, title=title,
                action=EDITED if parent is not None else CREATED, identity=identity,
                parent_manifest=parent[1] if parent else None,
                parent_content=parent[0] if parent else None)
        except SigningError as error:
            raise SigningUnavailable(f"The manifest could not be signed and timestamped, so "
                                     f"nothing was published: {error}") from error
        return self._checked(body, JSON, manifest, signer_name)

    def sign_export(self, *, content: bytes, media_type: str, embedded: bool, title: str,
                    identity: dict[str, Any], ingredients: list[Ingredient]) -> tuple[bytes, SignedManifest]:
        """Sign an export as the registry; returns (content as stored, manifest facts).

        A PDF carries its manifest embedded (the returned content is the signed PDF); JSON and CSV
        exports get a sidecar.
        """
        signer, _ = self._process_objects()
        try:
            if embedded:
                content = signer.sign_embedded(content, media_type, signer_name=REGISTRY_SIGNER,
                                               title=title, action=CREATED, identity=identity,
                                               ingredients=ingredients)
                manifest = None
            else:
                manifest = signer.sign_sidecar(content, media_type, signer_name=REGISTRY_SIGNER,
                                               title=title, action=CREATED, identity=identity,
                                               ingredients=ingredients)
        except SigningError as error:
            raise SigningUnavailable(f"The export could not be signed and timestamped: "
                                     f"{error}") from error
        return content, self._checked(content, media_type, manifest, REGISTRY_SIGNER)

    def _checked(self, content: bytes, media_type: str, manifest: bytes | None,
                 signer_name: str) -> SignedManifest:
        report = self.verify(content, media_type, manifest)
        if not report.trusted:
            raise SigningUnavailable(f"A freshly signed manifest reads {report.state} "
                                     f"({', '.join(report.codes)}); nothing was published.")
        certificate = self.keyring.store.signer_certificate(signer_name)
        # An embedded manifest travels inside the content, so its digest is the content's.
        signed_bytes = manifest if manifest is not None else content
        return SignedManifest(
            manifest=manifest, sha256=hashlib.sha256(signed_bytes).hexdigest(),
            label=report.label or "",
            signer=signer_name,
            signer_certificate_sha256=report.signer_certificate_sha256 or hashlib.sha256(
                certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
            signed_at=report.signed_at)


_loopbacks: dict[tuple[int, str], LoopbackTSA] = {}
_loopbacks_lock = threading.Lock()
