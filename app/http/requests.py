"""How the application reads a request: its body through one limit, its head within set sizes.

Every view, webargs and werkzeug's form parser read a body from :attr:`Request.stream`, so the
rules hold for every body-reading path:

- a ``Content-Length`` over ``MAX_CONTENT_LENGTH`` is refused by werkzeug with 413;
- a chunked body has no length. The server (gunicorn) decodes it and ends the stream
  (``wsgi.input_terminated``); werkzeug reads it up to the limit and, at the limit, stops as if
  the body ended there, so a view would see a truncated body. :class:`_Body` looks one byte past
  the limit instead and answers 413 (RFC 9110 §15.5.14) when there is one;
- a chunked body from a server that does not end the stream would be read by werkzeug as no body
  at all (an empty timestamp query answered with 200, say). It is refused with 411 Length
  Required instead (RFC 9112 §6.3: a server may refuse a body without a Content-Length);
- a body the server fails to read (chunked framing that does not parse: gunicorn raises its own
  exceptions from the stream; a client that stops sending) is a 400 ``unreadable-body`` problem,
  never a 500;
- a body still being sent when the request's deadline (:mod:`app.http.body_deadline`) runs out
  is a 408 problem.

:class:`HeadLimits` refuses, before any other part of the application sees the request, a request
target over ``MAX_URL_BYTES`` (414, RFC 9110 §15.5.15) and a header field over
``MAX_HEADER_BYTES`` (431, RFC 6585 §5), as problem+json. Both are set below gunicorn's own
limits (``gunicorn.conf.py``), which answer larger requests themselves, in plain text, before the
application could.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import IO
from urllib.parse import quote

import flask
from werkzeug.exceptions import HTTPException, LengthRequired, RequestEntityTooLarge, RequestTimeout
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream

from app.core.errors import UnreadableBody
from app.http.body_deadline import ENVIRON_KEY as DEADLINE_ENVIRON_KEY
from app.http.body_deadline import Deadline
from app.http.problems import problem_response

#: The largest body whose uploaded files are held in memory (werkzeug's ``default_stream_factory``
#: spools files to disk beyond this size).
_IN_MEMORY_UPLOAD = 500 * 1024


class _Body:
    """The server's input stream, read so that any failure of the server's own reader is an
    :class:`~app.core.errors.UnreadableBody`; given a ``limit``, so that a body that goes on past
    it raises :class:`RequestEntityTooLarge`; given a ``deadline``, so that a read it cut short
    raises :class:`RequestTimeout`."""

    def __init__(self, stream: IO[bytes], limit: int | None, deadline: Deadline | None = None):
        self._stream = stream
        self._remaining = limit
        self._deadline = deadline

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
            if self._remaining is not None:
                self._remaining -= len(data)
                if self._remaining <= 0 and self._stream.read(1):
                    raise RequestEntityTooLarge()
        except HTTPException:
            raise
        except Exception as error:
            self._check_deadline()
            raise UnreadableBody("The request body could not be read: its framing is broken "
                                 "or it ended early.") from error
        self._check_deadline()
        return data

    def _check_deadline(self) -> None:
        """Raise 408 when the deadline ran out: the read ended because it shut the socket."""
        if self._deadline is not None and self._deadline.expired:
            raise RequestTimeout()


class Request(flask.Request):
    """Flask's request with every body held to ``MAX_CONTENT_LENGTH`` however it arrives."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        chunked = self.content_length is None \
            and "chunked" in self.environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and "wsgi.input_terminated" not in self.environ:
            raise LengthRequired()
        # Only a chunked body needs the look past the limit; a Content-Length was checked.
        self.environ["wsgi.input"] = _Body(self.environ["wsgi.input"],
                                           limit if chunked else None,
                                           self.environ.get(DEADLINE_ENVIRON_KEY))
        return get_input_stream(self.environ, max_content_length=limit)

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None
                         ) -> IO[bytes]:
        """Where werkzeug's form parser writes an uploaded file: in memory when the whole
        body is known to be at most 500 KiB (werkzeug's own threshold for going to disk), so a
        small upload (``POST /v1/verify``) skips a spooled temporary file's bookkeeping; a
        larger or unknown-length body still spools to disk as werkzeug does."""
        if total_content_length is not None and total_content_length <= _IN_MEMORY_UPLOAD:
            return io.BytesIO()
        return super()._get_file_stream(total_content_length, content_type, filename,
                                        content_length)


class HeadLimits:
    """WSGI middleware answering an over-long request target (414) or header field (431) with
    a problem, before routing, the fast path or any view runs."""

    def __init__(self, wsgi_app: Callable, *, max_url_bytes: int, max_header_bytes: int):
        self._app = wsgi_app
        self._max_url = max_url_bytes
        self._max_header = max_header_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        refusal = self._refusal(environ)
        if refusal is not None:
            status, problem, title, detail = refusal
            response = problem_response(status, problem, title, detail)
            return response(environ, start_response)
        return self._app(environ, start_response)

    def _refusal(self, environ: dict) -> tuple[int, str, str, str] | None:
        """(status, problem, title, detail) of the refusal, if the request gets one."""
        if len(_request_target(environ)) > self._max_url:
            return (414, "uri-too-long", "URI too long",
                    f"The URL is longer than {self._max_url} bytes.")
        for name, value in _header_fields(environ):
            # The field line "Name: value" counts, as gunicorn counts it.
            if len(name) + 2 + len(value) > self._max_header:
                return (431, "request-header-fields-too-large", "Request header fields too large",
                        f"The {name} header field is longer than {self._max_header} bytes.")
        return None


def _request_target(environ: dict) -> str:
    """The request target as sent: gunicorn and werkzeug keep it (``RAW_URI``,
    ``REQUEST_URI``); otherwise rebuilt from the decoded path and the query."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    query = environ.get("QUERY_STRING")
    path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/;=,:@!$&'()*+~")
    return path + ("?" + query if query else "")


def _header_fields(environ: dict) -> Iterable[tuple[str, str]]:
    """The request's header fields, with names as HTTP spells them. A field sent twice is one
    field here (the server joins the values), as RFC 9110 §5.3 allows."""
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").title(), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-").title(), value
