"""Operations: health endpoints, structured logs with request IDs, the 503 answer to database
outages (installed from :mod:`app.http.outages`), migrations (:mod:`app.ops.migrate`) and backups
(:mod:`app.ops.backup`, used by the ``backup`` and ``restore`` commands)."""

from __future__ import annotations

from flask import Flask

from app.http import outages
from app.ops import health
from app.ops import logging as request_logging


def init_app(app: Flask) -> None:
    """Install the operational parts of the application.

    Call last in :func:`app.composition.create_app`: the health endpoints are exempted from the rate limiter
    installed before, and the request-ID middleware must wrap every other WSGI middleware.
    """
    health.init_app(app)
    outages.init_app(app)
    request_logging.init_app(app)
