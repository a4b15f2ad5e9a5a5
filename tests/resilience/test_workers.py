"""The worker model of ``serve --workers 2``: slow clients hold no worker, one rate limit holds
across the workers.

Today's failures these guard against: three clients trickling a ``POST /v1/verify`` body a byte
a second held both sync workers, so ``/healthz`` took 30 s and gunicorn killed the workers; and
each worker counted the rate limit alone, so a client got up to twice the advertised limit.
"""

from __future__ import annotations

import collections
import http.client
import json
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.processes import Server

BODY_TIMEOUT = 5  # seconds; TECH7_BODY_TIMEOUT of the server under test
TRICKLERS = 4
LIMIT = 20  # anonymous requests per minute


def _server(engine, fresh_databases, keys_dir, tmp_path_factory, **settings) -> Iterator[Server]:
    server = Server(fresh_databases.new(engine), keys_dir,
                    tmp_path_factory.mktemp(f"workers-{engine}"))
    server.env.update({f"TECH7_{name}": value for name, value in settings.items()})
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slow_body_server(engine, fresh_databases, keys_dir, tmp_path_factory):
    yield from _server(engine, fresh_databases, keys_dir, tmp_path_factory,
                       BODY_TIMEOUT=str(BODY_TIMEOUT))


@pytest.fixture(scope="module")
def limited_server(engine, fresh_databases, keys_dir, tmp_path_factory):
    yield from _server(engine, fresh_databases, keys_dir, tmp_path_factory,
                       RATELIMIT_ENABLED="true", RATELIMIT_ANONYMOUS=f"{LIMIT} per minute")


class Trickler(threading.Thread):
    """A client that sends the head of a 4 MB ``POST /v1/verify`` and then its body one byte a
    second, until the server answers or closes (at most ``seconds``)."""

    def __init__(self, port: int, seconds: float):
        super().__init__(daemon=True)
        self.port, self.seconds = port, seconds
        self.answer = b""
        self.elapsed: float | None = None
        self.started = threading.Event()

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n"
                         b"Content-Length: 4000000\r\n\r\n")
            began = time.monotonic()
            self.started.set()
            with selectors.DefaultSelector() as selector:
                selector.register(sock, selectors.EVENT_READ)
                while time.monotonic() - began < self.seconds:
                    try:
                        sock.sendall(b"-")
                    except OSError:
                        break  # the server closed its side: read what it answered
                    if selector.select(timeout=1.0):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        self.answer += chunk
                        if b"\r\n\r\n" in self.answer:
                            break
                self.elapsed = time.monotonic() - began
                try:  # the rest of the answer, until the server closes the connection
                    sock.settimeout(5)
                    while chunk := sock.recv(65536):
                        self.answer += chunk
                except OSError:
                    pass


def _timed_get(port: int, path: str) -> tuple[int, float]:
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    return response.status, time.monotonic() - began


def test_reads_answer_within_a_second_while_four_clients_trickle_bodies(slow_body_server):
    server = slow_body_server
    tricklers = [Trickler(server.port, seconds=BODY_TIMEOUT + 15) for _ in range(TRICKLERS)]
    for trickler in tricklers:
        trickler.start()
    for trickler in tricklers:
        assert trickler.started.wait(timeout=10)
    time.sleep(1)  # the tricklers' requests are in the application, reading their bodies
    reads = []
    for _ in range(BODY_TIMEOUT - 2):  # done well before the deadline
        for path in ("/healthz", "/v1/declaration"):
            reads.append((path, *_timed_get(server.port, path)))
        time.sleep(0.5)
    for path, status, seconds in reads:
        assert status == 200 and seconds < 1.0, (path, status, seconds, server.log_tail())
    assert all(trickler.is_alive() for trickler in tricklers), "they were still trickling"
    for trickler in tricklers:
        trickler.join(timeout=BODY_TIMEOUT + 30)
        assert not trickler.is_alive()
    for trickler in tricklers:
        head, _, body = trickler.answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), (trickler.answer[:300], server.log_tail())
        assert b"Content-Type: application/problem+json" in head
        problem = json.loads(body)
        assert (problem["type"], problem["body_timeout_seconds"]) == \
            ("/problems/request-timeout", BODY_TIMEOUT)
        # Answered at the deadline (measured from the end of the head), not at the socket's end.
        assert BODY_TIMEOUT - 1 <= trickler.elapsed <= BODY_TIMEOUT + 5, trickler.elapsed
    assert "WORKER TIMEOUT" not in server.log_path.read_text()


def test_one_rate_limit_holds_across_the_workers(limited_server):
    server = limited_server
    workers = server.worker_pids()
    assert len(workers) == 2
    statuses: collections.Counter[int] = collections.Counter()
    served_by: collections.Counter[int | None] = collections.Counter()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(15):  # 4 × 15 = 60 requests, a new connection each
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.connect()
            port = connection.sock.getsockname()[1]
            deadline = time.monotonic() + 2
            while (pid := server.worker_serving(port)) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            connection.request("GET", "/v1/priorities")
            response = connection.getresponse()
            response.read()
            connection.close()
            with lock:
                statuses[response.status] += 1
                served_by[pid] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    # Counted per worker, every worker that served a request would have granted its own 20.
    assert all(served_by[pid] >= 1 for pid in workers), served_by
    assert dict(statuses) == {200: LIMIT, 429: 60 - LIMIT}, (statuses, server.log_tail())
