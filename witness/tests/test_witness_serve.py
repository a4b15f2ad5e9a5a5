"""A real ``tech7-witness`` process: init, cosigning, every tlog-witness status, restarts and SIGKILL.

Every witness listens on 127.0.0.1 on a free port; every loop is bounded in count and time.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import stat
import subprocess
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_tlog.cosignature import parse_cosigner_key, verify_cosignatures
from tech7_tlog.note import (
    format_checkpoint,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    sign_note,
)
from tech7_tlog.witness import format_add_checkpoint, parse_tlog_size
from tech7_witness.testing import CONSOLE_SCRIPT, WitnessProcess, init
from witness_helpers import Log

WITNESS_NAME = "witness.example/w1"


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness(tmp_path, log):
    vkey = init(tmp_path / "w1", WITNESS_NAME)
    process = WitnessProcess(tmp_path / "w1", [log.vkey]).start()
    process.vkey = vkey
    yield process
    process.stop()


def cosigned(witness: WitnessProcess, log: Log, old: int, size: int) -> str:
    """Submit, expect 200, and return the checkpoint with the answer appended."""
    status, content_type, body = witness.add(log.request(old, size))
    assert status == 200, body
    assert content_type.startswith("text/plain")
    return log.checkpoint(size) + body.decode()


def problem(answer: tuple[int, str, bytes], status: int) -> dict:
    assert answer[0] == status, answer
    assert answer[1] == "application/problem+json"
    document = json.loads(answer[2])
    assert document["status"] == status
    return document


def test_init_makes_an_owner_only_key_and_prints_a_type_4_vkey(tmp_path):
    folder = tmp_path / "new" / "witness"
    vkey = init(folder, WITNESS_NAME)
    verifier = parse_cosigner_key(vkey)  # type 0x04 and a key ID that matches, or it raises
    assert verifier.name == WITNESS_NAME
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "witness.key").stat().st_mode) == 0o600
    key = (folder / "witness.key").read_bytes()
    again = subprocess.run(
        [CONSOLE_SCRIPT, "init", "--dir", str(folder), "--name", WITNESS_NAME],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert again.returncode != 0 and "already holds a witness key" in again.stderr
    assert (folder / "witness.key").read_bytes() == key


def test_init_refuses_an_invalid_name(tmp_path):
    done = subprocess.run(
        [CONSOLE_SCRIPT, "init", "--dir", str(tmp_path / "w"), "--name", "has space"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode != 0 and "invalid witness name" in done.stderr
    assert not (tmp_path / "w").exists()


def test_cosignatures_verify_with_tech7_tlog(witness, log):
    verifier = parse_cosigner_key(witness.vkey)
    before = int(time.time())
    for old, size in [(0, 3), (3, 8), (8, 8), (8, 21)]:
        note = cosigned(witness, log, old, size)
        open_note(note, [parse_verifier_key(log.vkey)])  # the log's signature is still there
        timestamps = verify_cosignatures(note, [verifier])
        assert list(timestamps) == [(verifier.name, verifier.key_id)]
        assert before <= timestamps[verifier.name, verifier.key_id] <= int(time.time())


def test_monitoring_read_serves_the_latest_cosigned_checkpoint(witness, log):
    path = f"/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint"
    problem(witness.request("GET", path), 404)
    cosigned(witness, log, 0, 5)
    # An unknown key's signature on the submitted note is not served: only what was verified.
    extra = sign_note(format_checkpoint(log.origin, 9, log.root(9)), "someone.else", Ed25519PrivateKey.generate())
    note = log.checkpoint(9) + extra.split("\n\n", 1)[1]
    status, _, _ = witness.add(format_add_checkpoint(5, log.proof(5, 9), note))
    assert status == 200
    status, content_type, body = witness.request("GET", path)
    assert status == 200 and content_type.startswith("text/plain")
    served = body.decode()
    assert parse_checkpoint(open_note(served, [parse_verifier_key(log.vkey)])).tree_size == 9
    assert verify_cosignatures(served, [parse_cosigner_key(witness.vkey)])
    assert "someone.else" not in served
    problem(witness.request("GET", "/" + "0" * 64 + "/checkpoint"), 404)


def test_409_gives_the_witness_size_as_text_x_tlog_size(witness, log):
    cosigned(witness, log, 0, 4)
    for old in (0, 3, 5):
        request = log.request(old, 6) if old <= 4 else format_add_checkpoint(old, [], log.checkpoint(6))
        status, content_type, body = witness.add(request)
        assert (status, content_type) == (409, "text/x.tlog.size")
        assert body == b"4\n" and parse_tlog_size(body) == 4


def test_unknown_origin_is_404(witness):
    other = Log(origin="other.example/log")
    problem(witness.add(other.request(0, 2)), 404)


def test_a_checkpoint_not_signed_by_the_log_key_is_403(witness, log):
    impostor = Log(origin=log.origin)  # same origin, another key
    problem(witness.add(impostor.request(0, 2)), 403)
    # The log's signature moved onto another checkpoint: its key name and ID match, it fails.
    signature = log.checkpoint(2).split("\n\n")[1]
    tampered = format_checkpoint(log.origin, 3, log.root(3)) + "\n" + signature
    problem(witness.add(format_add_checkpoint(0, [], tampered)), 403)


def test_old_bigger_than_size_is_400(witness, log):
    problem(witness.add(format_add_checkpoint(5, [], log.checkpoint(3))), 400)


@pytest.mark.parametrize("body", [b"", b"old 1\n", b"hello", b"old 0\n\nnot a note\n", b"\xff\xfe"])
def test_malformed_bodies_are_400(witness, body):
    problem(witness.add(body), 400)


def test_a_bad_proof_is_422_and_changes_nothing(witness, log):
    cosigned(witness, log, 0, 4)
    proof = log.proof(4, 10)
    proof[0] = bytes(32)
    problem(witness.add(format_add_checkpoint(4, proof, log.checkpoint(10))), 422)
    problem(witness.add(format_add_checkpoint(4, [], log.checkpoint(10))), 422)  # no proof at all
    status, _, body = witness.add(log.request(0, 4))
    assert (status, body) == (409, b"4\n")  # still 4


def test_a_non_empty_proof_from_size_0_and_a_bad_empty_root_are_422(witness, log):
    problem(witness.add(format_add_checkpoint(0, [bytes(32)], log.checkpoint(4))), 422)
    empty_with_root = sign_note(format_checkpoint(log.origin, 0, bytes(32)), log.origin, log.key)
    problem(witness.add(format_add_checkpoint(0, [], empty_with_root)), 422)


def test_a_fork_signed_with_the_real_log_key_is_refused(witness, log):
    cosigned(witness, log, 0, 7)
    fork = log.forked("evil ")
    # Same size, another root: 422 in the current text (July 2026 revision), no cosignature.
    answer = witness.add(fork.request(7, 7))
    problem(answer, 422)
    # A bigger fork cannot prove consistency with what was cosigned either.
    problem(witness.add(format_add_checkpoint(7, fork.proof(7, 12), fork.checkpoint(12))), 422)
    assert "refused an inconsistent checkpoint" in witness.stderr()  # the evidence is kept
    cosigned(witness, log, 7, 12)  # the honest history goes on


def test_routes_and_methods(witness, log):
    problem(witness.request("GET", "/add-checkpoint"), 405)
    problem(witness.request("GET", "/"), 404)
    problem(witness.request("POST", "/elsewhere", b"x"), 404)
    connection = http.client.HTTPConnection("127.0.0.1", witness.port, timeout=20)
    try:
        connection.putrequest("POST", "/add-checkpoint")
        connection.putheader("Content-Length", str(2 << 20))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_keep_alive_serves_several_requests_on_one_connection(witness, log):
    connection = http.client.HTTPConnection("127.0.0.1", witness.port, timeout=20)
    try:
        for old, size in [(0, 2), (2, 3), (3, 5)]:
            connection.request("POST", "/add-checkpoint", body=log.request(old, size))
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
    finally:
        connection.close()


def test_a_restart_keeps_the_cosigned_size_and_root(witness, log):
    cosigned(witness, log, 0, 6)
    for path in witness.folder.glob("state.sqlite3*"):  # the database, and its -wal while open
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    witness.stop()
    witness.start()
    status, content_type, body = witness.add(log.request(0, 6))
    assert (status, content_type, body) == (409, "text/x.tlog.size", b"6\n")
    problem(witness.add(log.forked("evil ").request(6, 6)), 422)
    cosigned(witness, log, 6, 9)


def test_sigkill_during_add_checkpoint_then_restart_still_refuses_a_fork(witness, log):
    """Clients race to extend the log while the witness is killed; what it cosigned it remembers."""
    acknowledged: list[int] = []  # sizes a client got a cosignature for
    stop = threading.Event()
    lock = threading.Lock()
    counter = iter(range(2, 10_000))

    def client() -> None:
        known = 0
        for _ in range(200):  # bounded: each client makes at most 200 requests
            if stop.is_set():
                return
            with lock:
                size = next(counter)
            try:
                status, _, body = witness.add(log.request(known, size))
            except OSError:
                return  # the witness died under us
            if status == 200:
                with lock:
                    acknowledged.append(size)
                known = size
            elif status == 409:
                known = parse_tlog_size(body)
            else:
                raise AssertionError((status, body))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    witness.stop(signal.SIGKILL)  # no clean shutdown: requests are in flight
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert acknowledged, "no checkpoint was cosigned before the kill"
    last = max(acknowledged)

    witness.start()
    status, _, body = witness.add(log.request(0, 1))
    assert status == 409
    remembered = parse_tlog_size(body)
    assert remembered >= last  # never forgets a size it answered for
    fork = log.forked("evil ")
    answer = witness.add(fork.request(remembered, remembered))
    assert answer[0] == 422, answer  # the same size with another root
    answer = witness.add(format_add_checkpoint(last, fork.proof(last, last), fork.checkpoint(last)))
    assert answer[0] in (409, 422), answer  # a fork of any acknowledged size is never cosigned
    cosigned(witness, log, remembered, remembered + 1)
