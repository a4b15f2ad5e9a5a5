"""Entity tags and the preconditions a write checks (RFC 9110 §8.8.3, §13.1).

The framework-free half of conditional requests: how a representation's strong ETag is made,
how ``If-None-Match`` and ``If-Match`` values compare, and the 412/428 refusals a service raises.
:mod:`app.http.conditional` answers GETs with 304 from these.
"""

from __future__ import annotations

import base64
import hashlib

from app.core.errors import PreconditionFailed, PreconditionRequired


def strong_etag(payload: bytes) -> str:
    """A strong entity tag derived from the exact bytes of a representation."""
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


def content_digest(sha256_hex: str) -> str:
    """The RFC 9530 ``Content-Digest`` field value for a SHA-256 given in hex."""
    return "sha-256=:" + base64.b64encode(bytes.fromhex(sha256_hex)).decode() + ":"


class SignedBytesValidators:
    """Validators of stored bytes known by their SHA-256, and of their C2PA manifest's bytes.

    Mixed into the frozen records of versions and exports, which define ``sha256`` and
    ``manifest_sha256`` (hex).
    """

    sha256: str
    manifest_sha256: str

    @property
    def etag(self) -> str:
        """Strong ETag: the SHA-256 of the stored bytes."""
        return f'"{self.sha256}"'

    @property
    def manifest_etag(self) -> str:
        """Strong ETag of the sidecar manifest."""
        return f'"{self.manifest_sha256}"'

    @property
    def content_digest(self) -> str:
        """RFC 9530 ``Content-Digest`` field value."""
        return content_digest(self.sha256)


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag, for weak comparison (RFC 9110 §8.8.3.2)."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def _listed(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` value matches ``etag`` by weak comparison (RFC 9110 §13.1.2)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    ours = _opaque(etag)
    return any(_opaque(tag) == ours for tag in _listed(header))


def require_if_match(header: str | None, current_etag: str | None) -> None:
    """Enforce ``If-Match`` on a state-changing request (RFC 9110 §13.1.1, RFC 6585 §3).

    Raises 428 when the header is absent and 412 when it names no current representation; strong
    comparison is required for If-Match, so weak tags never match.
    """
    if header is None:
        raise PreconditionRequired("This request changes a draft: send If-Match with the draft's "
                                   "ETag (or If-None-Match: * to create one).")
    if current_etag is None:
        raise PreconditionFailed("There is no draft to match: it was published, deleted or never "
                                 "created.")
    if header.strip() == "*":
        return
    if not any(tag == current_etag for tag in _listed(header) if not tag.startswith("W/")):
        raise PreconditionFailed("The draft has changed since you read it: fetch it again, "
                                 "re-apply your edit and send its new ETag in If-Match.")


def require_if_none_match_star(exists: bool) -> None:
    """Enforce ``If-None-Match: *`` on create-only requests (RFC 9110 §13.1.2)."""
    if exists:
        raise PreconditionFailed("A draft already exists: replace it with If-Match and its ETag.")
