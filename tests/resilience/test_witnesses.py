"""Three real witnesses cosign what ``tech7-registry serve --workers 2`` publishes, 2 of 3 needed.

Witnesses are killed with SIGKILL one after the other: with one down the quorum still holds;
with two down publishes still commit, and receipts say they are not quorate; restarted, the
witnesses are caught up by the registry's background rounds within a bounded time. On SQLite
and PostgreSQL. Everything listens on 127.0.0.1; every loop is bounded in time.
"""

from __future__ import annotations

import signal
import time

from tech7_tlog.note import verifier_key
from tech7_tlog.policy import parse_policy
from tech7_witness.testing import WitnessProcess, free_port, init

from app import config
from app.pki.keyring import Keyring
from tests.support.processes import ASSOCIATIONS, Client, RetryingClient, Server, StatementPublisher, association_token

NAMES = ("assoc-a", "assoc-b", "assoc-c")
CATCH_UP_SECONDS = 60


def test_the_quorum_holds_with_one_witness_down_and_is_never_claimed_without_it(
        engine, fresh_databases, keys_dir, tmp_path):
    log_vkey = verifier_key(config.LOG_ORIGIN, Keyring(str(keys_dir)).store.log_public_key)
    witnesses = {}
    for name in NAMES:
        process = WitnessProcess(tmp_path / name, [log_vkey])
        process.vkey = init(tmp_path / name, f"witness.example/{name}")
        process.port = free_port()
        witnesses[name] = process.start()
    policy_text = "".join([f"log {log_vkey}\n"]
                          + [f"witness {n} {w.vkey} http://127.0.0.1:{w.port}\n" for n, w in witnesses.items()]
                          + [f"group members 2 {' '.join(NAMES)}\n", "quorum members\n"])
    (tmp_path / "policy.txt").write_text(policy_text)
    policy = parse_policy(policy_text)
    database_url = fresh_databases.new(engine)
    server = Server(database_url, keys_dir, tmp_path)
    server.env.update({"TECH7_WITNESS_POLICY": str(tmp_path / "policy.txt"),
                       "TECH7_WITNESS_INTERVAL": "0.3", "TECH7_WITNESS_TIMEOUT": "2"})
    try:
        server.start()
        client = Client(server.base)
        publisher = StatementPublisher(RetryingClient(client), association_token(database_url, ASSOCIATIONS[0]),
                                       ASSOCIATIONS[0])

        def cosigners_of_newest(expected: set[str]) -> set[str]:
            """Poll until the newest checkpoint has exactly ``expected`` cosigners (bounded)."""
            deadline = time.monotonic() + CATCH_UP_SECONDS
            while True:
                note = client.get("/v1/log/checkpoint").body.decode()
                _, cosigners = policy.verify(note)
                if cosigners == expected or time.monotonic() > deadline:
                    return cosigners
                time.sleep(0.2)

        def receipt_quorate(href: str) -> str:
            reply = client.get(href + "/receipt")
            assert reply.status == 200
            return reply.headers["tech7-quorate"]

        first = publisher.publish("witnessed", "Cosigned by all three.")
        assert cosigners_of_newest(set(NAMES)) == set(NAMES)
        assert receipt_quorate(first.href) == "?1"

        witnesses["assoc-c"].stop(signal.SIGKILL)
        second = publisher.publish("witnessed", "Cosigned by two of three.")
        assert cosigners_of_newest({"assoc-a", "assoc-b"}) == {"assoc-a", "assoc-b"}
        assert receipt_quorate(second.href) == "?1"

        witnesses["assoc-b"].stop(signal.SIGKILL)
        third = publisher.publish("witnessed", "Cosigned by one: not quorate.")  # still commits
        assert cosigners_of_newest({"assoc-a"}) == {"assoc-a"}
        assert receipt_quorate(third.href) == "?0"
        assert receipt_quorate(second.href) == "?1"  # its quorate checkpoint is still there
        states = {s["witness"]: s for s in client.get("/v1/log/witnesses").json()["items"]}
        assert states["assoc-b"]["last_error"] and states["assoc-c"]["last_error"]

        witnesses["assoc-b"].start()
        witnesses["assoc-c"].start()
        assert cosigners_of_newest(set(NAMES)) == set(NAMES)
        assert receipt_quorate(third.href) == "?1"
    finally:
        server.stop()
        for process in witnesses.values():
            process.stop()
