"""Conditional requests (RFC 9110 §13) in HTTP: ``Last-Modified``, ``If-None-Match`` and
``If-Modified-Since`` → 304.

flask-smorest's own ETag support drops the ETag from 304 responses and does not match weak
validators, so the registry does this itself: every GET that answers 200 gets a strong ETag, and
:func:`apply_conditional_get` turns it into a 304 when the client's copy is current, by
:func:`client_copy_current` (which the WSGI fast path uses too). The tags themselves, and the
``If-Match`` checks of writes, are :mod:`app.core.etags`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Request, Response
from werkzeug.http import http_date

from app.core.etags import none_match, strong_etag

#: How old the last change of a representation that can still change must be before its time is
#: served as ``Last-Modified``. An HTTP-date has whole seconds (RFC 9110 §5.6.7), so a second
#: change within the same second would look unmodified to ``If-Modified-Since``; the second
#: second covers a change whose time was taken inside a transaction that had not yet committed
#: when the response was read. Until then only the ETag validates.
SETTLED_AFTER = timedelta(seconds=2)


def last_modified(moment: datetime, *, changing: bool = False,
                  now: datetime | None = None) -> str | None:
    """The ``Last-Modified`` value (an IMF-fixdate, RFC 9110 §8.8.2) for a change at ``moment``.

    A time later than ``now`` is served as ``now`` (RFC 9110 §8.8.2.1: never later than the
    response's own date). For a ``changing`` representation (the latest version, a collection)
    the value is None until the change has settled (:data:`SETTLED_AFTER`); an immutable one
    always has it.
    """
    now = now or datetime.now(UTC)
    if changing and now - moment < SETTLED_AFTER:
        return None
    return http_date(min(moment, now))


#: The three forms of an HTTP-date a recipient accepts (RFC 9110 §5.6.7): IMF-fixdate, then the
#: obsolete RFC 850 and asctime forms. (werkzeug's parser also takes other dates and lists.)
_HTTP_DATE_FORMATS = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                      "%a %b %d %H:%M:%S %Y")


def parse_http_date(value: str) -> datetime | None:
    """The moment an HTTP-date names, or None if ``value`` is not exactly one."""
    for form in _HTTP_DATE_FORMATS:
        try:
            return datetime.strptime(value.strip(), form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def client_copy_current(if_none_match: str | None, if_modified_since: str | None, etag: str,
                        modified: str | None) -> bool:
    """Whether a GET or HEAD is answered 304: RFC 9110 §13.2.2, steps 3 and 4.

    ``If-None-Match``, when present, decides alone (``If-Modified-Since`` is then ignored);
    otherwise ``If-Modified-Since`` does, if the representation has a ``Last-Modified``
    (``modified``) and the field is one valid HTTP-date (RFC 9110 §13.1.3: anything else is
    ignored). Both dates have whole seconds, so they compare exactly.
    """
    if if_none_match is not None:
        return none_match(if_none_match, etag)
    if if_modified_since is None or modified is None:
        return False
    since, last = parse_http_date(if_modified_since), parse_http_date(modified)
    return since is not None and last is not None and last <= since


def not_modified(etag: str, headers: dict[str, str] | None = None) -> Response:
    """A 304 that still carries the validator and caching headers (RFC 9110 §15.4.5)."""
    response = Response(status=304)
    response.headers["ETag"] = etag
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def apply_conditional_get(request: Request, response: Response) -> Response:
    """Give a successful GET response a strong ETag (if it has none) and honour ``If-None-Match``
    and, against the ``Last-Modified`` the view set, ``If-Modified-Since``.

    Runs after every request, so collections and other computed bodies get validators too.
    """
    if request.method not in ("GET", "HEAD") or response.status_code != 200 \
            or response.direct_passthrough:
        return response
    etag = response.headers.get("ETag")
    if etag is None:
        etag = strong_etag(response.get_data())
        response.headers["ETag"] = etag
    if client_copy_current(request.headers.get("If-None-Match"),
                           request.headers.get("If-Modified-Since"), etag,
                           response.headers.get("Last-Modified")):
        keep = {k: v for k, v in response.headers.items()
                if k in ("Cache-Control", "Content-Location", "Vary", "Link", "Expires")}
        return not_modified(etag, keep)
    return response
