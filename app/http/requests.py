"""The application's request class: a body over the limit is a 413 however it arrives.

werkzeug refuses a ``Content-Length`` over ``MAX_CONTENT_LENGTH`` with 413. A chunked body has
no length: the server (gunicorn) ends the stream, werkzeug reads it up to the limit and, at the
limit, stops as if the body ended there, so the view sees a truncated body (today's 400 "not
valid JSON", or a multipart form missing its end). :class:`Request` looks one byte past the
limit instead, and answers 413 (RFC 9110 §15.5.14) when there is one.
"""

from __future__ import annotations

from typing import IO

import flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream


class _PeekPastLimit:
    """A WSGI input stream that raises :class:`RequestEntityTooLarge` once ``limit`` bytes were
    read and the stream has more."""

    def __init__(self, stream: IO[bytes], limit: int):
        self._stream = stream
        self._remaining = limit

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._remaining -= len(data)
        if self._remaining <= 0 and self._stream.read(1):
            raise RequestEntityTooLarge()
        return data


class Request(flask.Request):
    """Flask's request with chunked bodies held to ``MAX_CONTENT_LENGTH``."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if limit is not None and self.content_length is None \
                and "wsgi.input_terminated" in self.environ:
            self.environ["wsgi.input"] = _PeekPastLimit(self.environ["wsgi.input"], limit)
        return get_input_stream(self.environ, max_content_length=limit)
