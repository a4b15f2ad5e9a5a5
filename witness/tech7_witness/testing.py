"""Running real ``tech7-witness`` processes, for tests here and in the projects that use witnesses.

:class:`WitnessProcess` starts ``python -m tech7_witness serve`` on a free 127.0.0.1 port and
waits, bounded in time, until it listens; it stops it with SIGTERM, or SIGKILL for fault tests.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("tech7-witness"))
MODULE = [sys.executable, "-m", "tech7_witness"]


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
        """Start serving, on the port of the previous start if there was one (a policy names it)."""
        self.port = self.port or free_port()
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
