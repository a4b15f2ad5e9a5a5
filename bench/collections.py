"""Collections benchmark: a filtered page of 20 at 10^5 published statements vs a fresh registry.

Run from the repository root: ``python -m bench.collections`` (SQLite, then PostgreSQL on
``--database-server``; ``--engines sqlite`` for one). For each engine it makes a fresh database and
key folder, migrates and seeds the registry as ``serve`` does, and calls the application in
process (Flask's test client: routing, schemas, the SQL and the JSON, no sockets).

**The statements are synthetic.** Signing 10^5 statements would take hours, so their rows are
bulk-inserted directly with SQL: ``documents``, ``versions`` (RFC 8785 bodies shaped exactly as
the registry serves a statement, with a placeholder where the C2PA manifest goes) and the
``version_search`` / ``version_labels`` rows the publish transaction derives from each version
(with :mod:`app.publishing.search`, as publishing does). They are not in the transparency log and
nothing but the collection queries measured here reads them. Inserting is fine here because it
only adds rows: nothing changes or deletes a version or a log entry.

* *Fresh*: the seeded registry plus the 20 statements of the page (``--page-statements``), each
  matching every filter below.
* *Large*: a copy of the fresh database, then ``--statements`` (default 10^5) more statements,
  published after the page's ones and spread over the ten associations, the three statement
  types, the recommendations they address and a vocabulary of words, so every filter matches
  thousands of them (one in a hundred holds the searched word). The same requests return the
  same page of 20 (checked), over totals that are now thousands.

Each filter's request is timed on both, alternately: ``--rounds`` rounds of ``--requests``
requests per registry, back to back, so a busy moment on a shared machine weighs on both sides.
Figures are medians; a ratio is the median of the per-round ratios.

Prints, per engine and filter, ``<engine>_ms_fresh_<filter>``, ``<engine>_ms_large_<filter>`` and
``<engine>_ratio_<filter>`` (large / fresh: lower is better), then ``<engine>_ratio_max``, the
``goal=2.0`` (at most) and ``errors=N`` (a wrong status or page). Exit status 1 on an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tech7_audit.times import isoformat

from app.cli import prepare
from app.composition import create_app
from app.core import config as default_config
from app.core.canonical import canonical_bytes
from app.pki.keyring import ensure_keys
from app.publishing.search import facets, labels
from app.statements.kinds import STATEMENT

GOAL = 2.0
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ASSOCIATIONS = ("afnum", "anitec-assinform", "bitkom", "digitaleurope", "generative-ai-japan",
                "iti", "jeita", "numeum", "technation", "techuk")
TYPES = ("position", "endorsement", "progress-report")
WORD = "interoperability"  # the searched word; one in a hundred large-registry statements has it
PAGE = 20
#: Each filter's request; every page statement matches all of them.
FILTERS = {
    "statement_type": "/v1/statements?statement_type=position",
    "association": "/v1/associations/bitkom/statements",
    "recommendation": "/v1/statements?recommendation=sme-participation",
    "q": f"/v1/statements?q={WORD}",
    "combined": "/v1/statements?association=bitkom&statement_type=position"
                f"&recommendation=sme-participation&q={WORD}",
    "as_of": "/v1/statements?statement_type=position&as_of={as_of}",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collections",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--database-server", default=DEFAULT_SERVER,
                        help="PostgreSQL server URL; a fresh database is made on it and dropped")
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--page-statements", type=int, default=PAGE)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="per filter and round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    errors = 0
    for engine in args.engines.split(","):
        errors += run_engine(engine.strip(), args)
    print(f"goal={GOAL}")
    print(f"errors={errors}")
    return 1 if errors else 0


def run_engine(engine: str, args: argparse.Namespace) -> int:
    """Benchmark one engine on two databases of its own; returns the error count."""
    tmp = Path(tempfile.mkdtemp(prefix="tech7-bench-collections-"))
    admin, databases, apps = None, [], []
    try:
        if engine == "postgresql":
            server = make_url(args.database_server).set(drivername="postgresql+psycopg")
            admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
            run = uuid.uuid4().hex[:8]
            databases = [f"tech7_bench_collections_{run}_{name}" for name in ("fresh", "large")]
            urls = [server.set(database=name).render_as_string(hide_password=False)
                    for name in databases]
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{databases[0]}"')
        elif engine == "sqlite":
            urls = [f"sqlite:///{tmp / name}.db" for name in ("fresh", "large")]
        else:
            raise SystemExit(f"unknown engine {engine!r}: sqlite or postgresql")
        ensure_keys(tmp / "keys", default_config.SEED_FILE)
        settings = {"DATA_DIR": str(tmp), "KEYS_DIR": str(tmp / "keys"),
                    "RATELIMIT_ENABLED": False}
        fresh = create_app({**settings, "DATABASE_URL": urls[0]})
        apps.append(fresh)
        with fresh.app_context():
            prepare(fresh)
        # One access-log line per request would be most of what the run prints.
        logging.getLogger("tech7.access").setLevel(logging.WARNING)
        rng = random.Random(args.seed)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        insert_statements(fresh.extensions["tech7.db"].engine, rng, args.page_statements, start,
                          page=True)
        # The large registry starts as a copy of the fresh one, then gets the bulk statements.
        fresh.extensions["tech7.db"].engine.dispose()
        if engine == "postgresql":
            with admin.connect() as connection:
                connection.exec_driver_sql(
                    f'CREATE DATABASE "{databases[1]}" TEMPLATE "{databases[0]}"')
        else:
            shutil.copyfile(make_url(urls[0]).database, make_url(urls[1]).database)
        large = create_app({**settings, "DATABASE_URL": urls[1]})
        apps.append(large)
        begun = time.monotonic()
        insert_statements(large.extensions["tech7.db"].engine, rng, args.statements,
                          start + timedelta(days=2), page=False)
        print(f"{engine}_insert_s={time.monotonic() - begun:.1f} "
              f"{engine}_statements_fresh={args.page_statements} "
              f"{engine}_statements_large={args.page_statements + args.statements}", flush=True)
        as_of = isoformat(start + timedelta(days=1))
        return report(engine, fresh.test_client(), large.test_client(),
                      {name: path.format(as_of=as_of) for name, path in FILTERS.items()}, args)
    finally:
        for app in apps:
            app.extensions["tech7.db"].engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                for name in databases:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def report(engine: str, fresh, large, urls: dict[str, str], args: argparse.Namespace) -> int:
    """Time every filter on both registries, alternately, and print the figures; returns the
    error count (a wrong status, a short page, or another page from the large registry)."""
    errors = 0
    for name, url in urls.items():
        pages = []
        for client in (fresh, large):
            response = client.get(url)
            items = response.get_json().get("items", []) if response.status_code == 200 else []
            pages.append([item["slug"] for item in items])
            if response.status_code != 200 or len(items) != PAGE:
                errors += 1
                print(f"{name}: status {response.status_code}, {len(items)} items",
                      file=sys.stderr)
        if pages[0] != pages[1]:
            errors += 1
            print(f"{name}: the large registry answered another page", file=sys.stderr)
    times = {(name, which): [] for name in urls for which in ("fresh", "large")}
    for _ in range(args.rounds):
        # Interleaved, filter by filter and registry by registry, so that a busy moment on a
        # shared machine weighs on both sides of a ratio alike.
        for name, url in urls.items():
            for which, client in (("fresh", fresh), ("large", large)):
                started = time.perf_counter()
                for _ in range(args.requests):
                    client.get(url)
                times[name, which].append((time.perf_counter() - started) * 1000 / args.requests)
    ratios = {}
    for name in urls:
        fresh_ms, large_ms = (statistics.median(times[name, w]) for w in ("fresh", "large"))
        # The median of the per-round ratios: each round's two sides ran back to back.
        ratios[name] = statistics.median(
            b / a for a, b in zip(times[name, "fresh"], times[name, "large"], strict=True))
        print(f"{engine}_ms_fresh_{name}={fresh_ms:.2f} {engine}_ms_large_{name}={large_ms:.2f} "
              f"{engine}_ratio_{name}={ratios[name]:.2f}", flush=True)
    worst = max(ratios.values())
    print(f"{engine}_ratio_max={worst:.2f} met={'yes' if worst <= GOAL else 'no'}", flush=True)
    return errors


def insert_statements(engine: sa.Engine, rng: random.Random, count: int, start: datetime, *,
                      page: bool) -> None:
    """Bulk-insert ``count`` synthetic published statements, one version each, in batches.

    ``page`` statements all match every filter of :data:`FILTERS`; the others are spread out.
    """
    kind = STATEMENT
    metadata = sa.MetaData()
    tables = {name: sa.Table(name, metadata, autoload_with=engine)
              for name in ("documents", "versions", "version_search", "version_labels")}
    recommendations = _recommendation_slugs(engine)
    vocabulary = [f"w{n}" for n in range(2000)]
    with engine.begin() as connection:
        next_id = 1 + max(connection.scalar(sa.select(sa.func.coalesce(sa.func.max(
            tables[name].c.id), 0))) for name in ("documents", "versions"))
        seq = 1 + connection.scalar(sa.select(sa.func.max(tables["versions"].c.seq)))
        # Beyond any real log index: these versions are not in the log.
        log_index = 10**8 + next_id
    for batch_start in range(0, count, 5000):
        rows: dict[str, list[dict]] = {name: [] for name in tables}
        for n in range(batch_start, min(count, batch_start + 5000)):
            ident = next_id + n
            association = "bitkom" if page else rng.choice(ASSOCIATIONS)
            statement_type = "position" if page else rng.choice(TYPES)
            addressed = ["sme-participation"] if page else rng.sample(recommendations,
                                                                      rng.randint(1, 3))
            text = " ".join(rng.choice(vocabulary) for _ in range(40))
            if page or rng.random() < 0.01:
                text += f" {WORD.capitalize()}."
            published_at = start + timedelta(seconds=n)
            content = kind.load_content({
                "statement_type": statement_type, "title": f"Synthetic statement {ident}",
                "text": [text], "addresses": [{"slug": s, "version": 1} for s in addressed]})
            slug = kind.owned_slug(association, f"synthetic-{ident}")
            body = canonical_bytes(kind.served_body(slug, 1, isoformat(published_at), content))
            document = json.loads(body)
            rows["documents"].append({"id": ident, "kind": kind.name, "slug": slug,
                                      "association": association, "created_at": published_at})
            rows["versions"].append({
                "id": ident, "document_id": ident, "number": 1, "seq": seq + n, "body": body,
                "sha256": hashlib.sha256(body).hexdigest(), "published_at": published_at,
                "withdrawn": False, "published_by": "bench", "manifest": b"synthetic",
                "manifest_sha256": "0" * 64, "manifest_label": "urn:bench:synthetic",
                "signer": association, "signer_certificate_sha256": "0" * 64,
                "log_index": log_index + n})
            derived = facets(document)
            rows["version_search"].append({
                "version_id": ident, "document_id": ident, "number": 1, "kind": kind.name,
                "latest": True, "published_at": published_at, **derived})
            rows["version_labels"] += [
                {"label": label, "value": value, "version_id": ident, "document_id": ident,
                 "kind": kind.name, "latest": True, "withdrawn": derived["withdrawn"]}
                for label, value in sorted(labels(document))]
        with engine.begin() as connection:
            for name in ("documents", "versions", "version_search", "version_labels"):
                connection.execute(tables[name].insert(), rows[name])
    # What PostgreSQL's autovacuum does after a bulk load (statistics, and the visibility map
    # index-only scans rely on), done now rather than some time later; on SQLite, the statistics
    # its query planner uses.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql"
                                   else "ANALYZE")


def _recommendation_slugs(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.text(
            "SELECT slug FROM documents WHERE kind = 'recommendation' ORDER BY id")))


if __name__ == "__main__":
    sys.exit(main())
