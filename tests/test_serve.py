"""The README's run command: `tech7-registry serve` migrates, seeds and serves with gunicorn."""

from __future__ import annotations

import contextlib
import http.client
import json
import runpy
import socket
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from app.core import config
from app.pki.keyring import signer_names_from_seed
from app.server import GUNICORN_CONFIG
from tests.support.serve import REGISTRY, registry_env, serving, wait_for


@pytest.fixture
def served(tmp_path):
    """A real `tech7-registry serve` on SQLite in a fresh data folder: (base URL, process, folder)."""
    with serving(tmp_path) as (base, process, _env):
        yield base, process, tmp_path


def test_serve_publishes_the_declaration_on_sqlite(served):
    base, process, tmp_path = served
    body = wait_for(f"{base}/v1/declaration", process)
    assert b"AI Action Summit" in body
    assert (tmp_path / "data" / "registry.db").exists()
    with urllib.request.urlopen(f"{base}/v1/recommendations?per_page=100") as response:
        assert json.loads(response.read())["total"] == 14


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_serve_keeps_the_database_and_keys_owner_only(served):
    # The database holds token hashes and the activity trail; the key folder, the private keys.
    base, process, tmp_path = served
    wait_for(f"{base}/v1/declaration", process)
    data = tmp_path / "data"
    assert _mode(data) == 0o700
    files = {path.name: _mode(path) for path in data.iterdir()}
    # The workers hold connections open, so SQLite's WAL files are there too; the rate limit
    # counters (which name client addresses) live in a file of their own.
    assert files == {f"{name}{suffix}": 0o600 for name in ("registry.db", "ratelimits.db")
                     for suffix in ("", "-wal", "-shm")}
    keys = tmp_path / "keys"
    assert {_mode(folder) for folder in (keys, keys / "signers")} == {0o700}
    private = list(keys.rglob("*.key"))
    # The root and issuing CAs, the TSA, the log, and each signer.
    assert len(private) == 4 + len(signer_names_from_seed(config.SEED_FILE))
    assert {_mode(key) for key in private} == {0o600}


def test_serve_answers_a_chunked_body_over_the_limit_with_413(served):
    """gunicorn ends a chunked body's stream itself and werkzeug stopped reading at the limit,
    so the view saw a truncated body: a 400 "not valid JSON" instead of a 413."""
    base, process, tmp_path = served
    wait_for(base + "/healthz", process)
    token = subprocess.run([REGISTRY, "tokens", "create", "--operator"], env=registry_env(tmp_path),
                           capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    listed = urllib.request.Request(base + "/v1/tokens",
                                    headers={"Authorization": f"Bearer {token}"})
    tokens = urllib.request.urlopen(listed, timeout=10).read()
    # MAX_BODY_BYTES is a mebibyte: the body is a valid token request padded past it.
    chunks = [b'{"scopes": ["publish"], "label": "'] + [b"x" * 65536] * 17 + [b'"}']
    response, body = _send_chunked(base, "/v1/tokens", chunks,
                                   {"Content-Type": "application/json",
                                    "Authorization": f"Bearer {token}"})
    assert response.status == 413, body
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["type"] == "/problems/content-too-large"
    assert urllib.request.urlopen(listed, timeout=10).read() == tokens


def _send_chunked(base: str, path: str, chunks: list[bytes],
                  headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
    """POST ``chunks`` with chunked transfer coding; the response and its whole body."""
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    # The server may answer before it has read the rest of an oversized body.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.request("POST", path, body=iter(chunks), encode_chunked=True, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def _raw(base: str, request: bytes, *, half_close: bool = False) -> tuple[int, str, bytes]:
    """Send ``request`` as is on a new connection; (status, Content-Type, body) of the answer,
    read until the server closes the connection (bounded by the socket timeout)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), fields.get("Content-Type", ""), body


def _post_chunked(path: str, media_type: str, chunks: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: {media_type}\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + chunks


def test_serve_holds_every_body_to_the_limit_and_answers_broken_framing_with_400(served):
    base, process, _tmp_path = served
    wait_for(base + "/healthz", process)
    # The time-stamping endpoint reads its body itself: 2 MiB, chunked, is over the limit too.
    response, body = _send_chunked(base, "/v1/timestamp", [b"x" * 65536] * 32,
                                   {"Content-Type": "application/timestamp-query"})
    assert response.status == 413, body
    assert json.loads(body)["type"] == "/problems/content-too-large"
    # A chunk size line that is no hexadecimal number, and a body that ends inside a chunk.
    for chunks, half_close in [(b"zz\r\nabc\r\n0\r\n\r\n", False), (b"10\r\nabc", True)]:
        for path, media_type in [("/v1/timestamp", "application/timestamp-query"),
                                 ("/v1/verify", "multipart/form-data; boundary=b")]:
            status, content_type, body = _raw(base, _post_chunked(path, media_type, chunks),
                                              half_close=half_close)
            assert (status, content_type) == (400, "application/problem+json"), (path, body)
            assert json.loads(body)["type"] == "/problems/unreadable-body"


def test_serve_answers_long_urls_and_header_fields_itself_below_gunicorns_limits(served):
    base, process, _tmp_path = served
    wait_for(base + "/healthz", process)
    gunicorn = runpy.run_path(str(GUNICORN_CONFIG))
    # The request line is "METHOD SP target SP HTTP/1.1"; a field line "Name: value".
    assert config.MAX_URL_BYTES + len("OPTIONS  HTTP/1.1") < gunicorn["limit_request_line"]
    assert gunicorn["limit_request_field_size"] > config.MAX_HEADER_BYTES

    def get(target: str, field: str = "X-Filler: -") -> tuple[int, str, bytes]:
        return _raw(base, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{field}\r\n"
                          "Connection: close\r\n\r\n".encode())

    path = "/v1/recommendations/"
    assert get(path + "a" * (config.MAX_URL_BYTES - len(path)))[:2] == \
        (404, "application/problem+json")
    status, content_type, body = get(path + "a" * (config.MAX_URL_BYTES + 1 - len(path)))
    assert (status, content_type) == (414, "application/problem+json"), body
    assert json.loads(body)["type"] == "/problems/uri-too-long"
    status, content_type, body = get(path + "a" * gunicorn["limit_request_line"])
    # Beyond gunicorn's own limit, gunicorn's own answer (HTML), as the README says.
    assert (status, content_type) == (414, "text/html"), body

    filler = "X-Filler: " + "a" * (config.MAX_HEADER_BYTES - len("X-Filler: "))
    assert get("/v1/recommendations", filler)[0] == 200
    status, content_type, body = get("/v1/recommendations", filler + "a")
    assert (status, content_type) == (431, "application/problem+json"), body
    assert json.loads(body)["type"] == "/problems/request-header-fields-too-large"
    status, content_type, body = get("/v1/recommendations",
                                     filler + "a" * gunicorn["limit_request_field_size"])
    assert (status, content_type) == (431, "text/html"), body
