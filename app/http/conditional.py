"""Conditional requests (RFC 9110 §13): entity tags, ``If-None-Match`` → 304, ``If-Match`` → 412.

flask-smorest's own ETag support drops the ETag from 304 responses and does not match weak
validators, so the registry does this itself: every GET that answers 200 gets a strong ETag, and
:func:`apply_conditional_get` turns it into a 304 when the client's copy is current.
"""

from __future__ import annotations

import base64
import hashlib

from flask import Request, Response

from app.errors import PreconditionFailed, PreconditionRequired


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


def not_modified(etag: str, headers: dict[str, str] | None = None) -> Response:
    """A 304 that still carries the validator and caching headers (RFC 9110 §15.4.5)."""
    response = Response(status=304)
    response.headers["ETag"] = etag
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def apply_conditional_get(request: Request, response: Response) -> Response:
    """Give a successful GET response a strong ETag (if it has none) and honour ``If-None-Match``.

    Runs after every request, so collections and other computed bodies get validators too.
    """
    if request.method not in ("GET", "HEAD") or response.status_code != 200 \
            or response.direct_passthrough:
        return response
    etag = response.headers.get("ETag")
    if etag is None:
        etag = strong_etag(response.get_data())
        response.headers["ETag"] = etag
    if none_match(request.headers.get("If-None-Match"), etag):
        keep = {k: v for k, v in response.headers.items()
                if k in ("Cache-Control", "Content-Location", "Vary", "Link", "Expires")}
        return not_modified(etag, keep)
    return response


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
