"""``tech7-witness init`` makes a witness's key; ``tech7-witness serve`` runs it.

A witness folder holds three files, all owner-only:

- ``witness.key``: the Ed25519 private key (PKCS #8 PEM), never to leave the folder;
- ``witness.vkey``: its verifier key, ``<name>+<key ID>+base64(0x04 || public key)``, the line
  a log operator puts in a tlog-policy ``witness`` line;
- ``state.sqlite3``: the latest checkpoint cosigned per log origin.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from tech7_tlog.cosignature import Ed25519Cosigner, parse_cosigner_key
from tech7_tlog.note import NoteError, parse_verifier_key

from tech7_witness.server import make_server
from tech7_witness.state import State
from tech7_witness.witness import Witness

KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
STATE_FILE = "state.sqlite3"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status."""
    parser = argparse.ArgumentParser(prog="tech7-witness", description="A C2SP tlog-witness.")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="make the witness's Ed25519 key and print its verifier key")
    init.add_argument("--dir", type=Path, required=True, help="the witness folder, made owner-only (0700)")
    init.add_argument("--name", required=True, help="the witness's key name, e.g. witness.example.org/tech7")
    serve = commands.add_parser("serve", help="witness the given logs over HTTP")
    serve.add_argument("--dir", type=Path, required=True, help="a folder made by init")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7380)
    serve.add_argument(
        "--log", action="append", required=True, metavar="VKEY",
        help="a log's verifier key (type 0x01); its key name is the log's origin. Repeat for more logs or keys",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            return _init(args.dir, args.name)
        return _serve(args.dir, args.host, args.port, args.log)
    except _Refused as exc:
        print(f"tech7-witness: {exc}", file=sys.stderr)
        return 2


class _Refused(Exception):
    """A command that cannot go on; the message says why, for the operator."""


def _init(folder: Path, name: str) -> int:
    key = Ed25519PrivateKey.generate()
    cosigner = Ed25519Cosigner(name, key)
    try:
        vkey = cosigner.verifier_key()
    except NoteError as exc:
        raise _Refused(f"invalid witness name: {exc}") from exc
    _make_private_folder(folder)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    if not _write_private(folder / KEY_FILE, pem):
        raise _Refused(f"{folder / KEY_FILE} exists: this folder already holds a witness key")
    _write_private(folder / VKEY_FILE, (vkey + "\n").encode())
    print(vkey)
    return 0


def _serve(folder: Path, host: str, port: int, log_vkeys: Sequence[str]) -> int:
    try:
        key = load_pem_private_key((folder / KEY_FILE).read_bytes(), password=None)
        verifier = parse_cosigner_key((folder / VKEY_FILE).read_text().strip())
    except (OSError, ValueError) as exc:
        raise _Refused(f"{folder} is not a witness folder made by tech7-witness init: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise _Refused(f"{folder / KEY_FILE} is not an Ed25519 key")
    cosigner = Ed25519Cosigner(verifier.name, key)
    if cosigner.verifier_key() != (folder / VKEY_FILE).read_text().strip():
        raise _Refused(f"{folder / VKEY_FILE} is not the verifier key of {folder / KEY_FILE}")
    try:
        logs = [parse_verifier_key(vkey) for vkey in log_vkeys]
    except NoteError as exc:
        raise _Refused(f"--log: {exc}") from exc
    os.umask(0o077)
    witness = Witness([cosigner], logs, State(folder / STATE_FILE))
    server = make_server(witness, host, port)
    signal.signal(signal.SIGTERM, _stop)
    bound_host, bound_port = server.server_address[:2]
    print(
        f"tech7-witness: {cosigner.verifier_key()} witnessing {', '.join(sorted(witness.logs))} "
        f"on http://{bound_host!s}:{bound_port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _stop(signum: int, frame: object) -> None:
    """SIGTERM stops the server like Ctrl-C: what it recorded is already on disk."""
    raise KeyboardInterrupt


def _make_private_folder(folder: Path) -> None:
    """Make ``folder`` and its missing parents owner-only (0700), whatever the umask."""
    for path in reversed([folder, *folder.parents]):
        if not path.exists():
            path.mkdir(mode=0o700)
            path.chmod(0o700)


def _write_private(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new owner-only (0600) file; False if the file exists (it is never replaced)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return True
