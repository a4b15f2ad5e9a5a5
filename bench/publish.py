"""Publish benchmark: the service's publish path vs. a bare C2PA sign-and-timestamp of the same bytes.

Run from the repository root: ``python -m bench.publish`` (~1 min). One process, a temporary data
folder (SQLite) and a temporary key folder; ``prepare`` migrates and seeds the declaration first.

* **ours**: :meth:`PublishingService.publish_content` inside ``db.registry_transaction()``, the
  transaction the seed and the draft-publish view use: canonical bytes, the parent's verification,
  the manifest with the parent as ``parentOf`` ingredient and an RFC 3161 timestamp from the
  built-in loopback TSA, the read-back that proves the manifest Trusted, the log entry and signed
  checkpoint, the version row, the commit. Every timed publish makes version 2 of a fresh
  recommendation whose version 1 was published (untimed) just before. A manifest names its parent
  by hash and log inclusion proof instead of embedding the parent's manifest store, so neither
  its size nor the publish time should grow with the version number: ``--depth`` (default 200)
  publishes one document that many times; its last five publishes alternate with five version-2
  publishes of fresh documents, so both are timed under the same load, and the medians are
  compared (``publish_ms_v2`` / ``publish_ms_vN``, ``depth_ratio_ms``, goal 1.2).
* **bare**: :meth:`ManifestSigner.sign_sidecar` with its defaults (c2pa's verify-after-sign on),
  signing the same canonical bytes with the same key, against a loopback listener of the same
  built-in TSA: what c2pa itself costs to sign and timestamp this document once.

Both run alternately in rounds; rates are publishes (or signatures) per second, the median of the
per-round rates, and ``publish_ratio`` = ours / bare (goal >= 0.5). Prints::

    publish_rate_ours=…  publish_rate_bare=…  publish_ratio=…  goal=0.5
    publish_ms_v2=…  publish_ms_v<N>=…  manifest_kib_v2=…  manifest_kib_v<N>=…
    depth_ratio_ms=…  depth_ratio_kib=…  depth_goal=1.2
    export_pdf_ms=…      (the whole declaration as a signed PDF export, on the fresh install,
                          median of 3; skipped when the app has no export service)
    publish_ms_unwitnessed=…  publish_ms_witnessed=…  witness_quorum_ms=…
                         (version-2 publishes, alternately without and with a policy of three
                          local tech7-witness processes, 2 of 3: the publish itself, whose commit
                          wakes a background round, and from its commit until the checkpoint
                          carries the quorum; medians)
    errors=N             (timed or deep publishes whose version did not read Trusted afterwards,
                          and witnessed ones whose checkpoint missed the quorum for 10 s)

``--profile`` then prints, on stderr, the wall time of each stage of a version-2 publish (timers
only) and cProfile's top functions over another round. Exit status is 1 when ``errors`` is not 0.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import hashlib
import io
import itertools
import json
import logging
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

GOAL = 0.5
DEPTH_GOAL = 1.2
#: Publishes timed at each end of the depth run (versions 2 to 6, and the last five).
DEPTH_SAMPLES = 5
RECOMMENDATION_SLUG = "sme-participation"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=15, help="publishes per round")
    parser.add_argument("--depth", type=int, default=200,
                        help="version number at which the deep publishes are timed")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    from app.catalog.kinds import RECOMMENDATION  # noqa: PLC0415
    from app.cli import prepare  # noqa: PLC0415
    from app.composition import create_app  # noqa: PLC0415
    from app.core import config  # noqa: PLC0415 - keep --help fast
    from app.pki.keyring import REGISTRY_SIGNER, ensure_keys  # noqa: PLC0415
    from app.provenance.service import JSON  # noqa: PLC0415
    from app.provenance.signing import CREATED, ManifestSigner  # noqa: PLC0415

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="tech7-bench-") as folder:
        tmp = Path(folder)
        ensure_keys(tmp / "keys", config.SEED_FILE)
        app = create_app({"DATA_DIR": str(tmp / "data"), "KEYS_DIR": str(tmp / "keys")})
        with app.app_context(), contextlib.redirect_stdout(sys.stderr):
            prepare(app)
        publishing = app.extensions["tech7.publishing"]
        provenance = app.extensions["tech7.provenance"]
        seed = json.loads(Path(config.SEED_FILE).read_text(encoding="utf-8"))
        content = next({k: v for k, v in r.items() if k != "slug"}
                       for r in seed["recommendations"] if r["slug"] == RECOMMENDATION_SLUG)

        # The whole declaration as exported from a fresh install, before the bench adds documents.
        exports = app.extensions.get("tech7.exports")
        if exports is None:
            export_pdf_ms = None
        else:
            from app.exports.service import ExportScope  # noqa: PLC0415

            timings = []
            for _ in range(3):
                started = time.perf_counter()
                exports.create("pdf", ExportScope(declaration=True), created_by="bench",
                               registry_url="http://127.0.0.1:8000/")
                timings.append(time.perf_counter() - started)
            export_pdf_ms = statistics.median(timings) * 1000

        revisions = itertools.count(1)

        def publish(slug: str, service=publishing):
            # Each version revises the text a little: content equal to the latest version's is
            # refused, as it would publish a version that changes nothing.
            revised = {**content, "title": f"{content['title']} (revision {next(revisions)})"}
            with service.db.registry_transaction() as session:
                return service.publish_content(session, RECOMMENDATION, slug, revised,
                                               publisher="bench")

        def timed_publish(slug: str) -> tuple[float, object]:
            publish(slug)  # version 1, untimed
            started = time.perf_counter()
            version = publish(slug)
            return time.perf_counter() - started, version

        errors = 0

        def check(version) -> None:
            nonlocal errors
            if not provenance.verify(version.body, JSON, version.manifest).trusted:
                errors += 1

        _, sample = timed_publish("bench-warm-up")
        check(sample)
        # The same bytes, and an identity assertion of the same shape as the publish path's.
        body, served = sample.body, json.loads(sample.body)
        identity = {"kind": served["kind"], "slug": served["slug"], "version": served["version"],
                    "sha256": hashlib.sha256(body).hexdigest(), "association": None}
        title = f"{served['kind']} {served['slug']} version {served['version']}"
        with provenance.timestamp_authority().serve_loopback() as tsa:
            bare = ManifestSigner(provenance.keyring.store, tsa_url=tsa.url)

            def bare_sign() -> float:
                started = time.perf_counter()
                bare.sign_sidecar(body, JSON, signer_name=REGISTRY_SIGNER, title=title,
                                  action=CREATED, identity=identity)
                return time.perf_counter() - started

            bare_sign()
            ours_rates, bare_rates = [], []
            for round_number in range(args.rounds):
                timings = []
                for i in range(args.per_round):
                    elapsed, version = timed_publish(f"bench-{round_number}-{i}")
                    timings.append(elapsed)
                    check(version)
                ours_rates.append(len(timings) / sum(timings))
                bare_timings = [bare_sign() for _ in range(args.per_round)]
                bare_rates.append(len(bare_timings) / sum(bare_timings))
                print(f"round {round_number}: ours {ours_rates[-1]:.1f}/s, "
                      f"bare {bare_rates[-1]:.1f}/s", file=sys.stderr)

        ours, bare_rate = statistics.median(ours_rates), statistics.median(bare_rates)
        print(f"median of per-round ratios: "
              f"{statistics.median(o / b for o, b in zip(ours_rates, bare_rates, strict=True)):.3f}",
              file=sys.stderr)
        print(f"publish_rate_ours={ours:.1f}")
        print(f"publish_rate_bare={bare_rate:.1f}")
        print(f"publish_ratio={ours / bare_rate:.3f}")
        print(f"goal={GOAL}")

        # Depth: one document published again and again, untimed up to its last few versions;
        # those are timed alternately with versions 2 of fresh documents, so that both ends
        # are measured under the same load.
        if args.depth < DEPTH_SAMPLES + 2:
            parser.error(f"--depth must be at least {DEPTH_SAMPLES + 2}")
        for _ in range(args.depth - DEPTH_SAMPLES):
            publish("bench-depth")
        shallow: list[float] = []
        deep: list[float] = []
        for sample in range(DEPTH_SAMPLES):
            elapsed, version = timed_publish(f"bench-shallow-{sample}")
            shallow.append(elapsed)
            shallow_size = len(version.manifest)
            started = time.perf_counter()
            version = publish("bench-depth")
            deep.append(time.perf_counter() - started)
            deep_size = len(version.manifest)
        check(version)
        shallow_ms, deep_ms = statistics.median(shallow) * 1000, statistics.median(deep) * 1000
        print(f"publish_ms_v2={shallow_ms:.1f}")
        print(f"publish_ms_v{args.depth}={deep_ms:.1f}")
        print(f"manifest_kib_v2={shallow_size / 1024:.1f}")
        print(f"manifest_kib_v{args.depth}={deep_size / 1024:.1f}")
        print(f"depth_ratio_ms={deep_ms / shallow_ms:.2f}")
        print(f"depth_ratio_kib={deep_size / shallow_size:.2f}")
        print(f"depth_goal={DEPTH_GOAL}")

        if export_pdf_ms is None:
            print("export_pdf_ms skipped: this app has no export service (tech7.exports)",
                  file=sys.stderr)
        else:
            print(f"export_pdf_ms={export_pdf_ms:.1f}")
        errors += _witnessed(tmp, create_app, publish, args.per_round)
        if args.profile:
            _profile(publish, args.per_round)
        print(f"errors={errors}")
        app.extensions["tech7.db"].engine.dispose()
    return 1 if errors else 0


def _witnessed(tmp: Path, create_app: Callable, publish: Callable, count: int) -> int:
    """Publish latency with and without witnesses, in this run: three real ``tech7-witness serve``
    processes on 127.0.0.1 and a second app on the same database whose policy names them.
    Returns how many witnessed publishes did not reach the quorum within 10 s."""
    from tech7_tlog.policy import parse_policy  # noqa: PLC0415
    from tech7_witness.testing import WitnessProcess, init  # noqa: PLC0415

    plain = create_app({"DATA_DIR": str(tmp / "data"), "KEYS_DIR": str(tmp / "keys")})
    log_vkey = plain.extensions["tech7.log"].verifier_key
    names = ("assoc-a", "assoc-b", "assoc-c")
    witnesses = []
    missed = 0
    try:
        lines = [f"log {log_vkey}\n"]
        for name in names:
            vkey = init(tmp / name, f"witness.example/{name}")
            witnesses.append(WitnessProcess(tmp / name, [log_vkey]).start())
            lines.append(f"witness {name} {vkey} http://127.0.0.1:{witnesses[-1].port}\n")
        lines += [f"group members 2 {' '.join(names)}\n", "quorum members\n"]
        (tmp / "policy.txt").write_text("".join(lines))
        policy = parse_policy("".join(lines))
        app = create_app({"DATA_DIR": str(tmp / "data"), "KEYS_DIR": str(tmp / "keys"),
                          "WITNESS_POLICY": str(tmp / "policy.txt"), "WITNESS_INTERVAL": 5})
        witnessing = app.extensions["tech7.witnessing"]
        witnessing.start_background(5)
        services = {"unwitnessed": plain.extensions["tech7.publishing"],
                    "witnessed": app.extensions["tech7.publishing"]}
        timings: dict[str, list[float]] = defaultdict(list)
        for i in range(count + 1):  # the first of each is a warm-up
            for label, service in services.items():
                slug = f"bench-witness-{label}-{i}"
                publish(slug, service)
                started = time.perf_counter()
                publish(slug, service)
                committed = time.perf_counter()
                if i:
                    timings[label].append(committed - started)
                if label == "witnessed":
                    size = app.extensions["tech7.log"].size()
                    for _ in range(1000):  # bounded: 10 s at most
                        note = witnessing.cosigned_checkpoint()
                        if int(note.split("\n", 2)[1]) >= size \
                                and policy.satisfied_by(policy.cosigners(note)):
                            break
                        time.sleep(0.01)
                    else:
                        missed += 1
                    if i:
                        timings["quorum"].append(time.perf_counter() - committed)
        witnessing.stop_background()
        for engine_app in (plain, app):
            engine_app.extensions["tech7.db"].engine.dispose()
    finally:
        for process in witnesses:
            process.stop()
    print(f"publish_ms_unwitnessed={statistics.median(timings['unwitnessed']) * 1000:.1f}")
    print(f"publish_ms_witnessed={statistics.median(timings['witnessed']) * 1000:.1f}")
    print(f"witness_quorum_ms={statistics.median(timings['quorum']) * 1000:.1f}")
    return missed


def _profile(publish: Callable[[str], object], count: int) -> None:
    """Where the time of a version-2 publish goes: wall time per stage (timers only), then
    cProfile's top functions by cumulative time over another ``count`` publishes. ``publish``
    publishes the next version of a document; versions 1 are published before any timing."""
    slugs = [f"bench-profile-{i}" for i in range(2 * count)]
    for slug in slugs:
        publish(slug)
    import c2pa  # noqa: PLC0415

    from app.ledger.service import TransparencyLog  # noqa: PLC0415
    from app.provenance import service  # noqa: PLC0415

    stages: dict[str, float] = defaultdict(float)
    patches = [
        (TransparencyLog, "receipt_in", "the parent's inclusion proof"),
        (c2pa.Builder, "sign", "c2pa sign + RFC 3161 timestamp"),
        (service.ProvenanceService, "_checked", "read the new manifest back"),
        (TransparencyLog, "append", "log append + signed checkpoint"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, label in patches:
        original = getattr(owner, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                stages[_label] += time.perf_counter() - started

        setattr(owner, name, functools.wraps(original)(timed))
    try:
        started = time.perf_counter()
        for slug in slugs[:count]:
            publish(slug)
        total = time.perf_counter() - started
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    print(f"\nstages of a version-2 publish ({total / count * 1000:.1f} ms each, mean of "
          f"{count}):", file=sys.stderr)
    for label, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"  {label:34} {seconds / count * 1000:7.2f} ms", file=sys.stderr)
    rest = total - sum(stages.values())
    print(f"  {'everything else (SQL, ORM, JSON)':34} {rest / count * 1000:7.2f} ms",
          file=sys.stderr)

    profiler = cProfile.Profile()
    profiler.enable()
    for slug in slugs[count:]:
        publish(slug)
    profiler.disable()
    report = io.StringIO()
    pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(25)
    print(report.getvalue(), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
