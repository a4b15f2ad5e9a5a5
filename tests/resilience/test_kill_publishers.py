"""Workers killed with SIGKILL in the middle of publishing lose and duplicate nothing.

A loop of statement publishes runs against ``tech7-registry serve --workers 2`` while, at points
a seeded RNG picks, the test kills the gunicorn worker serving the request just sent (or, when no
worker holds it yet, a random worker). gunicorn starts a replacement; the client retries what
broke, repeating a publish's ``Idempotency-Key``. A kill almost never lands in the instant between
a publish's commit and its answer, so the loop also abandons some publishes itself once they have
committed (the draft is gone) and before reading the answer, as a client whose connection dropped
would: their retry must be replayed rather than published twice. The server is then restarted and
every invariant checked, on both engines.
"""

from __future__ import annotations

import os
import random
import signal
import time

from tests.support.processes import (
    ASSOCIATIONS,
    Client,
    Outcomes,
    RetryingClient,
    StatementPublisher,
    association_token,
    check_invariants,
)

# helpers.py's fixtures, registered once as a plugin: every module then shares one server per
# engine (fixtures imported into each module would be set up once per module).
SEED = 20250211
PUBLISHES = 24
KILL_PROBABILITY = 0.15  # per request sent: about 8 kills in the loop
ABANDON_PROBABILITY = 0.25  # per publish sent: about 6 abandoned after their commit
MAX_KILLS = 10
KILL_DELAY = (0.0, 0.05)  # seconds after the request is on the wire
LOOP_SECONDS = 90


def test_killed_workers_lose_and_duplicate_nothing(registry_server, tmp_path):
    rng = random.Random(SEED)
    before = check_invariants(Client(registry_server.base), [], monitor_state=tmp_path / "monitor")
    killed: list[int] = []  # worker pids
    abandoned: list[str] = []  # Idempotency-Keys, once per abandoned attempt

    def interfere(method: str, path: str, headers, client_port: int) -> None:
        draw = rng.random()
        if path.endswith("/draft/publish") and draw < ABANDON_PROBABILITY:
            _wait_until_committed(probe, path.removesuffix("/publish"), headers)
            abandoned.append(headers["Idempotency-Key"])
            raise ConnectionAbortedError("abandoned after the commit, before the answer")
        if len(killed) < MAX_KILLS and draw > 1 - KILL_PROBABILITY:
            time.sleep(rng.uniform(*KILL_DELAY))
            victim = registry_server.worker_serving(client_port)
            if victim is None:
                workers = registry_server.worker_pids()
                if not workers:
                    return  # both are being replaced: the request waits in the listen queue
                victim = rng.choice(workers)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                return
            killed.append(victim)

    probe = RetryingClient(Client(registry_server.base))
    outcomes = Outcomes()
    client = RetryingClient(Client(registry_server.base, after_send=interfere), outcomes=outcomes)
    publishers = [StatementPublisher(client, association_token(registry_server.database_url, a), a)
                  for a in ASSOCIATIONS]
    deadline = time.monotonic() + LOOP_SECONDS
    published = []
    for number in range(PUBLISHES):
        assert time.monotonic() < deadline, f"{number} publishes took over {LOOP_SECONDS} s"
        publisher = publishers[number % len(publishers)]
        published.append(publisher.publish("kill", f"Publish {number} of {PUBLISHES}."))

    summary = (f"{len(killed)} workers killed, {len(set(abandoned))} publishes abandoned "
               f"({len(abandoned)} times), {outcomes.broken} requests broken, "
               f"{outcomes.retries} retries, {outcomes.replayed} publishes replayed, "
               f"statuses {dict(outcomes.statuses)}")
    print(summary)  # shown by pytest -rP
    assert killed and outcomes.broken > len(abandoned), summary
    assert abandoned and outcomes.replayed >= len(set(abandoned)), summary
    assert not [s for s in outcomes.statuses if s >= 500], summary

    registry_server.restart()
    after = check_invariants(Client(registry_server.base), published,
                             monitor_state=tmp_path / "monitor")
    new = set(after.versions) - set(before.versions)
    assert new == {p.href for p in published}, summary
    assert after.log_size - before.log_size == PUBLISHES, summary
    for association in ASSOCIATIONS:
        numbers = [int(p.href.rpartition("/")[2]) for p in published
                   if f"/{association}/" in p.href]
        assert numbers == list(range(1, len(numbers) + 1)), (association, numbers)


def _wait_until_committed(client: RetryingClient, draft: str, headers, timeout: float = 30.0
                          ) -> None:
    """Poll the draft a publish consumes until it is gone: the publish has committed."""
    deadline = time.monotonic() + timeout
    while client.request("GET", draft, headers={"Authorization": headers["Authorization"]}
                         )[0].status == 200:
        assert time.monotonic() < deadline, f"{draft} was not published within {timeout} s"
        time.sleep(0.02)
