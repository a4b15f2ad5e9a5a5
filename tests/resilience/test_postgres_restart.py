"""PostgreSQL stopped for about five seconds and started again under load.

While it is down the service answers 503 problems with ``Retry-After`` (never a 500, never a
request that hangs); once it is back the service recovers by itself, and nothing a client was
told was published is lost or duplicated (publishers retry with the same ``Idempotency-Key``).

Disruptive: stopping the local cluster breaks every other test run that uses it at that moment,
so the test runs only when TECH7_DISRUPTIVE_TESTS=1 (``.ci/run`` runs it last, alone). It needs
root and the Debian ``pg_ctlcluster`` tools, and stops the cluster that listens on the port of
TEST_DATABASE_URL (default 5432); the cluster is always started again in a ``finally``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import make_url

from tests.support.processes import (
    BROKEN_CONNECTION,
    Client,
    Outcomes,
    RetryingClient,
    StatementPublisher,
    association_token,
    check_invariants,
    postgres_server_url,
)

# helpers.py's fixtures, registered once as a plugin: every module then shares one server per
# engine (fixtures imported into each module would be set up once per module).
pytestmark = [
    pytest.mark.skipif(os.environ.get("TECH7_DISRUPTIVE_TESTS") != "1",
                       reason="stops the shared local PostgreSQL for ~5 s; opt in with "
                              "TECH7_DISRUPTIVE_TESTS=1"),
    pytest.mark.parametrize("engine", ["postgresql"], indirect=True),
]

OUTAGE_SECONDS = 5.0
#: The longest any request may take, during the outage too: an answer, not a hang.
MAX_LATENCY = 5.0
PUBLISHERS = ("bitkom", "techuk")
PUBLISHES_EACH_SIDE = 2  # per publisher, before the outage and again after it
READS = ("/v1/recommendations?per_page=5", "/v1/log/checkpoint", "/v1/changes?since=0&limit=5",
         "/v1/statements", "/v1/recommendations/sme-participation/versions/1")
# Served from each worker's cache of immutable versions, so it may answer while the DB is down.
VERSION_READ = READS[-1]


@dataclass(frozen=True)
class Read:
    """One read the readers made: when it started, what it asked, how it ended."""

    started: float
    path: str
    status: int | None  # None: the connection broke or timed out
    seconds: float
    problem: bool
    retry_after: str | None


def _cluster_serving(server_url: str) -> tuple[str, str]:
    """The (version, name) of the local Debian cluster listening on the URL's port."""
    url = make_url(server_url)
    if url.host not in ("127.0.0.1", "localhost") or shutil.which("pg_ctlcluster") is None \
            or os.geteuid() != 0:
        pytest.skip("needs root, pg_ctlcluster and a PostgreSQL on this host")
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True,
                             check=True).stdout
    for line in listing.splitlines():
        version, name, port = line.split()[:3]
        if int(port) == (url.port or 5432):
            return version, name
    pytest.skip(f"no local cluster listens on port {url.port or 5432}")


def _pg_ctlcluster(cluster: tuple[str, str], action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
                          capture_output=True, text=True, check=False, timeout=60)


def _ensure_started(cluster: tuple[str, str], timeout: float = 60.0) -> None:
    """Start the cluster unless it runs, and wait until it accepts connections."""
    status = _pg_ctlcluster(cluster, "status")
    if status.returncode != 0:  # 3: not running
        started = _pg_ctlcluster(cluster, "start")
        assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + timeout
    while _pg_ctlcluster(cluster, "status").returncode != 0:
        assert time.monotonic() < deadline, f"cluster {cluster} did not start"
        time.sleep(0.2)


def test_postgres_outage_answers_503_and_loses_nothing(registry_server, tmp_path):
    cluster = _cluster_serving(postgres_server_url())
    before = check_invariants(Client(registry_server.base), [], monitor_state=tmp_path / "monitor")
    stop = threading.Event()
    reads: list[Read] = []
    published: dict[str, list] = {association: [] for association in PUBLISHERS}
    outcomes = Outcomes()
    failures: list[BaseException] = []

    def read_loop(seed: int) -> None:
        rng, client = random.Random(seed), Client(registry_server.base, timeout=MAX_LATENCY * 2)
        while not stop.is_set():
            path, started = rng.choice(READS), time.monotonic()
            try:
                reply = client.get(path)
            except BROKEN_CONNECTION:
                reply = None
            reads.append(Read(started, path, reply and reply.status,
                              time.monotonic() - started, bool(reply and reply.is_problem),
                              reply and reply.headers.get("retry-after")))
            time.sleep(0.05)

    def publish_loop(association: str) -> None:
        client = RetryingClient(Client(registry_server.base, timeout=MAX_LATENCY * 2), patience=60,
                                pause=0.25, outcomes=outcomes)
        publisher = StatementPublisher(client, association_token(registry_server.database_url,
                                                                 association), association)
        try:
            while not stop.is_set():
                number = len(published[association]) + 1
                published[association].append(publisher.publish("outage", f"Version {number}."))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=read_loop, args=(seed,), daemon=True) for seed in (1, 2)]
    threads += [threading.Thread(target=publish_loop, args=(a,), daemon=True) for a in PUBLISHERS]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: all(len(p) >= PUBLISHES_EACH_SIDE for p in published.values()),
                  "publishes before the outage")
        stopping = time.monotonic()
        try:
            stopped = _pg_ctlcluster(cluster, "stop")
            assert stopped.returncode == 0, stopped.stderr
            down = time.monotonic()
            time.sleep(max(0.0, stopping + OUTAGE_SECONDS - time.monotonic()))
            before_outage_ends = {a: len(p) for a, p in published.items()}
            restarting = time.monotonic()
        finally:
            _ensure_started(cluster)
        up = time.monotonic()
        _wait_for(lambda: all(len(published[a]) >= before_outage_ends[a] + PUBLISHES_EACH_SIDE
                              for a in PUBLISHERS), "publishes after the outage")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures

    during = [r for r in reads if down <= r.started and r.started + r.seconds <= restarting]
    refused = [r for r in during if r.path != VERSION_READ]
    summary = (f"outage {restarting - stopping:.1f} s; {len(reads)} reads, {len(during)} while "
               f"down; publisher statuses {dict(outcomes.statuses)}, {outcomes.broken} broken, "
               f"{outcomes.replayed} replayed; longest read "
               f"{max(r.seconds for r in reads):.2f} s, publish attempt {outcomes.longest:.2f} s")
    print(summary)  # shown by pytest -rP
    assert refused, summary
    assert all(r.status == 503 and r.problem and int(r.retry_after) > 0 for r in refused), \
        [r for r in refused if r.status != 503]
    assert all(r.status in (200, 503) for r in during), summary
    broken = [r for r in reads if r.status is None or (r.status >= 500 and r.status != 503)]
    assert not broken, broken
    assert not [s for s in outcomes.statuses if s >= 500 and s != 503], summary
    assert max(r.seconds for r in reads) < MAX_LATENCY and outcomes.longest < MAX_LATENCY, summary
    assert all(r.status == 200 for r in reads if r.started > up + 5), "not recovered"

    everything = [p for versions in published.values() for p in versions]
    after = check_invariants(Client(registry_server.base), everything,
                             monitor_state=tmp_path / "monitor")
    assert set(after.versions) - set(before.versions) == {p.href for p in everything}
    assert after.log_size - before.log_size == len(everything)


def _wait_for(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)
