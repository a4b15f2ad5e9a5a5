"""Signing published versions and verifying manifests, with per-process c2pa objects.

c2pa objects made before a gunicorn fork are invalid in the worker, so the signer, the
verification context and the loopback listeners (the built-in timestamp authority, or the relay to
an external one) are created lazily, in the process that uses them, and remade if the process id
changes. The signer is also remade after the key folder is reloaded (a rotated certificate).
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

import c2pa

from app.errors import Conflict, ServiceUnavailable
from app.pki.authority import KeyStore, certificate_sha256
from app.pki.keyring import REGISTRY_SIGNER, Keyring
from app.pki.timestamping import QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE, LoopbackTSA, TimestampAuthority, _TSARequestHandler
from app.provenance.manifests import (
    CREATED,
    EDITED,
    Ingredient,
    IngredientNotTrustedError,
    ManifestReport,
    ManifestSigner,
    SigningError,
    read_manifest,
    self_check,
    verification_context,
)

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
    """Signs and verifies manifests for one application.

    ``tsa_url`` names an external RFC 3161 authority (``None``: the built-in one, on loopback).
    c2pa is never pointed at an external authority directly but at a :class:`TimestampRelay`,
    which gives up after ``tsa_timeout`` seconds, so that a slow authority makes a publish fail
    with 503 quickly instead of holding the writer lock for c2pa's own 30 s.
    """

    def __init__(self, keyring: Keyring, *, tsa_url: str | None = None,
                 tsa_timeout: float = 5.0):
        self.keyring = keyring
        self._tsa_url = tsa_url or None
        self._tsa_timeout = float(tsa_timeout)
        self._lock = threading.Lock()
        self._made_for: tuple[int, KeyStore] | None = None
        self._signer: ManifestSigner | None = None
        self._context: c2pa.Context | None = None
        self._self_checked_in: int | None = None

    # -- per-process objects --------------------------------------------------------------------

    def _process_objects(self) -> tuple[ManifestSigner, c2pa.Context]:
        # Remade in a new process (after a fork) and after Keyring.reload() (a rotated signer must
        # sign from then on, not only after a restart).
        made_for = (os.getpid(), self.keyring.store)
        if self._made_for != made_for:
            with self._lock:
                if self._made_for != made_for:
                    keys = made_for[1]
                    url = self._relay().url if self._tsa_url else self._loopback_tsa().url
                    # Every manifest is read back below (to learn its label and check it is
                    # Trusted), so the SDK's own verify-after-sign would only repeat that work.
                    self._signer = ManifestSigner(keys, tsa_url=url, verify_after_sign=False)
                    self._context = verification_context(keys.trust_anchors_pem)
                    self._made_for = made_for
        return self._signer, self._context

    def _loopback_tsa(self) -> LoopbackTSA:
        """One loopback RFC 3161 listener per process and key folder, shared by the apps in it."""
        return _per_process(("tsa", str(self.keyring.directory.resolve())),
                            lambda: self.timestamp_authority().serve_loopback())

    def _relay(self) -> TimestampRelay:
        """One relay per process, external authority and timeout, shared by the apps in it."""
        return _per_process(("relay", self._tsa_url, self._tsa_timeout),
                            lambda: TimestampRelay(self._tsa_url, timeout=self._tsa_timeout))

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
        self._self_checked_in = os.getpid()

    @property
    def self_checked(self) -> bool:
        """Whether :meth:`start`'s signed probe read Trusted in this process (``/readyz``)."""
        return self._self_checked_in == os.getpid()

    @property
    def trust_anchors_pem(self) -> bytes:
        return self.keyring.store.trust_anchors_pem

    # -- verifying ------------------------------------------------------------------------------

    def verify(self, content: bytes, media_type: str, manifest: bytes | None,
               own_anchors_pem: bytes = b"") -> ManifestReport:
        """Read a manifest offline against the registry's trust anchors, plus
        ``own_anchors_pem`` (associations' approved CAs, see :attr:`Ingredient.own_anchors_pem`)
        when it builds on versions they signed with their own keys."""
        if own_anchors_pem:
            return read_manifest(content, media_type, manifest,
                                 trust_anchors_pem=own_anchors_pem + self.trust_anchors_pem)
        _, context = self._process_objects()
        return read_manifest(content, media_type, manifest,
                             trust_anchors_pem=self.trust_anchors_pem, context=context)

    # -- signing --------------------------------------------------------------------------------

    def sign_version(self, *, body: bytes, identity: dict[str, Any], signer_name: str,
                     title: str, parent: tuple[bytes, bytes] | None,
                     parent_anchors_pem: bytes = b"") -> SignedManifest:
        """Sign a version's canonical bytes; ``parent`` is the previous (body, manifest).

        ``parent_anchors_pem`` are the approved CAs of the association, when the previous version
        may be one it signed with its own key (:attr:`Ingredient.own_anchors_pem`).

        The parent must still read Trusted: c2pa does not let a tampered parent invalidate the
        child, so this check is ours to make (409 otherwise). :meth:`ManifestSigner.sign_sidecar`
        makes it (it reads every ingredient against the registry's anchors before building on
        it), so the parent is verified once, not once here and again there.
        """
        signer, _ = self._process_objects()
        try:
            manifest = signer.sign_sidecar(
                body, JSON, signer_name=signer_name, title=title,
                action=EDITED if parent is not None else CREATED, identity=identity,
                parent_manifest=parent[1] if parent else None,
                parent_content=parent[0] if parent else None,
                parent_anchors_pem=parent_anchors_pem)
        except IngredientNotTrustedError as error:
            report = error.report
            raise ParentNotTrusted(
                f"The previous version's manifest reads {report.state} "
                f"({', '.join(report.codes) or 'no codes'}); refusing to build on it.",
                codes=list(report.codes)) from error
        except SigningError as error:
            raise SigningUnavailable(f"The manifest could not be signed and timestamped, so "
                                     f"nothing was published: {error}") from error
        return self._checked(body, JSON, manifest, signer_name, parent_anchors_pem)

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
        own_anchors = b"".join(sorted({ingredient.own_anchors_pem for ingredient in ingredients}))
        return content, self._checked(content, media_type, manifest, REGISTRY_SIGNER, own_anchors)

    def _checked(self, content: bytes, media_type: str, manifest: bytes | None,
                 signer_name: str, own_anchors_pem: bytes = b"") -> SignedManifest:
        # c2pa re-validates the ingredients' manifests too, so the anchors their signers chain
        # to must be there.
        report = self.verify(content, media_type, manifest, own_anchors_pem)
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
            signer_certificate_sha256=(report.signer_certificate_sha256
                                       or certificate_sha256(certificate)),
            signed_at=report.signed_at)


class TimestampRelay:
    """A loopback HTTP listener that forwards RFC 3161 queries to an external authority, with a
    deadline.

    c2pa-python 0.38 (c2pa-rs 0.91) has no setting for the timeout of its timestamp request: its
    HTTP client gives up after 30 s (measured against a TSA that never answers), and publishing
    signs while holding the registry's writer lock. c2pa therefore posts to :attr:`url`, and the
    relay posts the same query to ``upstream``, waiting at most ``timeout`` seconds for the
    connection and for each read. It passes the authority's answer back unchanged (c2pa checks
    the token), or answers 504 on a timeout and 502 when the authority cannot be reached, so c2pa
    fails at once and the publish is refused with 503. Threads stop with the process.
    """

    def __init__(self, upstream: str, *, timeout: float):
        handler = type("_BoundRelayHandler", (_RelayHandler,),
                       {"upstream": upstream, "upstream_timeout": timeout})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="tsa-relay", daemon=True).start()

    @property
    def url(self) -> str:
        """The URL to give c2pa as its timestamp authority."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"


# A TimeStampReq is a few hundred bytes and a TimeStampResp with its certificates a few KB.
_MAX_QUERY_BYTES = 16 * 1024
_MAX_REPLY_BYTES = 256 * 1024


class _RelayHandler(_TSARequestHandler):
    """The built-in authority's HTTP handler (its replies, 405 on GET, quiet log), forwarding."""

    upstream: ClassVar[str]
    upstream_timeout: ClassVar[float]

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 < length <= _MAX_QUERY_BYTES:
            self._reply(HTTPStatus.BAD_REQUEST, b"", "text/plain")
            return
        query = urllib.request.Request(self.upstream, data=self.rfile.read(length),
                                       headers={"Content-Type": QUERY_MEDIA_TYPE}, method="POST")
        try:
            with urllib.request.urlopen(query, timeout=self.upstream_timeout) as answer:
                reply = answer.read(_MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as error:
            self._reply(HTTPStatus.BAD_GATEWAY, f"TSA answered {error.code}".encode(), "text/plain")
            return
        except (urllib.error.URLError, OSError) as error:  # TimeoutError is an OSError
            timed_out = isinstance(error, TimeoutError) or isinstance(
                getattr(error, "reason", None), TimeoutError)
            status = HTTPStatus.GATEWAY_TIMEOUT if timed_out else HTTPStatus.BAD_GATEWAY
            self._reply(status, str(error).encode(), "text/plain")
            return
        if len(reply) > _MAX_REPLY_BYTES:
            self._reply(HTTPStatus.BAD_GATEWAY, b"the TSA's reply is too large", "text/plain")
            return
        self._reply(HTTPStatus.OK, reply, REPLY_MEDIA_TYPE)


_listeners: dict[tuple, Any] = {}
_listeners_lock = threading.Lock()


def _per_process(key: tuple, start: Callable[[], Any]) -> Any:
    """The loopback listener of this process under ``key``, started on first use."""
    key = (os.getpid(), *key)
    with _listeners_lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = _listeners[key] = start()
        return listener
