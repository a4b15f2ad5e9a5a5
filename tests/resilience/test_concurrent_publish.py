"""Concurrent publishers against a real ``tech7-registry serve --workers 2``, on both engines.

Two processes that publish the same draft with the same ``If-Match`` at once get exactly one 201
and one 412; eight publishers of four associations get contiguous versions and log entries.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
import time

from tests.support.processes import (
    ASSOCIATIONS,
    Client,
    Outcomes,
    RetryingClient,
    Server,
    StatementPublisher,
    association_token,
    check_invariants,
)

RACE_ROUNDS = 3
# gthread workers take several connections each: a racer reconnects until the two are held by
# different workers, at most this many times.
RECONNECTS = 30
VERSIONS_PER_PUBLISHER = 3
# A racing client, a process of its own with nothing imported but the standard library: for each
# task line it connects and reports its local port; on "again" it reconnects and reports the new
# port, and on "go" it POSTs and reports the answer.
RACER = """
import http.client, json, sys
host, port = sys.argv[1], int(sys.argv[2])
while task := sys.stdin.readline():
    task = json.loads(task)
    while True:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.connect()
        print(connection.sock.getsockname()[1], flush=True)
        if sys.stdin.readline().strip() == "go":
            break
        connection.close()
    connection.request("POST", task["path"], headers=task["headers"])
    response = connection.getresponse()
    print(json.dumps({"status": response.status, "headers": dict(response.getheaders()),
                      "body": response.read().decode()}), flush=True)
    connection.close()
"""


def _line(racer: subprocess.Popen, timeout: float = 60.0) -> str:
    """The racer's next line (it writes one per step, so select() on the pipe is exact)."""
    ready, _, _ = select.select([racer.stdout], [], [], timeout)
    assert ready, f"racer {racer.pid} said nothing for {timeout} s"
    return racer.stdout.readline()


def _workers_holding(server: Server, ports: list[int], timeout: float = 60.0) -> list[int]:
    """Wait until each racer's connection is accepted by a worker (one may still be booting);
    return the workers' pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [server.worker_serving(port) for port in ports]
        if None not in workers:
            return workers
        time.sleep(0.01)
    raise AssertionError(f"the racers' connections were not accepted within {timeout} s")


def test_two_processes_publishing_one_draft_get_one_201_and_one_412(registry_server, tmp_path):
    """Two client processes, each connected to its own gunicorn worker (checked in /proc), send
    the same publish with the same If-Match at once: the registry's writer lock lets one win."""
    client = Client(registry_server.base)
    token = association_token(registry_server.database_url, "bitkom")
    publisher = StatementPublisher(RetryingClient(client), token, "bitkom")
    racers = [subprocess.Popen([sys.executable, "-c", RACER, "127.0.0.1",
                                str(registry_server.port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    published = []
    try:
        for round_number in range(1, RACE_ROUNDS + 1):
            url, etag = publisher.write_draft("race", f"Race round {round_number}.")
            task = json.dumps({"path": url + "/draft/publish",
                               "headers": {**publisher.auth, "If-Match": etag}})
            for racer in racers:
                racer.stdin.write(task + "\n")
                racer.stdin.flush()
            workers = _workers_holding(registry_server, [int(_line(r)) for r in racers])
            for _ in range(RECONNECTS):
                if len(set(workers)) == 2:
                    break
                racers[1].stdin.write("again\n")
                racers[1].stdin.flush()
                workers[1] = _workers_holding(registry_server, [int(_line(racers[1]))])[0]
            assert len(set(workers)) == 2, workers
            for racer in racers:
                racer.stdin.write("go\n")
                racer.stdin.flush()
            answers = sorted((json.loads(_line(racer)) for racer in racers),
                             key=lambda answer: answer["status"])
            assert [answer["status"] for answer in answers] == [201, 412], answers
            won, lost = answers
            assert won["headers"]["Location"] == f"{url}/versions/{round_number}"
            assert lost["headers"]["Content-Type"] == "application/problem+json"
            published.append(won["headers"]["Location"])
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=30)
            racer.stdout.close()

    state = check_invariants(client, [], monitor_state=tmp_path / "monitor")
    assert [href for href in state.versions if href.startswith(url + "/")] == published


def test_eight_concurrent_publishers_get_contiguous_versions_and_log(registry_server, tmp_path):
    """Two threads per association, released together, each publish versions 1..3 of a
    statement of their own: every version and log entry is there once, in gap-free order."""
    client = Client(registry_server.base)
    before = check_invariants(client, [], monitor_state=tmp_path / "monitor")
    tokens = {a: association_token(registry_server.database_url, a) for a in ASSOCIATIONS}
    statements = [(association, f"concurrent-{n}") for association in ASSOCIATIONS for n in (1, 2)]
    start = threading.Barrier(len(statements))
    outcomes = Outcomes()
    results: dict[tuple[str, str], list] = {}

    def publish(association: str, slug: str) -> None:
        publisher = StatementPublisher(RetryingClient(client, outcomes=outcomes),
                                       tokens[association], association)
        start.wait(timeout=60)
        results[association, slug] = [publisher.publish(slug, f"{slug}, version {n}.")
                                      for n in range(1, VERSIONS_PER_PUBLISHER + 1)]

    threads = [threading.Thread(target=publish, args=statement) for statement in statements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == len(threads), "a publisher failed (see its thread's exception)"
    assert not outcomes.retries, f"nothing should need a retry here: {outcomes}"

    published = [p for versions in results.values() for p in versions]
    after = check_invariants(client, published, monitor_state=tmp_path / "monitor")
    for statement, versions in results.items():
        assert [int(p.href.rpartition("/")[2]) for p in versions] == \
            list(range(1, VERSIONS_PER_PUBLISHER + 1)), statement
    new = set(after.versions) - set(before.versions)
    assert new == {p.href for p in published}
    assert after.log_size - before.log_size == len(published), "one log entry per publish"
