"""Benchmark: ``POST /v1/verify`` against a bare c2pa validation of the same file.

Run from the repository root: ``python -m bench.verify``. It builds a registry in a temporary
folder (fresh keys, SQLite, the declaration seeded), takes one published version (JSON) and its
sidecar manifest, and measures in the same process, alternating round by round:

* ``verify_rps_api``: ``POST /v1/verify`` through the Flask test client (in process, no server,
  no sockets) with a prebuilt multipart body of that version and its sidecar — each call reads
  the manifest, finds the log entry, checks signer and hashes, verifies the current checkpoint's
  signature and the inclusion proof, asks for the certificate's revocation status and answers
  the JSON report; every answer is checked to say Trusted. The measured time is the server's
  work plus what any client must do: the test client's request and a plain ``json.loads`` of
  the answer to read its state. The registry's strict I-JSON loader (the one ``response.json``
  would use) is for request bodies the registry accepts, not for reading its own answers, so it
  is not charged to the API;
* ``verify_rps_raw``: a bare ``c2pa.Reader`` validation of the same bytes with one shared
  ``Context`` holding the same trust anchors (what any C2PA verifier must do at least), checked
  to read Trusted.

Rates are calls per second, the median of the per-round rates; ``verify_ratio`` = api / raw
(higher is better; the goal is at least 0.7). On a shared machine wall-clock rates swing with the
load, so it also prints this process's CPU time per call and ``verify_ratio_cpu`` = raw CPU / api
CPU. ``--profile`` also prints where an API call's time goes: the c2pa read, the rest of the
verification service, and the HTTP layer, then the top functions by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import c2pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tech7_audit.manifests import verification_context
from tech7_audit.verification import verify_manifest

from app.cli import prepare
from app.composition import create_app
from app.core import config
from app.pki.keyring import ensure_keys

GOAL = 0.7
PATH = "/v1/recommendations/sme-participation/versions/1"


def _multipart(body: bytes, manifest: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [(b"file", b"document.json", body), (b"manifest", b"document.c2pa", manifest)]
    encoded = b"".join(
        b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="' + name
        + b'"; filename="' + filename + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data + b"\r\n" for name, filename, data in parts)
    return encoded + b"--" + boundary.encode() + b"--\r\n", \
        f"multipart/form-data; boundary={boundary}"


def _rate(call: Callable[[], None], seconds: float) -> tuple[float, float]:
    """Calls per second of ``call`` over about ``seconds``, and this process's CPU ms per call."""
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        call()
        count += 1
    return count / elapsed, (time.process_time() - cpu) / count * 1000


def _cpu_ms_per_call(call: Callable[[], object], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - start) / count * 1000


def main() -> None:
    """Seed a registry, then time both sides and print ``key=value`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0, help="per round and side")
    parser.add_argument("--path", default=PATH, help="the version to verify")
    parser.add_argument("--profile", action="store_true", help="show where an API call goes")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tech7-bench-verify-") as folder:
        keys = Path(folder) / "keys"
        ensure_keys(keys, config.SEED_FILE)
        # Rate limits would answer most of these calls with 429: they are not what is measured.
        app = create_app({"DATA_DIR": folder, "KEYS_DIR": str(keys), "RATELIMIT_ENABLED": False})
        # Seeding reports on stdout, which is for this benchmark's key=value lines.
        with app.app_context(), contextlib.redirect_stdout(sys.stderr):
            prepare(app)
        client = app.test_client()
        body = client.get(options.path).get_data()
        manifest = client.get(options.path + "/manifest").get_data()
        anchors = client.get("/v1/trust/anchors.pem").get_data()
        upload, content_type = _multipart(body, manifest)
        context = verification_context(anchors)
        errors = 0

        def api() -> None:
            nonlocal errors
            response = client.post("/v1/verify", data=upload, content_type=content_type)
            if response.status_code != 200 \
                    or json.loads(response.get_data())["state"] != "Trusted":
                errors += 1

        def raw() -> None:
            nonlocal errors
            with c2pa.Reader("application/json", io.BytesIO(body), manifest,
                             context=context) as reader:
                if reader.get_validation_state() != "Trusted":
                    errors += 1

        for warm_up in (api, raw):
            for _ in range(20):
                warm_up()
        api_rounds: list[tuple[float, float]] = []
        raw_rounds: list[tuple[float, float]] = []
        for round_number in range(options.rounds):
            # Alternate which side goes first so drift on a busy machine hits both alike.
            sides = [(api, api_rounds), (raw, raw_rounds)]
            for call, rounds in sides if round_number % 2 == 0 else reversed(sides):
                rounds.append(_rate(call, options.seconds))
            print(f"round {round_number + 1}: api={api_rounds[-1][0]:.1f}/s "
                  f"({api_rounds[-1][1]:.2f} ms CPU) raw={raw_rounds[-1][0]:.1f}/s "
                  f"({raw_rounds[-1][1]:.2f} ms CPU) "
                  f"ratio={api_rounds[-1][0] / raw_rounds[-1][0]:.3f}", file=sys.stderr, flush=True)

        api_rps = statistics.median(rate for rate, _ in api_rounds)
        raw_rps = statistics.median(rate for rate, _ in raw_rounds)
        api_cpu = statistics.median(cpu for _, cpu in api_rounds)
        raw_cpu = statistics.median(cpu for _, cpu in raw_rounds)
        print("mode=in-process (Flask test client, SQLite)")
        print(f"verify_rps_api={api_rps:.1f}")
        print(f"verify_rps_raw={raw_rps:.1f}")
        print(f"verify_ratio={api_rps / raw_rps:.3f}")
        # CPU time per call is steadier than wall-clock rates when other processes compete.
        print(f"verify_cpu_ms_api={api_cpu:.3f}")
        print(f"verify_cpu_ms_raw={raw_cpu:.3f}")
        print(f"verify_ratio_cpu={raw_cpu / api_cpu:.3f}")
        print(f"goal={GOAL} met={'yes' if api_rps / raw_rps >= GOAL else 'no'}")
        print(f"errors={errors}")
        print("median of per-round ratios="
              f"{statistics.median(a[0] / r[0] for a, r in zip(api_rounds, raw_rounds, strict=True)):.3f}",
              file=sys.stderr)

        if options.profile:
            _profile(app, client, api, raw, body, manifest, anchors, context)
        app.extensions["tech7.db"].engine.dispose()
    sys.exit(1 if errors else 0)


def _profile(app, client, api, raw, body, manifest, anchors, context) -> None:
    """Per-stage cost of one API call, by difference, and the top functions by own time."""
    service = app.extensions["tech7.verification"]
    count = 300
    stages = {
        "c2pa Reader (raw)": _cpu_ms_per_call(raw, count),
        "verify_manifest (Reader + report)": _cpu_ms_per_call(
            lambda: verify_manifest(body, "application/json", manifest, anchors, context), count),
        "VerificationService.verify": _cpu_ms_per_call(lambda: service.verify(body, manifest), count),
        "POST /v1/verify": _cpu_ms_per_call(api, count),
    }
    print("--- CPU ms per call (each stage includes the ones above it) ---", file=sys.stderr)
    for name, ms in stages.items():
        print(f"{name:>36}: {ms:.3f}", file=sys.stderr)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        api()
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
