"""A WSGI fast path for immutable version URLs.

A published version never changes, so once a process has served it, its bytes and headers are
fixed. This middleware answers GET and HEAD of such cached versions (200, or 304 on a matching
``If-None-Match`` or ``If-Modified-Since``) before Flask routes the request; everything else, and every cache miss, goes
through the application as usual. Responses are identical either way (a test checks that).

Immutable version reads therefore skip Flask's request hooks: they are cacheable forever, and are
what a CDN in front of the registry would serve without asking it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import cast

from app.core.caching import BoundedCache
from app.http.conditional import client_copy_current
from app.http.views.documents import version_headers
from app.publishing.kinds import DocumentKind
from app.publishing.service import VERSION_CACHE_SIZE, PublishedVersion, PublishingService

_VERSION_PATH = re.compile(r"/v1/(?P<collection>[a-z]+)(?:/(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*))?"
                           r"/versions/(?P<number>[1-9][0-9]{0,8})")
# What werkzeug drops from a 304 (RFC 9110 §15.4.5 lets a 304 omit representation metadata).
_NOT_IN_304 = frozenset({"Content-Type", "Content-Length", "Last-Modified"})


class ImmutableVersionFastPath:
    """Serve cached immutable versions without entering Flask."""

    def __init__(self, wsgi_app: Callable, publishing: PublishingService,
                 extra_headers: Iterable[tuple[str, str]]):
        self._app = wsgi_app
        self._publishing = publishing
        self._extra = list(extra_headers)
        self._kinds = publishing.kinds
        self._headers: BoundedCache[tuple[str, str, int], tuple[list, list, str]] = BoundedCache(
            VERSION_CACHE_SIZE)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD") and not environ.get("QUERY_STRING"):
            match = _VERSION_PATH.fullmatch(environ.get("PATH_INFO", ""))
            kind = self._kinds.by_collection(match["collection"]) if match else None
            if match is not None and kind is not None \
                    and (match["slug"] is None) == (kind.singleton_slug is not None):
                # No slug in the path only for a singleton kind, which always names its one slug.
                slug = cast(str, match["slug"] or kind.singleton_slug)
                version = self._publishing.cached(kind, slug, int(match["number"]))
                if version is not None:
                    full, not_modified, modified = self._prepared(kind, version)
                    if client_copy_current(environ.get("HTTP_IF_NONE_MATCH"),
                                           environ.get("HTTP_IF_MODIFIED_SINCE"), version.etag,
                                           modified):
                        start_response("304 NOT MODIFIED", not_modified)
                        return []
                    start_response("200 OK", full)
                    return [] if method == "HEAD" else [version.body]
        return self._app(environ, start_response)

    def _prepared(self, kind: DocumentKind, version: PublishedVersion
                  ) -> tuple[list, list, str]:
        """The 200's headers, the 304's, and the ``Last-Modified`` value."""
        key = (kind.name, version.slug, version.number)
        prepared = self._headers.get(key)
        if prepared is None:
            fields = version_headers(kind, version)
            headers = [*fields.items(),
                       ("Content-Type", "application/json"),
                       ("Content-Length", str(len(version.body))), *self._extra]
            prepared = self._headers.put(
                key, (headers, [(k, v) for k, v in headers if k not in _NOT_IN_304],
                      fields["Last-Modified"]))
        return prepared
