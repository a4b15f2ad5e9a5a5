"""A log made in the test, and a real ``tech7-witness serve`` process on a free 127.0.0.1 port."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_tlog.merkle import consistency_proof, merkle_tree_hash
from tech7_tlog.note import format_checkpoint, sign_note, verifier_key
from tech7_tlog.witness import format_add_checkpoint

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("tech7-witness"))
MODULE = [sys.executable, "-m", "tech7_witness"]


class Log:
    """A log of numbered entries, its Ed25519 key, signed checkpoints and consistency proofs.

    ``fork`` names another history under the same origin and key: the split view an attacker
    holding the log's key would show.
    """

    def __init__(self, origin: str = "log.example/test", key: Ed25519PrivateKey | None = None, fork: str = "") -> None:
        self.origin = origin
        self.key = key or Ed25519PrivateKey.generate()
        self.fork = fork

    @property
    def vkey(self) -> str:
        return verifier_key(self.origin, self.key.public_key())

    def forked(self, fork: str) -> Log:
        return Log(self.origin, self.key, fork)

    def leaves(self, size: int) -> tuple[bytes, ...]:
        return tuple(f"{self.fork}entry {i}".encode() for i in range(size))

    def root(self, size: int) -> bytes:
        return _tree_hash(self.leaves(size))

    def checkpoint(self, size: int) -> str:
        return sign_note(format_checkpoint(self.origin, size, self.root(size)), self.origin, self.key)

    def proof(self, old: int, size: int) -> list[bytes]:
        leaves = self.leaves(size)
        return consistency_proof(old, size, lambda level, index: _tree_hash(leaves[index << level : (index + 1) << level]))

    def request(self, old: int, size: int) -> bytes:
        """The add-checkpoint body from ``old`` (this history's proof) to ``size``."""
        return format_add_checkpoint(old, self.proof(old, size), self.checkpoint(size))


@lru_cache(maxsize=100_000)
def _tree_hash(leaves: tuple[bytes, ...]) -> bytes:
    return merkle_tree_hash(leaves)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init(folder: Path, name: str) -> str:
    """``tech7-witness init`` through the console script; the verifier key it prints."""
    done = subprocess.run(
        [CONSOLE_SCRIPT, "init", "--dir", str(folder), "--name", name],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return done.stdout.strip()


class WitnessProcess:
    """``python -m tech7_witness serve`` on its own port, its stderr kept in a file."""

    def __init__(self, folder: Path, logs: list[str]) -> None:
        self.folder = folder
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.stderr_path = folder.parent / f"{folder.name}.stderr"

    def start(self) -> WitnessProcess:
        self.port = free_port()
        command = [*MODULE, "serve", "--dir", str(self.folder), "--host", "127.0.0.1", "--port", str(self.port)]
        for vkey in self.logs:
            command += ["--log", vkey]
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 20
        for _ in range(400):
            if self.process.poll() is not None:
                raise AssertionError(f"tech7-witness serve exited: {self.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        raise AssertionError(f"tech7-witness serve did not listen on {self.port}: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()

    def add(self, body: bytes) -> tuple[int, str, bytes]:
        return self.request("POST", "/add-checkpoint", body)
