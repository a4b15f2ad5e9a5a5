"""Two hosts on one database: two real ``tech7-registry serve`` processes (127.0.0.1, ports of
their own) on one PostgreSQL database, one keys folder and one Redis for the rate limits.

Publishers write each draft through one host and publish it through the other, on both hosts at
once: every document's versions stay contiguous, the log stays one log (gap-free, one tree, the
same signed checkpoint from either host), each host serves the other's versions, and a client's
rate-limit budget is one budget across the hosts. PostgreSQL (127.0.0.1:5432, or
TEST_DATABASE_URL's) and Redis (127.0.0.1:6379, or TECH7_TEST_REDIS_URL) are the local servers;
the test fails rather than skips without them.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from tests.support.processes import (
    ASSOCIATIONS,
    Client,
    Outcomes,
    Reply,
    RetryingClient,
    Server,
    StatementPublisher,
    association_token,
    check_invariants,
)

REDIS_URL = os.environ.get("TECH7_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Versions each publishing thread makes; four threads, so ten publishes land on each host.
VERSIONS_PER_THREAD = 5


class HostsInTurn:
    """Sends each request to the next host in turn: a publisher's draft goes through one host
    and its publish through the other. Counts the publishes each host answered."""

    def __init__(self, clients: list[Client], first: int, publishes: Counter):
        self._clients = itertools.islice(itertools.cycle(clients), first, None)
        self._publishes = publishes

    def request(self, method: str, path: str, **kwargs) -> Reply:
        client = next(self._clients)
        reply = client.request(method, path, **kwargs)
        if path.endswith("/draft/publish") and reply.status == 201:
            self._publishes[client.port] += 1
        return reply


@pytest.fixture
def two_hosts(fresh_databases, keys_dir, tmp_path) -> Iterator[list[Server]]:
    """Two ``serve`` processes on one fresh PostgreSQL database, counting rate limits in Redis
    under a key prefix of their own (removed afterwards)."""
    database_url = fresh_databases.new("postgresql")
    prefix = f"tech7-test-{uuid.uuid4().hex[:12]}"
    hosts = []
    for name in ("host-a", "host-b"):
        (tmp_path / name).mkdir()
        host = Server(database_url, keys_dir, tmp_path / name, workers=2)
        host.env.update({"TECH7_RATELIMIT_ENABLED": "true",
                         "TECH7_RATELIMIT_STORAGE_URI": REDIS_URL,
                         "TECH7_RATELIMIT_KEY_PREFIX": prefix,
                         "TECH7_RATELIMIT_ANONYMOUS": "100000 per hour",
                         "TECH7_RATELIMIT_AUTHENTICATED": "100000 per hour"})
        hosts.append(host)
    counters = redis.Redis.from_url(REDIS_URL)
    try:
        for host in hosts:
            host.start()
        yield hosts
    finally:
        for host in hosts:
            host.stop()
        for key in counters.scan_iter(f"*{prefix}*"):
            counters.delete(key)
        counters.close()


def test_two_hosts_on_one_database_publish_as_one_registry(two_hosts, tmp_path):
    clients = [Client(host.base) for host in two_hosts]
    database_url = two_hosts[0].database_url
    before = check_invariants(clients[0], [], monitor_state=tmp_path / "monitor")
    tokens = {a: association_token(database_url, a) for a in ASSOCIATIONS}
    start = threading.Barrier(len(ASSOCIATIONS))
    outcomes, publishes = Outcomes(), Counter()
    results: dict[str, list] = {}

    def publish(number: int, association: str) -> None:
        hosts = HostsInTurn(clients, first=number % 2, publishes=publishes)
        publisher = StatementPublisher(RetryingClient(hosts, outcomes=outcomes),
                                       tokens[association], association)
        start.wait(timeout=60)
        results[association] = [publisher.publish("two-hosts", f"Version {n}.")
                                for n in range(1, VERSIONS_PER_THREAD + 1)]

    threads = [threading.Thread(target=publish, args=(number, association))
               for number, association in enumerate(ASSOCIATIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == len(threads), "a publisher failed (see its thread's exception)"
    assert not outcomes.retries, f"nothing should need a retry here: {outcomes}"
    assert sorted(publishes.values()) == [10, 10], publishes

    published = [p for versions in results.values() for p in versions]
    for association, versions in results.items():
        assert [p.href for p in versions] == \
            [f"/v1/associations/{association}/statements/two-hosts/versions/{n}"
             for n in range(1, VERSIONS_PER_THREAD + 1)], association
    # Each host serves every version, its own and the other's, and one log: the monitor's
    # state from host A is the tree host B serves.
    states = [check_invariants(client, published, monitor_state=tmp_path / "monitor")
              for client in clients]
    assert states[0] == states[1]
    assert states[0].log_size == before.log_size + len(published)
    assert set(states[0].versions) - set(before.versions) == {p.href for p in published}
    assert clients[0].get("/v1/log/checkpoint").body == clients[1].get("/v1/log/checkpoint").body

    # One rate-limit budget across the hosts: each request spends from the same Redis counter.
    first = clients[0].get("/v1")
    second = clients[1].get("/v1")
    assert first.status == second.status == 200
    assert int(second.headers["ratelimit-remaining"]) == \
        int(first.headers["ratelimit-remaining"]) - 1, (first.headers, second.headers)
    prefix = two_hosts[0].env["TECH7_RATELIMIT_KEY_PREFIX"]
    with redis.Redis.from_url(REDIS_URL) as counters:
        assert any(counters.scan_iter(f"*{prefix}*")), "the counters are in Redis"
