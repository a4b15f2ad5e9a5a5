"""Configuration: defaults here, then ``TECH7_*`` environment variables, then test overrides.

Every setting can be given as ``TECH7_<NAME>`` (values are parsed as JSON where they can be, so
``TECH7_MAX_BODY_BYTES=2097152`` is an integer).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import platformdirs

#: The ``app`` package, and the checkout that holds it.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_ROOT.parent

#: Folder for the embedded SQLite database, made owner-only (0700) by the commands that make a
#: registry: the user's data folder (``~/.local/share/tech7-registry`` on Linux), so that every
#: command finds the same registry from whatever folder it is run in.
DATA_DIR = platformdirs.user_data_dir("tech7-registry", appauthor=False)
#: SQLAlchemy URL; empty means SQLite in DATA_DIR. PostgreSQL: postgresql://user@host/db.
DATABASE_URL = ""
#: Folder holding the registry's keys and certificates (see keys/README.md); empty means
#: ``keys`` in DATA_DIR.
KEYS_DIR = ""
#: The registry's public base URL (``https://registry.example``), which a PDF export names in its
#: "How to verify" section; empty means the URL each export's request reached the registry at.
PUBLIC_URL = ""
#: Largest request body accepted, in bytes (413 beyond it).
MAX_BODY_BYTES = 1024 * 1024
#: Longest request target (path and query) and longest header field line ("Name: value"),
#: in bytes: 414 and 431 problems beyond them. Keep both below gunicorn's limit_request_line and
#: limit_request_field_size (gunicorn.conf.py), which gunicorn answers itself in plain text.
MAX_URL_BYTES = 4000
MAX_HEADER_BYTES = 8000
#: Default page size of collections (at most 100: app/http/pagination.py).
PAGE_SIZE_DEFAULT = 20
#: External RFC 3161 timestamp authority; empty means the built-in one (a loopback listener).
TSA_URL = ""
#: Seconds to wait for the external TSA (connecting, then each read) before a publish gets 503.
TSA_TIMEOUT = 5.0
#: The transparency log's origin line (C2SP tlog-checkpoint) and signed-note key name.
LOG_ORIGIN = "tech7-registry/log"
#: A C2SP tlog-policy file naming the witnesses that cosign the log's checkpoints, with their
#: submission URLs (``witness <name> <vkey> http://host:port``); empty means no witnesses.
WITNESS_POLICY = ""
#: Seconds to wait for a witness (connecting, then each read) before its round gives up.
WITNESS_TIMEOUT = 5.0
#: Seconds between the background rounds that bring every witness to the latest checkpoint;
#: 0 runs none (rounds then run only when called, as tests do).
WITNESS_INTERVAL = 5.0
#: Load the keys and sign a probe when the app is built; the server refuses to start otherwise.
STARTUP_CHECKS = True
#: The JSON data file seeded as version 1 of every catalogue document at first start.
SEED_FILE = str(PACKAGE_ROOT / "catalog" / "content" / "tech7-declaration.json")
#: Rate limits (see app/http/ratelimit.py): per client IP address for anonymous requests, per
#: bearer token for authenticated ones, counted across the whole API.
RATELIMIT_ENABLED = True
RATELIMIT_ANONYMOUS = "300 per minute"
RATELIMIT_AUTHENTICATED = "1200 per minute"
#: Making exports, per client, on top of the API's limit: each costs about 1.5 s of signing.
RATELIMIT_EXPORTS = "30 per hour"
#: Where the counters live (see app/http/ratelimit_storage.py): empty means the file
#: ``ratelimits.db`` in DATA_DIR (``tech7-sqlite://``), shared by every worker of one host;
#: redis://host:6379 shares them between hosts; memory:// counts per process.
RATELIMIT_STORAGE_URI = ""
#: Seconds a client has to send a whole request body, from when the application starts on the
#: request: a slower body gets 408 and frees its thread (see app/http/body_deadline.py).
BODY_TIMEOUT = 10.0
#: How many reverse proxies in front of the service to trust: each appends the client's address
#: to X-Forwarded-For and its own host and scheme to X-Forwarded-Host and -Proto, and the service
#: takes the values that many hops back. 0 honours no X-Forwarded-* field: with no proxy in
#: front, a client could name any address and host it liked.
TRUSTED_PROXIES = 0


def database_url(data_dir: str | os.PathLike, configured: str = "") -> str:
    """The database URL to use: the configured one, or SQLite in ``data_dir``.

    Nothing is created here: only the commands that make a registry (``serve``, ``seed``,
    ``migrate``, ``restore``) make its folder (:func:`app.core.db.create_database`).
    """
    if configured:
        return configured
    return f"sqlite:///{Path(data_dir).resolve() / 'registry.db'}"


def ratelimit_storage_uri(data_dir: str | os.PathLike, configured: str = "") -> str:
    """The rate limit storage to use: the configured one, or ``ratelimits.db`` in ``data_dir``,
    a file apart from the registry's database (counters change on every request)."""
    return configured or f"tech7-sqlite://{Path(data_dir).resolve() / 'ratelimits.db'}"


def keys_dir(data_dir: str | os.PathLike, configured: str = "") -> str:
    """The key folder to use: the configured one, or ``keys`` in ``data_dir``."""
    return configured or str(Path(data_dir).resolve() / "keys")


def public_url(configured: str) -> str:
    """``PUBLIC_URL`` checked and ending in one ``/``, as werkzeug's ``request.host_url`` does;
    empty stays empty. Anything but an http(s) URL with a host and no query or fragment is a
    :class:`ValueError`, so that a registry never names a wrong address in what it signs."""
    if not configured:
        return ""
    parts = urllib.parse.urlsplit(configured)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment:
        raise ValueError(f"TECH7_PUBLIC_URL={configured!r} is not an http(s) base URL such as "
                         f"https://registry.example")
    return configured.rstrip("/") + "/"


def environment_database_url() -> str:
    """The database URL that ``TECH7_*`` variables select, for tools outside the app (Alembic)."""
    return database_url(os.environ.get("TECH7_DATA_DIR", DATA_DIR),
                        os.environ.get("TECH7_DATABASE_URL", ""))
