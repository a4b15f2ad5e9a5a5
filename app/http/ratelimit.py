"""Rate limits: per bearer token for authenticated requests, per client IP address otherwise.

Every request that Flask serves counts against one bucket for the whole API (not one per
endpoint):

- a request with ``Authorization: Bearer <token>`` of a live token (known, not revoked, not
  expired) counts against the token's bucket, named by a prefix of the token's SHA-256 (the same
  hash the token table stores, so an operator can tell whose bucket it is, and the token itself
  never reaches the counter storage);
- any other request counts against the bucket of ``request.remote_addr``, under the anonymous
  limit: so does a bearer string that is not a live token, which would otherwise buy a fresh
  bucket with every random string. Protected endpoints then answer it 401; public ones serve it
  as the anonymous request it is. Behind a reverse proxy that address is the proxy's, so every
  client would share one bucket: ``TRUSTED_PROXIES`` (werkzeug's ``ProxyFix``, applied in
  :func:`app.composition.create_app`) makes ``remote_addr`` the client's address its proxies forwarded.

The limits are ``RATELIMIT_ANONYMOUS`` and ``RATELIMIT_AUTHENTICATED`` (``"300 per minute"``
notation), counted in fixed windows in ``RATELIMIT_STORAGE_URI``: by default the SQLite file of
:mod:`app.http.ratelimit_storage`, which every worker of one host shares, so the limit holds
across them; ``redis://host:6379`` shares the counters between hosts; ``memory://`` counts per
process, so with N workers a client may make up to N times the limit. When the storage is
unreachable, each process falls back to counting in memory until it is back, rather than failing
requests.

Every limited response carries the ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` (delta-seconds) fields of draft-ietf-httpapi-ratelimit-headers-06 §3.
Flask-Limiter 4 emits only ``X-RateLimit-*`` and adds ``Retry-After`` to every response, even a
200, and raises the ``Retry-After`` of a 503 to the window's reset; so its header injection stays
off and this module writes the fields itself. Beyond the limit, the answer is a 429
``/problems/rate-limited`` problem with ``Retry-After`` (RFC 6585 §4), raised before the view runs,
so it writes nothing.

Not limited: reads (GET/HEAD without a query) of immutable version URLs. The WSGI fast path
(:mod:`app.http.fastpath`) answers cached versions before Flask sees the request, so those
bytes are served like a CDN would serve them: they are cacheable forever and cost no database
work. The same reads are exempt when Flask serves them (a version not cached yet), so a version
URL answers identically either way. Nor are the pages for people: the ``/docs/`` assets
(Swagger UI's script and styles) and the ``/verify`` page are static bytes that cost less than the
counting, and a browser loading them must not spend the budget of the API calls the page then
makes. Requests that match no route (404, 405) are not counted either: Flask-Limiter exempts
requests without an endpoint. The OpenAPI document, the timestamp authority and everything else
are limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from limits import parse_many

from app.auth.service import authenticate, hash_token
from app.core.errors import Unauthenticated
from app.http import ratelimit_storage  # noqa: F401 - registers the tech7-sqlite:// scheme
from app.http.problems import render_http_exception

# The attribute :func:`limited_by` sets on a view: the name of the setting holding its own limit.
_OWN_LIMIT_SETTING = "_tech7_rate_limit_setting"
# 64 bits of the token's SHA-256 keep buckets apart and the storage keys short.
_TOKEN_KEY_HEX_DIGITS = 16
#: Blueprints of static pages for people, which are not limited: Swagger UI and ``/verify``.
_PAGE_BLUEPRINTS = frozenset({"docs", "web"})


def init_rate_limits(app: Flask) -> Limiter | None:
    """Limit every request Flask serves as configured; None (and no limits) when disabled.

    Call once the publishing service, which knows every document kind (whose version reads are
    exempt), is in ``app.extensions``.
    """
    if not app.config["RATELIMIT_ENABLED"]:
        return None
    anonymous = app.config["RATELIMIT_ANONYMOUS"]
    authenticated = app.config["RATELIMIT_AUTHENTICATED"]
    # A malformed limit fails here, at start-up, rather than as a 500 on every request.
    parse_many(anonymous)
    parse_many(authenticated)
    version_endpoints = frozenset(f"{kind.collection}.version"
                                  for kind in app.extensions["tech7.publishing"].kinds.values())

    limiter = Limiter(
        rate_limit_key,
        # An application limit is one bucket per key for the whole API; a default limit would be
        # one per endpoint, multiplying what a client may send by the number of routes.
        application_limits=[lambda: authenticated if _live_token_bucket() else anonymous],
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        in_memory_fallback_enabled=True,
        headers_enabled=False)
    limiter.request_filter(lambda: _is_immutable_version_read(version_endpoints)
                           or request.blueprint in _PAGE_BLUEPRINTS)
    limiter.init_app(app)
    _apply_own_limits(app, limiter)
    app.after_request(lambda response: _add_rate_limit_fields(limiter, response))
    app.register_error_handler(RateLimitExceeded,
                               lambda error: _render_rate_limited(limiter, error))
    return limiter


def limited_by(setting: str) -> Callable[[Callable], Callable]:
    """Give a costly view a limit of its own, from config ``setting``, on top of the API's.

    Put it right under the route decorator; :func:`init_rate_limits` applies the limit, per
    client as :func:`rate_limit_key` tells them apart.
    """

    def mark(view: Callable) -> Callable:
        setattr(view, _OWN_LIMIT_SETTING, setting)
        return view

    return mark


def _apply_own_limits(app: Flask, limiter: Limiter) -> None:
    for endpoint, view in list(app.view_functions.items()):
        setting = getattr(view, _OWN_LIMIT_SETTING, None)
        if setting is not None:
            parse_many(app.config[setting])  # a malformed limit fails at start-up
            limited = limiter.limit(app.config[setting], key_func=rate_limit_key)(view)
            app.view_functions[endpoint] = limited  # type: ignore[assignment]  # a sync view stays sync


def rate_limit_key() -> str:
    """The bucket of the current request: its live bearer token's, or else its client address's."""
    return _live_token_bucket() or f"ip:{request.remote_addr}"


def _live_token_bucket() -> str | None:
    """The bucket of the request's bearer token if that is a live token, else None.

    Resolved once per request (the key and the limit both ask) with the permission check's own
    lookup; a database outage propagates as the 503 it is everywhere else.
    """
    if "rate_limit_token_bucket" not in g:
        authorization = request.headers.get("Authorization")
        bucket = None
        if authorization:
            try:
                authenticate(current_app.extensions["tech7.db"], authorization)
            except Unauthenticated:
                pass  # counts as anonymous; a protected view answers the 401 itself
            else:
                token = authorization.partition(" ")[2].strip()
                bucket = "token:" + hash_token(token)[:_TOKEN_KEY_HEX_DIGITS]
        g.rate_limit_token_bucket = bucket
    return g.rate_limit_token_bucket


def _is_immutable_version_read(version_endpoints: frozenset[str]) -> bool:
    """Whether the request reads an immutable version URL, which is never limited."""
    return (request.method in ("GET", "HEAD") and not request.query_string
            and request.endpoint in version_endpoints)


def _seconds_to_reset(limit: RequestLimit) -> int:
    """Whole seconds until the limit's window resets, rounded up."""
    return max(0, math.ceil(limit.window.reset_time - time.time()))


def _add_rate_limit_fields(limiter: Limiter, response: Response) -> Response:
    """Add the draft-ietf-httpapi-ratelimit-headers-06 §3 fields of the limit this request met."""
    limit = limiter.current_limit
    if limit is not None:
        response.headers["RateLimit-Limit"] = str(limit.limit.amount)
        response.headers["RateLimit-Remaining"] = str(limit.remaining)
        response.headers["RateLimit-Reset"] = str(_seconds_to_reset(limit))
    return response


def _render_rate_limited(limiter: Limiter, error: RateLimitExceeded) -> Response:
    """Render the 429 through the problem renderer, with ``Retry-After`` (RFC 6585 §4)."""
    # The breached limit is the current one. werkzeug's TooManyRequests writes Retry-After from
    # retry_after when that is set and not 0.
    breached = limiter.current_limit
    error.retry_after = max(1, _seconds_to_reset(breached)) if breached is not None else 1
    return render_http_exception(error)
