"""Structured logs: one JSON object per line on stderr, a request ID on every request and record.

:class:`RequestLog` wraps the whole WSGI application, outside the immutable-version fast path
(:mod:`app.http.fastpath`), so that every response — Flask's, the fast path's, a problem, a
304 — carries ``X-Request-ID`` and is logged once on the ``tech7.access`` logger. The request ID is
the client's ``X-Request-ID`` when it is 1–128 characters of ``[A-Za-z0-9._-]`` (a proxy's or a
caller's correlation ID), otherwise a fresh uuid4 in hex. While a request runs, the ID is in a
context variable that :class:`RequestIdFilter` copies onto every log record.

:func:`install_json_logging` puts one stderr handler with :class:`JsonFormatter` on the root
logger. gunicorn's own loggers use the same formatter through ``logconfig_dict`` in
``gunicorn.conf.py``; its access log stays off, because the application's access line knows what
gunicorn cannot (the request ID, the principal) and also covers the fast path.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask, g, request
from flask.logging import default_handler
from tech7_audit.times import isoformat

REQUEST_ID_HEADER = "X-Request-ID"
#: Where the request ID and the principal's name travel in the WSGI environ.
REQUEST_ID_ENVIRON_KEY = "tech7.request_id"
PRINCIPAL_ENVIRON_KEY = "tech7.principal"
#: The principal of an access line when the request carried no valid token.
ANONYMOUS = "anonymous"

access_log = logging.getLogger("tech7.access")

_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_current_request_id: ContextVar[str | None] = ContextVar("tech7_request_id", default=None)
# Attributes every LogRecord has; anything else on a record was passed as ``extra`` and is logged.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__) | {"message", "asctime"}

# What json.dumps(entry, ensure_ascii=False, default=str) builds afresh on every call, made once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def current_request_id() -> str | None:
    """The ID of the request being handled in this context, or None outside a request."""
    return _current_request_id.get()


def accepted_request_id(value: str | None) -> str:
    """The client's ``X-Request-ID`` if it is 1–128 characters of ``[A-Za-z0-9._-]``, else a new
    uuid4 in hex (a value that could forge log lines or headers is never echoed)."""
    if value is not None and _ACCEPTED_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged while a request is handled (a handler filter, so it
    sees records propagated from every logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time (RFC 3339 UTC), level, logger, message, the
    record's ``extra`` fields, and the traceback, if any, as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": isoformat(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in record.__dict__.items()
                     if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # JSON escapes newlines, so a traceback stays on its record's line.
        return _ENCODER.encode(entry)


def install_json_logging(stream: TextIO | None = None, level: int = logging.INFO
                         ) -> logging.Handler | None:
    """Log records at ``level`` and above as JSON lines to ``stream`` (default: stderr).

    Does nothing (returns None) when the root logger already has a JSON handler — gunicorn's
    ``logconfig_dict`` installs one in the master, which the workers inherit — so building several
    apps in one process never duplicates lines.
    """
    root = logging.getLogger()
    if any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class RequestLog:
    """WSGI middleware: give each request an ID, echo it in ``X-Request-ID``, and log one access
    line (method, path, status, duration_ms, request_id, principal) when the application has
    answered.

    ``duration_ms`` is the time the application took to produce its response (headers and body
    iterable), not the time to send it to the client.
    """

    def __init__(self, wsgi_app: Callable):
        self._app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = accepted_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID_ENVIRON_KEY] = request_id
        answered: list[str] = []

        def start_with_request_id(status: str, headers: list, exc_info=None):
            answered[:] = [status]
            headers = [(name, value) for name, value in headers
                       if name.lower() != REQUEST_ID_HEADER.lower()]
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = _current_request_id.set(request_id)
        try:
            return self._app(environ, start_with_request_id)
        finally:
            # No status means the application raised: the server answers 500.
            status = int(answered[0].split(" ", 1)[0]) if answered else 500
            fields = {"method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO"),
                      "status": status,
                      "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                      "request_id": request_id,
                      "principal": environ.get(PRINCIPAL_ENVIRON_KEY) or ANONYMOUS}
            access_log.info("%s %s %s", fields["method"], fields["path"], status, extra=fields)
            _current_request_id.reset(token)


def _record_principal(_error: BaseException | None) -> None:
    """Hand the authenticated principal's name to :class:`RequestLog` (which runs outside Flask's
    request context) through the WSGI environ."""
    principal = g.get("principal")
    if principal is not None:
        request.environ[PRINCIPAL_ENVIRON_KEY] = principal.name


def init_app(app: Flask) -> None:
    """Wrap ``app`` in :class:`RequestLog` and, unless ``TESTING``, log JSON lines to stderr.

    Call last in the factory, after every other WSGI middleware is installed, so that the request
    ID covers them too.
    """
    app.wsgi_app = RequestLog(app.wsgi_app)  # type: ignore[method-assign]  # Flask's middleware idiom
    app.teardown_request(_record_principal)
    if not app.config["TESTING"]:
        install_json_logging()
        # Flask's plain-text handler on the app's logger would write records of every ``app.*``
        # logger a second time.
        app.logger.removeHandler(default_handler)
