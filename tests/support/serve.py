"""A real ``tech7-registry serve`` for the tests that need one process, on SQLite in a fresh data
folder (the resilience tests' :class:`tests.support.processes.Server` runs either engine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

REGISTRY = str(Path(sys.executable).with_name("tech7-registry"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 90.0) -> bytes:
    """The body of ``url`` once the server answers it; fails if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def registry_env(tmp_path: Path, *, unset: Iterable[str] = (), **settings: str) -> dict[str, str]:
    """The environment of a registry in ``tmp_path``: SQLite (never the suite's database),
    ``TECH7_<name>`` from ``settings``, and without the ``unset`` variables."""
    env = {**os.environ, "TECH7_DATA_DIR": str(tmp_path / "data"),
           "TECH7_KEYS_DIR": str(tmp_path / "keys")}
    for name in ("TECH7_DATABASE_URL", *unset):
        env.pop(name, None)
    env.update({f"TECH7_{name}": value for name, value in settings.items()})
    return env


@contextlib.contextmanager
def serving(tmp_path: Path, *, unset: Iterable[str] = (),
            **settings: str) -> Iterator[tuple[str, subprocess.Popen, dict[str, str]]]:
    """A real `tech7-registry serve --workers 2` in ``tmp_path`` (see :func:`registry_env`):
    (base URL, process, environment), stopped afterwards. It may still be starting."""
    port = free_port()
    env = registry_env(tmp_path, unset=unset, **settings)
    command = [REGISTRY, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield f"http://127.0.0.1:{port}", process, env
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
