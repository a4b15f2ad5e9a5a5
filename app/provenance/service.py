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
from tech7_audit.manifests import ManifestReport, certificate_sha256, read_manifest, verification_context

from app.core.caching import BoundedCache
from app.core.errors import Conflict, ServiceUnavailable
from app.pki.authority import KeyStore
from app.pki.keyring import REGISTRY_SIGNER, Keyring
from app.pki.timestamping import QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE, LoopbackTSA, TimestampAuthority, _TSARequestHandler
from app.provenance.signing import CREATED, EDITED, Ingredient, ManifestSigner, ParentLink, SigningError, self_check

JSON = "application/json"

#: Manifests this process has read Trusted, by (content, manifest, anchors) digests: a publish
#: links its parent without validating the parent's manifest a second time.
TRUSTED_READS_CACHE_SIZE = 4096


class ParentNotTrusted(Conflict):
    """The previous version's manifest no longer reads Trusted, so nothing may build on it."""

    problem = "parent-not-trusted"
    title = "The previous version does not verify"


class SigningUnavailable(ServiceUnavailable):
    """The manifest could not be signed or timestamped; nothing was published."""

    problem = "signing-unavailable"
    title = "Signing is unavailable"


@dataclass(frozen=True)
class PreviousVersion:
    """The version a new one builds on, as stored and as logged.

    ``tlog_proof`` is the C2SP tlog-proof of its log entry in the newest checkpoint; with it the
    new manifest links the parent in the bounded form (:class:`ParentLink`).
    """

    number: int
    body: bytes
    manifest: bytes
    sha256: str
    manifest_sha256: str
    manifest_label: str
    log_index: int
    tlog_proof: str


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
        self._trusted_reads: BoundedCache[tuple[str, str, str], ManifestReport] = BoundedCache(
            TRUSTED_READS_CACHE_SIZE)

    # -- per-process objects --------------------------------------------------------------------

    def _process_objects(self) -> tuple[ManifestSigner, c2pa.Context]:
        # Remade in a new process (after a fork) and after Keyring.reload() (a rotated signer must
        # sign from then on, not only after a restart).
        made_for = (os.getpid(), self.keyring.store)
        if self._made_for != made_for:
            with self._lock:
                if self._made_for != made_for:
                    keys = made_for[1]
                    url = self._relay(self._tsa_url).url if self._tsa_url \
                        else self._loopback_tsa().url
                    # Every manifest is read back below (to learn its label and check it is
                    # Trusted), so the SDK's own verify-after-sign would only repeat that work.
                    self._signer = ManifestSigner(keys, tsa_url=url, verify_after_sign=False)
                    self._context = verification_context(keys.trust_anchors_pem)
                    self._made_for = made_for
        assert self._signer is not None and self._context is not None  # made just above
        return self._signer, self._context

    def _loopback_tsa(self) -> LoopbackTSA:
        """One loopback RFC 3161 listener per process and key folder, shared by the apps in it."""
        return _per_process(("tsa", str(self.keyring.directory.resolve())),
                            lambda: self.timestamp_authority().serve_loopback())

    def _relay(self, tsa_url: str) -> TimestampRelay:
        """One relay per process, external authority and timeout, shared by the apps in it."""
        return _per_process(("relay", tsa_url, self._tsa_timeout),
                            lambda: TimestampRelay(tsa_url, timeout=self._tsa_timeout))

    def timestamp_authority(self) -> TimestampAuthority:
        """The built-in RFC 3161 authority (used when no external TSA is configured)."""
        keys = self.keyring.store
        return TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                                  chain=keys.tsa_chain)

    def start(self) -> None:
        """Load the keys and prove, with a signed probe, that manifests read Trusted.

        Raises :class:`~app.pki.authority.KeyMaterialError` or
        :class:`~app.provenance.signing.SelfCheckError`; the server refuses to start on either.
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
                     title: str, parent: PreviousVersion | None,
                     parent_anchors_pem: bytes = b"") -> SignedManifest:
        """Sign a version's canonical bytes, linking ``parent`` in the bounded form.

        ``parent_anchors_pem`` are the approved CAs of the association, when the previous version
        may be one it signed with its own key (:attr:`Ingredient.own_anchors_pem`).

        The parent must still read Trusted: c2pa does not let a tampered parent invalidate the
        child, so this check is ours to make (409 otherwise). Its stored bytes must be the ones
        its row and log entry name, and its manifest must read Trusted against today's anchors;
        a manifest this process already read Trusted (the parent was usually signed here, just
        before) is not validated again.
        """
        signer, _ = self._process_objects()
        link = None
        if parent is not None:
            report = self.trusted_report(parent.body, JSON, parent.manifest, parent_anchors_pem)
            if not report.trusted or hashlib.sha256(parent.manifest).hexdigest() \
                    != parent.manifest_sha256 or hashlib.sha256(parent.body).hexdigest() \
                    != parent.sha256:
                codes = list(report.codes) or ["manifest.sha256.mismatch"]
                raise ParentNotTrusted(
                    f"The previous version's manifest reads {report.state} "
                    f"({', '.join(codes)}), or its bytes are not the ones logged; refusing to "
                    f"build on it.", codes=codes)
            link = ParentLink(
                title=report.title or f"{title} (previous version)", version=parent.number,
                sha256=parent.sha256, manifest_label=parent.manifest_label,
                manifest_sha256=parent.manifest_sha256, log_index=parent.log_index,
                tlog_proof=parent.tlog_proof,
                # The parent's own results only: an older parent's ingredient deltas would make
                # the record grow with the history again.
                validation_results={"activeManifest": (report.validation_results or {})
                                    .get("activeManifest") or {}})
        try:
            manifest = signer.sign_sidecar(
                body, JSON, signer_name=signer_name, title=title,
                action=EDITED if parent is not None else CREATED, identity=identity,
                parent_link=link)
        except SigningError as error:
            raise SigningUnavailable(f"The manifest could not be signed and timestamped, so "
                                     f"nothing was published: {error}") from error
        return self._checked(body, JSON, manifest, signer_name)

    def trusted_report(self, content: bytes, media_type: str, manifest: bytes,
                       own_anchors_pem: bytes = b"") -> ManifestReport:
        """:meth:`verify`, answered from the reads this process found Trusted when it can.

        A manifest is immutable and its verdict for the same bytes and anchors does not change
        (an expired certificate stays Trusted through its RFC 3161 timestamp), so a Trusted
        reading is kept; anything else is read again each time.
        """
        key = (hashlib.sha256(content).hexdigest(), hashlib.sha256(manifest).hexdigest(),
               hashlib.sha256(own_anchors_pem + self.trust_anchors_pem).hexdigest())
        cached = self._trusted_reads.get(key)
        if cached is not None:
            return cached
        report = self.verify(content, media_type, manifest, own_anchors_pem)
        return self._trusted_reads.put(key, report) if report.trusted else report

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
        # The one validation of a new manifest (c2pa's own verify-after-sign is off): it also
        # learns the label, and is kept so that the next version can link this one unread.
        if manifest is not None:
            report = self.trusted_report(content, media_type, manifest, own_anchors_pem)
        else:
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
