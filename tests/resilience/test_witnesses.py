"""Three real witnesses cosign what ``tech7-registry serve --workers 2`` publishes, 2 of 3 needed.

Witnesses are killed with SIGKILL one after the other: with one down the quorum still holds;
with two down publishes still commit, receipts say they are not quorate, and ``tech7-audit
verify --policy`` and ``monitor --policy`` refuse them, naming the missing witnesses; restarted,
the witnesses are caught up by the registry's background rounds within a bounded time. A
witness killed with SIGKILL in the middle of an add-checkpoint forgets nothing: restarted, it
still refuses a fork signed with the registry's real log key, and the monitor calls such a fork
LOG REWRITTEN. On SQLite and PostgreSQL. Everything listens on 127.0.0.1; every loop is bounded
in time.
"""

from __future__ import annotations

import shlex
import signal
import sqlite3
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from click.testing import CliRunner
from tech7_audit.cli import audit
from tech7_tlog.note import format_checkpoint, sign_note, verifier_key
from tech7_tlog.policy import parse_policy
from tech7_tlog.witness import format_add_checkpoint, parse_tlog_size
from tech7_witness.testing import WitnessProcess, free_port, init

from app.core import config
from app.pki.keyring import Keyring
from tests.support.processes import ASSOCIATIONS, Client, RetryingClient, Server, StatementPublisher, association_token

NAMES = ("assoc-a", "assoc-b", "assoc-c")
CATCH_UP_SECONDS = 60


def _audit(*argv: str):
    """``tech7-audit`` in this process (its output, stdout and stderr, and exit status)."""
    return CliRunner().invoke(audit, list(argv))


def _fetch_and_verify(base: str, href: str, folder: Path):
    """``tech7-audit fetch`` the version, then run the verify command it prints."""
    fetched = _audit("fetch", base + href, "--out", str(folder))
    assert fetched.exit_code == 0, fetched.output
    assert (folder / "witness-policy.txt").is_file()
    command = shlex.split(fetched.stdout.strip().splitlines()[-1])
    assert command[:2] == ["tech7-audit", "verify"] and "--policy" in command
    assert command[command.index("--policy") + 1] == str(folder / "witness-policy.txt")
    return _audit(*command[1:])


class _ForkingProxy(BaseHTTPRequestHandler):
    """Serves the registry's log as it is, but for a forged checkpoint: a split view."""

    base: str
    forged: bytes

    def do_GET(self):
        if self.path == "/v1/log/checkpoint":
            body, content_type = self.forged, "text/plain"
        else:
            with urllib.request.urlopen(self.base + self.path, timeout=30) as response:
                body, content_type = response.read(), response.headers["Content-Type"]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_quorum_holds_with_one_witness_down_and_is_never_claimed_without_it(
        engine, fresh_databases, keys_dir, tmp_path):
    log_key = Keyring(str(keys_dir)).store
    log_vkey = verifier_key(config.LOG_ORIGIN, log_key.log_public_key)
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
    proxy = None
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

        def states() -> dict[str, dict]:
            return {s["witness"]: s for s in client.get("/v1/log/witnesses").json()["items"]}

        def monitor() -> object:
            return _audit("monitor", server.base, "--state", str(tmp_path / "monitor"),
                          "--policy", str(tmp_path / "policy.txt"))

        first = publisher.publish("witnessed", "Cosigned by all three.")
        assert cosigners_of_newest(set(NAMES)) == set(NAMES)
        assert receipt_quorate(first.href) == "?1"
        verified = _fetch_and_verify(server.base, first.href, tmp_path / "first")
        assert verified.exit_code == 0, verified.output
        assert "✓ witnesses" in verified.output and "WARNING" not in verified.output
        watched = monitor()
        assert watched.exit_code == 0, watched.output
        assert "cosigned by assoc-a, assoc-b, assoc-c" in watched.output

        witnesses["assoc-c"].stop(signal.SIGKILL)
        second = publisher.publish("witnessed", "Cosigned by two of three.")
        assert cosigners_of_newest({"assoc-a", "assoc-b"}) == {"assoc-a", "assoc-b"}
        assert receipt_quorate(second.href) == "?1"

        witnesses["assoc-b"].stop(signal.SIGKILL)
        third = publisher.publish("witnessed", "Cosigned by one: not quorate.")  # still commits
        assert cosigners_of_newest({"assoc-a"}) == {"assoc-a"}
        assert receipt_quorate(third.href) == "?0"
        assert receipt_quorate(second.href) == "?1"  # its quorate checkpoint is still there
        assert states()["assoc-b"]["last_error"] and states()["assoc-c"]["last_error"]
        refused = _fetch_and_verify(server.base, third.href, tmp_path / "third")
        assert refused.exit_code == 1, refused.output
        assert "NOT VERIFIED: witnesses failed: NOT QUORATE: the checkpoint is cosigned by assoc-a, and the policy's " \
               "quorum is 2 of (assoc-a, assoc-b, assoc-c); missing cosignatures of assoc-b, " \
               "assoc-c" in refused.output
        watched = monitor()
        assert watched.exit_code == 1 and "✗ witnesses" in watched.output
        assert "missing cosignatures of assoc-b, assoc-c" in watched.output
        # The whole chain of the document rests on the same checkpoint: not quorate either.
        chain = _audit("history", server.base + third.href, "--policy", str(tmp_path / "policy.txt"))
        assert chain.exit_code == 1, chain.output
        assert "NOT VERIFIED:" in chain.output and "missing cosignatures of assoc-b, assoc-c" in chain.output

        witnesses["assoc-b"].start()
        witnesses["assoc-c"].start()
        assert cosigners_of_newest(set(NAMES)) == set(NAMES)
        assert receipt_quorate(third.href) == "?1"
        verified = _fetch_and_verify(server.base, third.href, tmp_path / "third-again")
        assert verified.exit_code == 0, verified.output
        chain = _audit("history", server.base + third.href, "--policy", str(tmp_path / "policy.txt"))
        assert chain.exit_code == 0, chain.output
        assert "✓ witnesses: cosigned by assoc-a, assoc-b, assoc-c" in chain.output
        assert "VERIFIED: all 3 versions" in chain.output
        watched = monitor()
        assert watched.exit_code == 0, watched.output

        # SIGKILL in the middle of an add-checkpoint: the witness's state file is held locked, so
        # the registry's request for the next checkpoint waits inside the witness's transaction.
        a = witnesses["assoc-a"]
        cosigned_before = states()["assoc-a"]["tree_size"]
        lock = sqlite3.connect(tmp_path / "assoc-a" / "state.sqlite3", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            fourth = publisher.publish("witnessed", "Sent to a witness that dies answering.")
            assert cosigners_of_newest({"assoc-b", "assoc-c"}) == {"assoc-b", "assoc-c"}
            deadline = time.monotonic() + CATCH_UP_SECONDS
            while "timed out" not in (states()["assoc-a"]["last_error"] or ""):
                assert time.monotonic() < deadline, states()
                time.sleep(0.2)
            a.stop(signal.SIGKILL)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        a.start()
        # Restarted, it knows the size it cosigned, and refuses another root for it: a fork
        # signed with the registry's real log key, as an attacker who stole it would send.
        for _ in range(5):  # the registry's rounds may move it forward meanwhile: bounded
            status, content_type, body = a.add(format_add_checkpoint(0, [], client.get("/v1/log/checkpoint")
                                                                     .body.decode()))
            assert status == 409 and content_type == "text/x.tlog.size"
            size = parse_tlog_size(body)
            assert size >= cosigned_before
            forged = sign_note(format_checkpoint(config.LOG_ORIGIN, size, b"\x66" * 32), config.LOG_ORIGIN,
                               log_key.log_private_key)
            status, _, _ = a.add(format_add_checkpoint(size, [], forged))
            if status != 409:
                break
        assert status == 422  # C2SP tlog-witness (July 2026): same size, another root
        assert cosigners_of_newest(set(NAMES)) == set(NAMES)  # and it is caught up
        assert receipt_quorate(fourth.href) == "?1"

        # The monitor is shown that same kind of fork: LOG REWRITTEN, and its state is kept.
        watched = monitor()
        assert watched.exit_code == 0, watched.output
        stored = (tmp_path / "monitor" / "checkpoint.txt").read_bytes()
        size = int(stored.split(b"\n")[1])
        _ForkingProxy.base = server.base
        _ForkingProxy.forged = sign_note(format_checkpoint(config.LOG_ORIGIN, size, b"\x66" * 32),
                                         config.LOG_ORIGIN, log_key.log_private_key).encode()
        proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ForkingProxy)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        forked = _audit("monitor", f"http://127.0.0.1:{proxy.server_port}", "--state",
                        str(tmp_path / "monitor"), "--policy", str(tmp_path / "policy.txt"))
        assert forked.exit_code == 1, forked.output
        assert "LOG REWRITTEN: a fork" in forked.output and f"tree size {size}" in forked.output
        assert (tmp_path / "monitor" / "checkpoint.txt").read_bytes() == stored
    finally:
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        server.stop()
        for process in witnesses.values():
            process.stop()
