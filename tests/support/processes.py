"""Helpers of the resilience tests and of ``bench/load.py``: a real ``tech7-registry serve`` in a
subprocess, fresh databases on SQLite and PostgreSQL, an HTTP client that survives killed workers
and database outages, association publishers, and every invariant a scenario must leave intact.

The fixtures built on them are in ``tests/resilience/conftest.py``. ``bench/load.py`` runs these
helpers outside pytest, where assertions are not rewritten, so every assertion here says what
failed itself. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from click.testing import CliRunner
from sqlalchemy.engine import make_url
from tech7_audit.cli import audit
from tech7_audit.manifests import read_manifest
from tech7_tlog.merkle import merkle_tree_hash
from tech7_tlog.note import open_note, parse_checkpoint, parse_verifier_key

from app.auth.service import ASSOCIATION, create_token
from app.cli import prepare
from app.core.db import Database

ENGINES = ("sqlite", "postgresql")
#: The local PostgreSQL server the tests use unless TEST_DATABASE_URL names another.
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Four member associations (seeded), the publishers of every scenario.
ASSOCIATIONS = ("bitkom", "numeum", "techuk", "jeita")
#: A recommendation every statement addresses (seeded as version 1).
ADDRESSED = [{"slug": "sme-participation", "version": 1}]
#: Answers a retry may cure: the database is unavailable (503, with Retry-After).
RETRYABLE_STATUSES = frozenset({503})
#: Failures of the connection itself: a worker killed mid-request closes it without an answer.
BROKEN_CONNECTION = (ConnectionError, http.client.HTTPException, TimeoutError)
_SERVE = str(Path(sys.executable).with_name("tech7-registry"))


# -- databases ---------------------------------------------------------------------------------

def postgres_server_url() -> str:
    """The PostgreSQL server to create databases on: TEST_DATABASE_URL's when it names one."""
    configured = os.environ.get("TEST_DATABASE_URL", "")
    return configured if configured.startswith("postgresql") else DEFAULT_POSTGRES


def postgres_unreachable(server_url: str) -> str | None:
    """Why the server at ``server_url`` cannot be used, or None when it answers."""
    try:
        with psycopg.connect(_libpq(server_url), connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"PostgreSQL at {make_url(server_url).render_as_string()} is not reachable: " \
               f"{str(error).strip()}"


def create_postgres_database(server_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE ``name`` (a copy of ``template`` if given) and return its URL."""
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_libpq(server_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{clause}')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """DROP the database of ``url``, ending any session still connected to it."""
    name = make_url(url).database
    with psycopg.connect(_libpq(make_url(url).set(database="postgres")
                                .render_as_string(hide_password=False)),
                         autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url: str) -> str:
    """A SQLAlchemy-style URL as the libpq connection URI psycopg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class FreshDatabases:
    """Fresh, migrated and seeded databases on either engine, each a copy of a template.

    The suite's own template (conftest's ``databases``) serves its engine; the other engine gets a
    template of its own, seeded once with the session's keys, made on first use. Copies are a file
    copy on SQLite and ``CREATE DATABASE … TEMPLATE`` on PostgreSQL (dropped by :meth:`drop_all`).
    """

    def __init__(self, workdir: Path, suite_databases, make_app: Callable):
        self.workdir = workdir
        self._suite = suite_databases
        self._make_app = make_app
        self._run = uuid.uuid4().hex[:8]
        self._numbers = itertools.count()
        self._templates: dict[str, str] = {}
        self._created: list[str] = []

    def new(self, engine: str) -> str:
        """The URL of a new database holding exactly the seeded declaration."""
        if (engine == "postgresql") == self._suite.is_postgres:
            return self._suite.clone_template()
        template = self._template(engine)
        name = f"r{next(self._numbers)}"
        if engine == "sqlite":
            path = self.workdir / f"{name}.db"
            shutil.copyfile(make_url(template).database, path)
            return f"sqlite:///{path}"
        url = create_postgres_database(postgres_server_url(), f"tech7_{self._run}_{name}",
                                       template=make_url(template).database)
        self._created.append(url)
        return url

    def _template(self, engine: str) -> str:
        if engine not in self._templates:
            if engine == "sqlite":
                url = f"sqlite:///{self.workdir / 'template.db'}"
            else:
                url = create_postgres_database(postgres_server_url(),
                                               f"tech7_{self._run}_template")
                self._created.append(url)
            app = self._make_app(url, self.workdir)
            with app.app_context():
                prepare(app)
            app.extensions["tech7.db"].engine.dispose()
            self._templates[engine] = url
        return self._templates[engine]

    def drop_all(self) -> None:
        """Drop every PostgreSQL database this object created."""
        for url in reversed(self._created):
            drop_postgres_database(url)


def association_token(database_url: str, association: str) -> str:
    """A new bearer token publishing for ``association``, written straight to the database."""
    db = Database(database_url)
    try:
        return create_token(db, role=ASSOCIATION, association=association, label="resilience")
    finally:
        db.engine.dispose()


# -- the server --------------------------------------------------------------------------------

class Server:
    """``tech7-registry serve`` (gunicorn's gthread workers) in its own process group on a free port.

    Rate limiting is off: these scenarios measure correctness under concurrency and faults, not
    the limiter (``test_workers.py`` turns it on).
    """

    def __init__(self, database_url: str, keys_dir: Path, workdir: Path, *, workers: int = 2):
        self.database_url = database_url
        self.workers = workers
        self.workdir = workdir
        self.port: int | None = None
        self.env = {**os.environ, "TECH7_DATABASE_URL": database_url,
                    "TECH7_DATA_DIR": str(workdir / "data"), "TECH7_KEYS_DIR": str(keys_dir),
                    "TECH7_RATELIMIT_ENABLED": "false"}
        self.process: subprocess.Popen | None = None
        self._starts = 0

    @property
    def base(self) -> str:
        """The server's origin, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The log (stdout and stderr) of the current start."""
        return self.workdir / f"serve-{self._starts}.log"

    def start(self, timeout: float = 120.0) -> None:
        """Start serving on a port the kernel picks, and return once ``/readyz`` answers 200.

        gunicorn binds port 0 and logs the port it got: a port chosen beforehand could be taken
        (by any outgoing connection) before gunicorn binds it, seconds later.
        """
        self._starts += 1
        self.port = None
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [_SERVE, "serve", "--host", "127.0.0.1", "--port", "0",
                 "--workers", str(self.workers)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n"
                                     + self.log_tail())
            self.port = self.port or _listening_port(self.log_path)
            if self.port is not None:
                try:
                    if Client(self.base, timeout=5).get("/readyz").status == 200:
                        return
                except BROKEN_CONNECTION:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"serve was not ready within {timeout} s:\n" + self.log_tail())

    def stop(self) -> None:
        """SIGTERM the process group (gunicorn stops gracefully); SIGKILL it if that hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start again on the same database (on a new port)."""
        self.stop()
        self.start()

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of the master (the ``serve`` process itself)."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            return []
        return sorted(int(child) for child in children)

    def worker_serving(self, client_port: int) -> int | None:
        """The worker holding the accepted connection from 127.0.0.1:``client_port``, if any."""
        inode = _tcp_inode(self.port, client_port)
        if inode is None:
            return None
        for pid in self.worker_pids():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except FileNotFoundError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except FileNotFoundError:
                    continue
        return None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the current server log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _tcp_inode(local_port: int, remote_port: int) -> int | None:
    """The socket inode of the established 127.0.0.1 TCP connection local_port ← remote_port
    (``/proc/net/tcp``: addresses are hex ``IP:PORT``; the inode is the tenth column)."""
    wanted = (f"{local_port:04X}", f"{remote_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        columns = line.split()
        if (columns[1].rsplit(":", 1)[1], columns[2].rsplit(":", 1)[1]) == wanted \
                and int(columns[9]):
            return int(columns[9])
    return None


def _listening_port(log_path: Path) -> int | None:
    """The port in gunicorn's "Listening at: http://127.0.0.1:PORT" log line, once written."""
    found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)",
                      log_path.read_text(errors="replace"))
    return int(found.group(1)) if found else None


# -- HTTP --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """One HTTP answer."""

    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        """The body, parsed as JSON."""
        return json.loads(self.body)

    @property
    def is_problem(self) -> bool:
        """Whether the body is an RFC 9457 problem."""
        return self.headers.get("content-type", "").startswith("application/problem+json")


class Client:
    """A new connection per request, so that requests spread over the workers.

    ``after_send``, when set, is called with the method, path, headers and the client's local port
    once the request is on the wire and before its answer is read: the kill test uses it to kill
    the worker serving the request, or to abandon the request by raising.
    """

    def __init__(self, base: str, *, timeout: float = 30.0,
                 after_send: Callable[[str, str, Mapping[str, str], int], None] | None = None):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.after_send = after_send

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                body: bytes | None = None, json_body: Any = None) -> Reply:
        """Send one request; connection failures propagate (see :data:`BROKEN_CONNECTION`)."""
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            if self.after_send is not None:
                self.after_send(method, path, headers, connection.sock.getsockname()[1])
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read())
        finally:
            connection.close()

    def get(self, path: str, **kwargs) -> Reply:
        """``GET path`` (see :meth:`request`)."""
        return self.request("GET", path, **kwargs)


@dataclass
class Outcomes:
    """What a client saw: every status, connection failures, retries and their latencies."""

    statuses: Counter = field(default_factory=Counter)
    broken: int = 0
    retries: int = 0
    replayed: int = 0
    longest: float = 0.0

    def record(self, reply: Reply | None, seconds: float) -> None:
        """Count one attempt: its answer (None: the connection broke) and how long it took."""
        self.longest = max(self.longest, seconds)
        if reply is None:
            self.broken += 1
        else:
            self.statuses[reply.status] += 1


class RetryingClient:
    """Repeats a request that a broken connection or a 503 interrupted, until a deadline.

    Only requests that are safe to repeat go through :meth:`request`: reads, and publishes with
    the same ``Idempotency-Key``; a draft write's retry is judged by its caller
    (:class:`StatementPublisher`).
    """

    def __init__(self, client: Client, *, patience: float = 60.0, pause: float = 0.1,
                 outcomes: Outcomes | None = None):
        self.client = client
        self.patience = patience
        self.pause = pause
        self.outcomes = outcomes if outcomes is not None else Outcomes()

    def request(self, method: str, path: str, **kwargs) -> tuple[Reply, int]:
        """The first answer that is not a 503, and how many attempts it took."""
        deadline = time.monotonic() + self.patience
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                reply = self.client.request(method, path, **kwargs)
            except BROKEN_CONNECTION:
                reply = None
            self.outcomes.record(reply, time.monotonic() - started)
            if reply is not None and reply.status not in RETRYABLE_STATUSES:
                return reply, attempt
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} failed for {self.patience} s; last: "
                                     f"{reply.status if reply else 'broken connection'}")
            self.outcomes.retries += 1
            time.sleep(self.pause)


# -- publishing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """A version a publish answered 201 for."""

    href: str
    sha256: str
    replayed: bool


def statement_path(association: str, slug: str) -> str:
    """The URL path of an association's statement."""
    return f"/v1/associations/{association}/statements/{slug}"


class StatementPublisher:
    """Publishes versions of an association's statements over HTTP, surviving broken requests.

    A statement's first version is created with ``POST …/statements`` and later ones with
    ``PUT …/draft`` (``If-None-Match: *``); each is then published with ``POST …/draft/publish``,
    ``If-Match`` and a fresh ``Idempotency-Key`` that every retry of that publish repeats. A draft
    write whose answer was lost is judged by the retry's answer: 409 (the statement exists) or 412
    (the draft exists) means the lost one committed, and the draft's ETag is read back.
    """

    def __init__(self, client: RetryingClient, token: str, association: str):
        self.client = client
        self.association = association
        self.auth = {"Authorization": f"Bearer {token}"}
        self._created: set[str] = set()

    def publish(self, slug: str, text: str) -> Published:
        """Write ``text`` to the draft of statement ``slug`` and publish it as the next version."""
        return self.publish_draft(*self.write_draft(slug, text))

    def write_draft(self, slug: str, text: str) -> tuple[str, str]:
        """Create statement ``slug`` or a new draft of it holding ``text``; returns the statement's
        URL and the draft's ETag."""
        url = statement_path(self.association, slug)
        content = {"statement_type": "position", "title": f"{self.association}: {slug}",
                   "text": [text], "addresses": ADDRESSED}
        if slug in self._created:
            etag = self._write_draft("PUT", url + "/draft", content,
                                     {"If-None-Match": "*"}, committed=412)
        else:
            etag = self._write_draft("POST", f"/v1/associations/{self.association}/statements",
                                     {"slug": slug, **content}, {}, committed=409)
            self._created.add(slug)
        return url, etag

    def publish_draft(self, url: str, etag: str) -> Published:
        """Publish the draft of the statement at ``url`` under ``If-Match: etag``."""
        reply, _ = self.client.request("POST", url + "/draft/publish", headers={
            **self.auth, "If-Match": etag, "Idempotency-Key": uuid.uuid4().hex})
        _expect(reply, 201, f"publish {url}")
        replayed = reply.headers.get("idempotent-replayed") == "true"
        self.client.outcomes.replayed += replayed
        return Published(reply.headers["location"], reply.headers["etag"].strip('"'), replayed)

    def _write_draft(self, method: str, path: str, content: dict, conditions: dict,
                     committed: int) -> str:
        reply, attempts = self.client.request(method, path, json_body=content,
                                              headers={**self.auth, **conditions})
        if reply.status == 201:
            return reply.headers["etag"]
        if not (reply.status == committed and attempts > 1):
            _expect(reply, 201, f"{method} {path}")
        url = path if path.endswith("/draft") else f"{path}/{content['slug']}/draft"
        draft, _ = self.client.request("GET", url, headers=self.auth)
        _expect(draft, 200, f"GET {url}")
        return draft.headers["etag"]


def _expect(reply: Reply, status: int, what: str) -> None:
    if reply.status != status:
        raise AssertionError(f"{what} answered {reply.status}, not {status}: "
                             f"{reply.body[:500]!r}")


# -- invariants --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegistryState:
    """What the invariants were checked on: the log's size and every version's SHA-256."""

    log_size: int
    versions: Mapping[str, str]  # href → sha256


def change_feed(client: Client) -> list[dict[str, Any]]:
    """Every entry of ``/v1/changes``, following ``next_cursor`` to the end."""
    items: list[dict[str, Any]] = []
    since = "0"
    while True:
        page = client.get(f"/v1/changes?since={since}&limit=500")
        _expect(page, 200, "GET /v1/changes")
        items += page.json()["items"]
        if len(page.json()["items"]) < 500:  # a short page is the feed's end for now
            return items
        since = page.json()["next_cursor"]


def check_invariants(client: Client, published: Iterable[Published], *,
                     monitor_state: Path) -> RegistryState:
    """Assert every invariant of a registry at rest; return what was checked.

    * the change feed lists each version exactly once, in gap-free ``seq`` order, and each
      document's versions are numbered 1..N with no gaps (as ``…/versions`` lists them too);
    * every version is served with its ETag and has its manifest, which reads Trusted with a
      trusted timestamp against ``/v1/trust/anchors.pem``;
    * every version has exactly one log entry (``/v1/log/entries?sha256=``), a publication or
      withdrawal of that version recording its manifest's SHA-256; and the log holds no other
      publication;
    * the log's entries are indices 0..size-1 with no gaps, their RFC 9162 root is the one the
      checkpoint signs under the key of ``/v1/trust``, and ``tech7-audit monitor`` (state in
      ``monitor_state``: a later call proves the log only grew) re-hashes it through the tiles;
    * every publish that answered 201 is there with its bytes, and nothing is duplicated.
    """
    anchors = client.get("/v1/trust/anchors.pem").body
    verifier = parse_verifier_key(client.get("/v1/trust").json()["log"]["verifier_key"])
    checkpoint = parse_checkpoint(open_note(client.get("/v1/log/checkpoint").body.decode(),
                                            [verifier]))

    leaves, logged = [], {}
    for index in range(checkpoint.tree_size):
        entry = client.get(f"/v1/log/entries/{index}")
        _expect(entry, 200, f"GET /v1/log/entries/{index}")
        assert entry.json()["index"] == index, f"entry {index} says it is {entry.json()['index']}"
        leaves.append(base64.b64decode(entry.json()["leaf"]))
        record = entry.json()["record"]
        if record["type"] in ("publication", "withdrawal"):
            assert record["subject"] not in logged, f"{record['subject']} is logged twice"
            logged[record["subject"]] = index
    assert client.get(f"/v1/log/entries/{checkpoint.tree_size}").status == 404, \
        f"the log has entries beyond its checkpoint's size {checkpoint.tree_size}"
    assert merkle_tree_hash(leaves) == checkpoint.root_hash, \
        "the signed checkpoint's root is not the root of the served entries"
    monitored = CliRunner().invoke(audit, ["monitor", f"http://{client.host}:{client.port}",
                                           "--state", str(monitor_state)])
    assert monitored.exit_code == 0, monitored.output

    feed = change_feed(client)
    assert [item["seq"] for item in feed] == list(range(1, len(feed) + 1)), "feed seq has gaps"
    hrefs = [item["href"] for item in feed]
    assert len(set(hrefs)) == len(hrefs), "the change feed lists a version twice"
    numbers: dict[str, list[int]] = defaultdict(list)
    for href in hrefs:
        concept, _, number = href.rpartition("/versions/")
        numbers[concept].append(int(number))
    for concept, listed in numbers.items():
        assert sorted(listed) == list(range(1, len(listed) + 1)), f"{concept}: {listed}"
        versions = client.get(concept + "/versions").json()
        assert [item["href"] for item in versions["items"]] == \
            [f"{concept}/versions/{n}" for n in range(1, len(listed) + 1)], (concept, versions)

    served: dict[str, str] = {}
    for href in hrefs:
        version = client.get(href)
        _expect(version, 200, f"GET {href}")
        sha256 = _sha256(version.body)
        assert version.headers["etag"] == f'"{sha256}"', (href, version.headers["etag"])
        manifest = client.get(href + "/manifest")
        _expect(manifest, 200, f"GET {href}/manifest")
        report = read_manifest(version.body, "application/json", manifest.body,
                               trust_anchors_pem=anchors)
        assert report.state == "Trusted" and report.timestamp_trusted, \
            (href, report.state, report.codes, report.error)
        entries = client.get(f"/v1/log/entries?sha256={sha256}").json()["items"]
        assert len(entries) == 1, (href, entries)
        record = entries[0]["record"]
        assert record["type"] in ("publication", "withdrawal") and record["subject"] == href, \
            (href, record)
        assert record["manifest_sha256"] == _sha256(manifest.body), (href, record)
        assert entries[0]["index"] == logged[href], (href, entries[0]["index"], logged[href])
        served[href] = sha256
    assert set(logged) == set(served), "log publications and versions differ: " \
        f"{sorted(set(logged) ^ set(served))}"

    for publish in published:
        assert served.get(publish.href) == publish.sha256, \
            f"lost: {publish} (served: {served.get(publish.href)})"
    return RegistryState(checkpoint.tree_size, served)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- fixtures ----------------------------------------------------------------------------------
