"""The witness over HTTP/1.1, on the standard library's threading HTTP server.

Routes, at the root (so the witness's submission and monitoring prefixes are both
``http://host:port``; C2SP tlog-witness "HTTP Interface" lets them be the same):

- ``POST /add-checkpoint``: C2SP tlog-witness "add-checkpoint";
- ``GET /<origin hash>/checkpoint``: the latest cosigned checkpoint of the origin whose SHA-256
  is ``<origin hash>`` in lowercase hex, for monitors (the spec's monitoring read).

Connections are kept alive, as the spec recommends: every answer carries its length.
"""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tech7_witness.witness import Answer, Witness, problem

MAX_BODY = 1 << 20
"""Bytes an add-checkpoint body may hold: 63 proof lines and a checkpoint note with 100 signatures
fit many times over."""

_CHECKPOINT_PATH = re.compile(r"/([0-9a-f]{64})/checkpoint")


def make_server(witness: Witness, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to (``host``, ``port``), each request on a thread of its own."""

    class Handler(_Handler):
        pass

    Handler.witness = witness
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tech7-witness"
    witness: Witness

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self.close_connection = True  # its body is left unread
            self._send(problem(404, f"no such resource: {self.path}"))
            return
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(problem(411, "send the body with a Content-Length"))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._send(problem(411, "send the body with a Content-Length"))
            return
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(problem(413, f"an add-checkpoint body holds at most {MAX_BODY} bytes"))
            return
        self._send(self.witness.add_checkpoint(self.rfile.read(length)))

    def do_GET(self) -> None:
        match = _CHECKPOINT_PATH.fullmatch(self.path)
        if match:
            self._send(self.witness.cosigned_checkpoint(match.group(1)))
        elif self.path == "/add-checkpoint":
            self._send(problem(405, "add-checkpoint is a POST"), allow="POST")
        else:
            self._send(problem(404, f"no such resource: {self.path}"))

    def _send(self, answer: Answer, allow: str | None = None) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if allow:
            self.send_header("Allow", allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer.body)
