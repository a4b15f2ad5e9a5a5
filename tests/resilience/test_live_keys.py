"""Keys rotated and revoked with ``tech7-registry keys`` while ``serve --workers 2`` runs.

Every worker loads the key folder when it starts, and the command line changes the folder and the
database from another process. Without a restart, each worker must sign its next publish with the
current certificate, refuse a revoked one, and serve a ``/v1/trust`` that shows the change. Each
check is made on every worker: requests go over connections that /proc shows each worker holds
(:meth:`helpers.Server.worker_serving`), a bounded number of rounds. Both engines.
"""

from __future__ import annotations

import http.client
import itertools
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tech7_audit.manifests import certificate_sha256, read_manifest

from app.pki.authority import KeyStore
from tests.support.processes import Client, Reply, RetryingClient, Server, StatementPublisher, association_token

# helpers.py's fixtures, registered once as a plugin (see test_concurrent_publish.py).
#: Rounds of connections tried, at most, until every worker has answered a request.
ROUNDS = 20
_CLI = str(Path(sys.executable).with_name("tech7-registry"))

Request = tuple[str, str, dict[str, str]]  # method, path, headers


@pytest.fixture(scope="module")
def live_server(engine, fresh_databases, keys_dir, tmp_path_factory):
    """``serve --workers 2`` with a key folder of its own, free to rotate and revoke."""
    workdir = tmp_path_factory.mktemp(f"live-keys-{engine}")
    keys = workdir / "keys"
    shutil.copytree(keys_dir, keys)
    server = Server(fresh_databases.new(engine), keys, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def keys_command(server: Server, *args: str) -> str:
    """Run ``tech7-registry keys ARGS`` against the server's database and key folder."""
    done = subprocess.run([_CLI, "keys", *args], env=server.env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def current_sha256(server: Server, signer: str) -> str:
    """The SHA-256 of ``signer``'s current certificate in the server's key folder."""
    return certificate_sha256(KeyStore.load(Path(server.env["TECH7_KEYS_DIR"]))
                              .signer_certificate(signer))


def signer_of(client: Client, href: str) -> str:
    """The SHA-256 of the certificate that signed the version at ``href``, as its manifest says."""
    anchors = client.get("/v1/trust/anchors.pem").body
    body, manifest = client.get(href).body, client.get(href + "/manifest").body
    report = read_manifest(body, "application/json", manifest, trust_anchors_pem=anchors)
    assert report.trusted, (href, report.state, report.codes)
    return report.signer_certificate_sha256


def on_every_worker(server: Server, prepare: Callable[[], Request]) -> dict[int, Reply]:
    """One answer from each worker, by worker pid.

    Each round opens one idle connection per worker and waits until workers hold them; which
    worker accepts which is the kernel's choice, so a round may reach only some of them, and the
    rounds repeat until every worker has answered. The request ``prepare()``
    returns is sent on the connection of each worker that has not answered yet. ``prepare`` runs
    before the connections open, while the workers are free to serve what it needs.
    """
    workers = set(server.worker_pids())
    answers: dict[int, Reply] = {}
    for _ in range(ROUNDS):
        requests = [prepare() for _ in workers - set(answers)]
        connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                       for _ in workers]
        try:
            held: dict[int, http.client.HTTPConnection] = {}
            for connection in connections:
                connection.connect()
            for connection in connections:
                pid = _holder(server, connection.sock.getsockname()[1])
                if pid is not None and pid not in answers:
                    held.setdefault(pid, connection)
            for (pid, connection), (method, path, headers) in zip(held.items(), requests, strict=False):
                connection.request(method, path, headers=headers)
                response = connection.getresponse()
                answers[pid] = Reply(response.status,
                                     {k.lower(): v for k, v in response.getheaders()},
                                     response.read())
        finally:
            for connection in connections:
                connection.close()
        if workers <= set(answers):
            assert set(server.worker_pids()) == workers, "a worker was replaced meanwhile"
            return answers
    raise AssertionError(f"{ROUNDS} rounds reached only workers {sorted(answers)} of "
                         f"{sorted(workers)}")


def _holder(server: Server, client_port: int, patience: float = 2.0) -> int | None:
    """The worker holding the connection from ``client_port``, once one accepts it (or None)."""
    deadline = time.monotonic() + patience
    while (pid := server.worker_serving(client_port)) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return pid


def publish_new_statement(publisher: StatementPublisher, slugs) -> Callable[[], Request]:
    """A ``prepare`` for :func:`on_every_worker`: a draft of a new statement, and its publish."""

    def prepare() -> Request:
        url, etag = publisher.write_draft(next(slugs), "Signed by whichever worker takes it.")
        return "POST", url + "/draft/publish", {**publisher.auth, "If-Match": etag}

    return prepare


def trust_lists(server: Server) -> list[dict]:
    """``/v1/trust`` as each worker serves it, checked to be served for revalidation."""
    lists = []
    for reply in on_every_worker(server, lambda: ("GET", "/v1/trust", {})).values():
        assert reply.status == 200, reply.body[:300]
        assert reply.headers.get("cache-control") == "no-cache", reply.headers
        lists.append(reply.json())
    return lists


def test_a_rotation_signs_every_workers_next_publish_with_the_new_certificate(live_server):
    client = Client(live_server.base)
    publisher = StatementPublisher(RetryingClient(client),
                                   association_token(live_server.database_url, "bitkom"),
                                   "bitkom")
    old = current_sha256(live_server, "bitkom")
    slugs = (f"rotation-{n}" for n in itertools.count())
    before = on_every_worker(live_server, publish_new_statement(publisher, slugs))
    assert {signer_of(client, r.headers["location"]) for r in before.values()} == {old}

    output = keys_command(live_server, "rotate", "bitkom")

    new = current_sha256(live_server, "bitkom")
    assert new != old and "New certificate for bitkom" in output
    after = on_every_worker(live_server, publish_new_statement(publisher, slugs))
    assert {reply.status for reply in after.values()} == {201}, after
    assert {signer_of(client, r.headers["location"]) for r in after.values()} == {new}
    for trust in trust_lists(live_server):
        assert {s["name"]: s["sha256"] for s in trust["signers"]}["bitkom"] == new
        statuses = {c["sha256"]: c["status"] for c in trust["certificates"]}
        assert (statuses[old], statuses[new]) == ("valid", "valid")


def test_revoke_then_rotate_publishes_again_without_a_restart(live_server):
    client = Client(live_server.base)
    token = association_token(live_server.database_url, "techuk")
    publisher = StatementPublisher(RetryingClient(client), token, "techuk")
    old = current_sha256(live_server, "techuk")
    url, etag = publisher.write_draft("revocation", "Published once the key is rotated.")
    publish = ("POST", url + "/draft/publish", {**publisher.auth, "If-Match": etag})

    keys_command(live_server, "revoke", "techuk", "--reason", "keyCompromise")

    for reply in on_every_worker(live_server, lambda: publish).values():
        assert reply.status == 409 and reply.json()["type"] == "/problems/signer-revoked", \
            (reply.status, reply.body[:300])

    keys_command(live_server, "rotate", "techuk")

    new = current_sha256(live_server, "techuk")
    published = client.request(*publish[:2], headers=publish[2])
    assert published.status == 201, published.body[:300]
    assert signer_of(client, published.headers["location"]) == new
    slugs = (f"after-rotation-{n}" for n in itertools.count())
    after = on_every_worker(live_server, publish_new_statement(publisher, slugs))
    assert {reply.status for reply in after.values()} == {201}, after
    assert {signer_of(client, r.headers["location"]) for r in after.values()} == {new}
    for trust in trust_lists(live_server):
        assert {s["name"]: s["sha256"] for s in trust["signers"]}["techuk"] == new
        statuses = {c["sha256"]: c["status"] for c in trust["certificates"]}
        assert (statuses[old], statuses[new]) == ("revoked", "valid")
        assert [r["certificate_sha256"] for r in trust["revocations"]] == [old]
