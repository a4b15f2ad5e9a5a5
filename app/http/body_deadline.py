"""A deadline on reading a request body, so that a client trickling one cannot hold a thread.

gunicorn reads a body for the application only when asked, and then blocks until the bytes
asked for arrive: a client announcing ``Content-Length: 4000000`` and sending a byte a second
would hold a worker thread for weeks. :class:`BodyDeadline` gives every request with a body
``BODY_TIMEOUT`` seconds, from when the application starts on it, to send all of it. When the
time is up while the body is still being read, it shuts the read side of the connection
(``socket.shutdown(SHUT_RD)``), which ends the blocked read at once; the reader of the body
(:class:`app.http.requests._Body`) then sees :attr:`Deadline.expired` and answers 408 Request
Timeout (RFC 9110 §15.5.9) as a problem. Nothing is written: the view never got its body.

The deadline needs the connection's socket, which gunicorn puts in the WSGI environment
(``gunicorn.socket``); without one (the test client), requests have no deadline. A body the
application never reads is not its concern: gunicorn drains such a body within a bounded time
before it reuses the connection. Nor are the request's head fields: gunicorn reads those before
the application runs, with no deadline of its own (see the README, "Production deployment").
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable

#: Where the request's :class:`Deadline` lives in the WSGI environment.
ENVIRON_KEY = "tech7.body_deadline"


class Deadline:
    """The time a request has left to send its body; shuts the connection's read side when it
    runs out before :meth:`cancel`."""

    def __init__(self, sock: socket.socket, seconds: float):
        self._sock = sock
        self._lock = threading.Lock()
        self._done = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
        with contextlib.suppress(OSError):  # the client has gone already
            self._sock.shutdown(socket.SHUT_RD)

    def cancel(self) -> None:
        """The request is answered: the deadline no longer applies."""
        with self._lock:
            self._done = True
        self._timer.cancel()


class BodyDeadline:
    """WSGI middleware giving each request with a body ``seconds`` to send it."""

    def __init__(self, wsgi_app: Callable, *, seconds: float):
        self._app = wsgi_app
        self._seconds = seconds

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None or self._seconds <= 0 or not _has_body(environ):
            return self._app(environ, start_response)
        deadline = Deadline(sock, self._seconds)
        environ[ENVIRON_KEY] = deadline
        try:
            response = self._app(environ, start_response)
        except BaseException:
            deadline.cancel()
            raise
        # The answer exists: the body was read, or will never be. gunicorn drains what is left.
        deadline.cancel()
        return response


def _has_body(environ: dict) -> bool:
    """Whether the request announces a body (a Content-Length above 0, or chunked framing)."""
    length = environ.get("CONTENT_LENGTH", "")
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or (length.isdigit() and int(length) > 0)
