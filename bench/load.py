"""Load benchmark: a realistic mix of reads, verifies and publishes against gunicorn on PostgreSQL.

One run creates a fresh PostgreSQL database (on ``--database-server``, by default the local
``postgresql://postgres@127.0.0.1:5432``), starts ``tech7-registry serve --workers 2`` on it with a
temporary key folder (it seeds the declaration), and drives it from 127.0.0.1 with a few client
threads for ``--seconds`` (default 60), bounded by ``--max-requests`` operations too:

* 90% reads, half of immutable version URLs and half of collections (the recommendations, with
  and without a filter, priorities, associations, statements, the change feed), each sent with
  ``If-None-Match`` half of the time (the version's ETag; the collection's last ETag seen);
* 8% verifies: ``POST /v1/verify`` with a published version and its sidecar manifest, which must
  answer Trusted;
* 2% publishes of statements by four associations, with association tokens: a draft write
  (``POST …/statements`` for version 1, else ``PUT …/draft``) and ``POST …/draft/publish`` with
  ``If-Match`` and an ``Idempotency-Key``; each statement gets 5 versions, then the next begins.

Rate limiting is off for the run (``TECH7_RATELIMIT_ENABLED=false``): its limits are per client
and would cap a single-address load generator, which is not what is measured here.

Afterwards it checks that no version is lost (every publish that answered 201 is in the change
feed with its bytes) or duplicated (no version of the run's statements that no publish answered
for), and every invariant of ``tests/support/processes.py`` (``check_invariants``: manifests
Trusted, one log entry per version, versions 1..N, the log re-hashed to its signed checkpoint by
``tech7-audit monitor``, which also checks it only grew since before the load). Prints::

    requests=N
    seconds=S
    rps=R
    p50_ms_<class>=… p99_ms_<class>=… count_<class>=…   one line for each of version,
                                                        collection, verify, draft and publish
    errors=N        unexpected statuses, broken connections, retries, failed publishes
    lost=N
    duplicated=N
    invariants=ok   (or FAILED: and the first invariant that failed)
    goal: errors=0 lost=0 duplicated=0

Diagnostics go to stderr; exit status 1 unless every goal is met, 2 if the run could not start.
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The resilience tests' server, client, publisher and invariants: one definition of each.
sys.path.insert(0, str(ROOT))
from tests.support.processes import (  # noqa: E402
    ASSOCIATIONS,
    BROKEN_CONNECTION,
    Client,
    Outcomes,
    RetryingClient,
    Server,
    StatementPublisher,
    association_token,
    change_feed,
    check_invariants,
    create_postgres_database,
    drop_postgres_database,
    postgres_unreachable,
)

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
COLLECTIONS = ("/v1/recommendations", "/v1/recommendations?tag=sme", "/v1/priorities",
               "/v1/associations", "/v1/statements", "/v1/statements?association=bitkom",
               "/v1/changes?since=0&limit=20")
CLASSES = ("version", "collection", "verify", "draft", "publish")
READ_SHARE, VERIFY_SHARE = 0.90, 0.08  # the rest, 2%, publishes
VERIFY_SAMPLES = 8
VERSIONS_PER_STATEMENT = 5
STATEMENT_PREFIX = "load-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="stop after this many operations even if time remains")
    parser.add_argument("--database-server", default=DEFAULT_SERVER,
                        help="PostgreSQL server URL; a fresh database is made on it and dropped")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so `finally` stops the server

    reason = postgres_unreachable(args.database_server)
    if reason:
        print(f"bench/load.py: {reason}", file=sys.stderr)
        return 2
    database = create_postgres_database(args.database_server,
                                        f"tech7_load_{uuid.uuid4().hex[:8]}")
    tmp = Path(tempfile.mkdtemp(prefix="tech7-bench-load-"))
    server = Server(database, tmp / "keys", tmp)
    try:
        server.start()
        print(f"serving {server.base} on {database}", file=sys.stderr)
        return Load(server, args).run(tmp)
    except AssertionError as error:
        print(f"bench/load.py: {error}\n{server.log_tail()}", file=sys.stderr)
        return 2
    finally:
        server.stop()
        drop_postgres_database(database)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Tally:
    """One client thread's latencies (seconds) and statuses per class, and its errors."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    operations: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def check(self, reply, expected: tuple[int, ...], what: str) -> bool:
        """Record an error unless ``reply`` (None: the connection broke) has an expected
        status; True when it has."""
        if reply is not None and reply.status in expected:
            return True
        self.errors.append(f"{what}: {reply.status if reply else 'broken connection'}")
        return False


class Load:
    """The client side of one run: discovery, the timed mix, and the checks afterwards."""

    def __init__(self, server: Server, args: argparse.Namespace):
        self.server = server
        self.args = args
        self.client = Client(server.base)
        self.versions: list[tuple[str, str]] = []  # (href, ETag): grows as publishes land
        self.published: list = []
        self.tokens: dict[str, str] = {}

    def run(self, tmp: Path) -> int:
        before = check_invariants(self.client, [], monitor_state=tmp / "monitor")
        self.versions = [(href, f'"{sha}"') for href, sha in before.versions.items()]
        samples = [self._verify_body(href) for href, _ in
                   random.Random(self.args.seed).sample(self.versions, VERIFY_SAMPLES)]
        self.tokens = {a: association_token(self.server.database_url, a)
                       for a in ASSOCIATIONS}

        tallies = [Tally() for _ in range(self.args.concurrency)]
        budget = itertools.count()
        deadline = time.monotonic() + self.args.seconds
        started = time.monotonic()
        threads = [threading.Thread(target=self._drive, args=(i, tallies[i], samples, deadline,
                                                              budget))
                   for i in range(self.args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

        lost, duplicated, invariants = self._check(tmp)
        return _report(tallies, elapsed, lost, duplicated, invariants)

    def _drive(self, index: int, tally: Tally, samples: list[tuple[bytes, str]],
               deadline: float, budget: Iterator[int]) -> None:
        rng = random.Random(self.args.seed * 1000 + index)
        timed = _TimedClient(self.client, tally)
        outcomes = Outcomes()
        retrying = RetryingClient(timed, patience=30, outcomes=outcomes)
        publishers = [StatementPublisher(retrying, self.tokens[a], a)
                      for a in ASSOCIATIONS]
        collection_etags: dict[str, str] = {}

        def send(method: str, path: str, **kwargs):
            try:
                return timed.request(method, path, **kwargs)
            except BROKEN_CONNECTION:
                return None

        while time.monotonic() < deadline and next(budget) < self.args.max_requests:
            draw = rng.random()
            if draw < READ_SHARE / 2:
                tally.operations["version"] += 1
                href, etag = rng.choice(self.versions)
                conditional = rng.random() < 0.5
                reply = send("GET", href, headers={"If-None-Match": etag} if conditional else {})
                tally.check(reply, (304,) if conditional else (200,), href)
            elif draw < READ_SHARE:
                tally.operations["collection"] += 1
                path = rng.choice(COLLECTIONS)
                etag = collection_etags.get(path) if rng.random() < 0.5 else None
                reply = send("GET", path, headers={"If-None-Match": etag} if etag else {})
                if tally.check(reply, (200, 304) if etag else (200,), path) \
                        and reply.status == 200:
                    collection_etags[path] = reply.headers["etag"]
            elif draw < READ_SHARE + VERIFY_SHARE:
                tally.operations["verify"] += 1
                body, content_type = rng.choice(samples)
                reply = send("POST", "/v1/verify", body=body,
                             headers={"Content-Type": content_type})
                if tally.check(reply, (200,), "/v1/verify") and reply.json()["state"] != "Trusted":
                    tally.errors.append(f"verify: {reply.json()['summary']}")
            else:
                number = tally.operations["publish"]
                tally.operations["publish"] += 1
                publisher = publishers[number % len(publishers)]
                # A new statement every few versions: publishing cost grows with the version
                # number (each manifest carries its parent's), and statements are seldom long.
                statement = number // (len(publishers) * VERSIONS_PER_STATEMENT)
                try:
                    version = publisher.publish(f"{STATEMENT_PREFIX}{index}-{statement}",
                                                f"Load run, thread {index}, at {time.time()}.")
                except AssertionError as error:
                    tally.errors.append(f"publish: {error}")
                    continue
                self.published.append(version)
                self.versions.append((version.href, f'"{version.sha256}"'))
        tally.errors += [f"{outcomes.broken} broken connections"] * bool(outcomes.broken)
        tally.errors += [f"{outcomes.retries} retries (503 or broken)"] * bool(outcomes.retries)

    def _verify_body(self, href: str) -> tuple[bytes, str]:
        """A multipart/form-data upload of a version and its sidecar manifest."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, filename, media_type, path in (
                ("file", "document.json", "application/json", href),
                ("manifest", "document.c2pa", "application/c2pa", href + "/manifest")):
            reply = self.client.get(path)
            assert reply.status == 200, f"GET {path} answered {reply.status}"
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                         f'filename="{filename}"\r\nContent-Type: {media_type}\r\n\r\n'.encode()
                         + reply.body + b"\r\n")
        return (b"".join(parts) + f"--{boundary}--\r\n".encode(),
                f"multipart/form-data; boundary={boundary}")

    def _check(self, tmp: Path) -> tuple[int, int, str]:
        """(lost, duplicated, "ok" or the first failed invariant)."""
        feed = [item["href"] for item in change_feed(self.client)]
        published = {version.href for version in self.published}
        ours = [href for href in feed if f"/statements/{STATEMENT_PREFIX}" in href]
        lost = len(published - set(feed))
        duplicated = len(ours) - len(set(ours)) + len(set(ours) - published)
        try:
            check_invariants(self.client, self.published, monitor_state=tmp / "monitor")
        except AssertionError as error:
            return lost, duplicated, f"FAILED: {error}"
        return lost, duplicated, "ok"


class _TimedClient:
    """The client interface of ``helpers.Client`` that times every request into a tally."""

    def __init__(self, client, tally: Tally):
        self._client = client
        self._tally = tally

    def request(self, method: str, path: str, **kwargs):
        started = time.perf_counter()
        kind = _class_of(method, path)
        try:
            reply = self._client.request(method, path, **kwargs)
        finally:
            self._tally.latencies[kind].append(time.perf_counter() - started)
        self._tally.statuses[kind][reply.status] += 1
        return reply

def _class_of(method: str, path: str) -> str:
    if path == "/v1/verify":
        return "verify"
    if path.endswith("/draft/publish"):
        return "publish"
    if method != "GET" or path.endswith("/draft"):
        return "draft"
    return "version" if "/versions/" in path else "collection"


def _report(tallies: list[Tally], elapsed: float, lost: int, duplicated: int,
            invariants: str) -> int:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    operations: Counter = Counter()
    errors: list[str] = []
    for tally in tallies:
        for kind, values in tally.latencies.items():
            latencies[kind] += values
        for kind, counted in tally.statuses.items():
            statuses[kind].update(counted)
        operations.update(tally.operations)
        errors += tally.errors
    requests = sum(len(values) for values in latencies.values())
    print(f"operations: {dict(operations)}", file=sys.stderr)
    for kind in CLASSES:
        print(f"{kind} statuses: {dict(statuses[kind])}", file=sys.stderr)
    for error in errors[:20]:
        print(f"error: {error}", file=sys.stderr)
    print(f"requests={requests}")
    print(f"seconds={elapsed:.1f}")
    print(f"rps={requests / elapsed:.1f}")
    for kind in CLASSES:
        values = sorted(latencies[kind])
        if not values:
            continue
        p99 = statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]
        print(f"p50_ms_{kind}={statistics.median(values) * 1000:.1f} "
              f"p99_ms_{kind}={p99 * 1000:.1f} count_{kind}={len(values)}")
    print(f"errors={len(errors)}")
    print(f"lost={lost}")
    print(f"duplicated={duplicated}")
    print(f"invariants={invariants}")
    print("goal: errors=0 lost=0 duplicated=0")
    return 0 if not errors and not lost and not duplicated and invariants == "ok" else 1


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
