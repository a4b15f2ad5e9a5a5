"""Read benchmark: an immutable version URL served by the registry vs. a bare Flask app.

One run starts ``tech7-registry serve`` (fresh SQLite data folder, temporary keys folder) and
:mod:`bench.bare_app` under the same gunicorn settings (``gunicorn -c gunicorn.conf.py``, 2 gthread
workers), each on a free 127.0.0.1 port. A second process (``python -m bench.read --load SPEC``)
then drives both alternately, in rounds, with a few client threads and a new connection per request
(as a client arriving anew would), measuring 200s (no ``If-None-Match``) and 304s
(``If-None-Match`` with the ETag) separately. Every response's status is checked, and every 200's
body is compared with the expected bytes. Rates are the median of the per-round rates.

Prints exactly::

    read_rps_ours_200=…
    read_rps_bare_200=…
    read_ratio_200=<ours/bare>
    read_rps_ours_304=…
    read_rps_bare_304=…
    read_ratio_304=<ours/bare>
    goal_200=0.7 goal_304=0.9
    errors=N

Diagnostics (per-round rates, error samples, server log tails on failure) go to stderr. Exit status
is 0 when there were no errors. ``python -m bench.read --profile`` instead profiles one request to
the version URL in process (our app vs. the bare app) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = "/v1/recommendations/sme-participation/versions/1"
GOAL_200 = 0.7
GOAL_304 = 0.9
HOST = "127.0.0.1"
# Headers that differ per response or per connection, not per representation.
_VOLATILE = frozenset({"date", "server", "connection", "content-length", "transfer-encoding"})


# -- the orchestrating process -----------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--path", default=DEFAULT_PATH, help="version URL path to read")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0, help="per target, mode and round")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--max-requests", type=int, default=50_000, help="per phase")
    parser.add_argument("--load", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true",
                        help="profile one request in process instead of benchmarking")
    args = parser.parse_args(argv)
    if args.load:
        json.dump(run_load(json.loads(Path(args.load).read_text())), sys.stdout)
        return 0
    if args.profile:
        return profile(args.path)
    return benchmark(args)


def benchmark(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so `finally` stops the servers
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="tech7-bench-read-"))
    processes: list[tuple[str, subprocess.Popen, Path]] = []
    try:
        errors = 0
        ours_port, bare_port = free_port(), free_port()
        while bare_port == ours_port:
            bare_port = free_port()

        env = _child_env(tmp / "ours-run")
        env.pop("TECH7_DATABASE_URL", None)
        env["TECH7_DATA_DIR"] = str(tmp / "data")
        env["TECH7_KEYS_DIR"] = str(tmp / "keys")
        (tmp / "keys").mkdir()
        ours = _start("ours", [_script("tech7-registry"), "serve", "--host", HOST, "--port",
                               str(ours_port), "--workers", "2"], env, tmp, processes)
        status, headers_200, body = wait_ready(ours, ours_port, args.path, tmp / "ours.log")
        if status != 200:
            raise BenchError(f"ours: GET {args.path} answered {status}, not 200")
        etag = _header(headers_200, "ETag")
        if not etag:
            raise BenchError(f"ours: GET {args.path} has no ETag")
        status, headers_304, _ = fetch(ours_port, args.path, {"If-None-Match": etag})
        if status != 304:
            raise BenchError(f"ours: If-None-Match with the ETag answered {status}, not 304")

        body_file = tmp / "body.json"
        body_file.write_bytes(body)
        spec_file = tmp / "bare.json"
        spec_file.write_text(json.dumps({
            "path": args.path, "body_file": str(body_file), "etag": etag,
            "headers_200": _stable(headers_200), "headers_304": _stable(headers_304)}))
        env = _child_env(tmp / "bare-run")
        env["BENCH_BARE_SPEC"] = str(spec_file)
        bare = _start("bare", [_script("gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
                               "--bind", f"{HOST}:{bare_port}", "--workers", "2",
                               "bench.bare_app:create_app()"], env, tmp, processes)
        wait_ready(bare, bare_port, args.path, tmp / "bare.log")
        for mode, extra, expected in ((200, {}, headers_200),
                                      (304, {"If-None-Match": etag}, headers_304)):
            status, got, got_body = fetch(bare_port, args.path, extra)
            if status != mode or (mode == 200 and got_body != body) \
                    or sorted(_stable(got)) != sorted(_stable(expected)):
                errors += 1
                print(f"bare {mode}: differs from ours: {status} {_stable(got)}", file=sys.stderr)

        load_spec = tmp / "load.json"
        load_spec.write_text(json.dumps({
            "targets": {"ours": ours_port, "bare": bare_port}, "path": args.path,
            "pgids": {"ours": ours.pid, "bare": bare.pid},
            "body_file": str(body_file), "etag": etag, "rounds": args.rounds,
            "seconds": args.seconds, "concurrency": args.concurrency,
            "max_requests": args.max_requests}))
        budget = args.rounds * 4 * (args.seconds + 1) + 30
        loader = subprocess.Popen([sys.executable, "-m", "bench.read", "--load", str(load_spec)],
                                  cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
        processes.append(("load", loader, tmp / "load.log"))
        try:
            out, _ = loader.communicate(timeout=budget)
        except subprocess.TimeoutExpired as error:
            raise BenchError(f"the load process took more than {budget:.0f} s") from error
        if loader.returncode != 0:
            raise BenchError(f"the load process exited with {loader.returncode}")
        result = json.loads(out)
    except BenchError as error:
        print(f"bench/read.py: {error}", file=sys.stderr)
        for name, _process, log in processes:
            _tail(name, log)
        return 2
    finally:
        for _name, process, _log in reversed(processes):
            stop(process)
        shutil.rmtree(tmp, ignore_errors=True)

    errors += result["errors"]
    rates = {(target, mode): statistics.median(result["rates"][target][str(mode)])
             for target in ("ours", "bare") for mode in (200, 304)}
    for mode in (200, 304):
        for target in ("ours", "bare"):
            rounds = " ".join(f"{r:.0f}" for r in result["rates"][target][str(mode)])
            print(f"{target} {mode} rps per round: {rounds}", file=sys.stderr)
        paired = [o / b for o, b in zip(result["rates"]["ours"][str(mode)],
                                        result["rates"]["bare"][str(mode)], strict=True) if b]
        cpu = {target: result["cpu_us"][target][str(mode)] for target in ("ours", "bare")}
        line = f"{mode}: median of per-round ratios {statistics.median(paired):.3f}" \
            if paired else f"{mode}:"
        if cpu["ours"] and cpu["bare"]:
            ours_cpu, bare_cpu = statistics.median(cpu["ours"]), statistics.median(cpu["bare"])
            line += (f"; server CPU per request (median, both workers + arbiter): "
                     f"ours {ours_cpu:.0f} µs, bare {bare_cpu:.0f} µs, bare/ours "
                     f"{bare_cpu / ours_cpu:.3f}")
        print(line, file=sys.stderr)
    for sample in result["error_samples"]:
        print(f"error: {sample}", file=sys.stderr)
    ratio_200 = rates["ours", 200] / rates["bare", 200] if rates["bare", 200] else 0.0
    ratio_304 = rates["ours", 304] / rates["bare", 304] if rates["bare", 304] else 0.0
    print(f"read_rps_ours_200={rates['ours', 200]:.1f}")
    print(f"read_rps_bare_200={rates['bare', 200]:.1f}")
    print(f"read_ratio_200={ratio_200:.3f}")
    print(f"read_rps_ours_304={rates['ours', 304]:.1f}")
    print(f"read_rps_bare_304={rates['bare', 304]:.1f}")
    print(f"read_ratio_304={ratio_304:.3f}")
    print(f"goal_200={GOAL_200} goal_304={GOAL_304}")
    print(f"errors={errors}")
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    if ratio_200 < GOAL_200 or ratio_304 < GOAL_304:
        print("below goal: `python -m bench.read --profile` shows where a request's time goes",
              file=sys.stderr)
    return 1 if errors else 0


class BenchError(Exception):
    """The benchmark could not run (a server did not start or answered wrongly)."""


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _script(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise BenchError(f"{name} is not installed (activate the project's virtualenv)")
    return found


def _child_env(run_dir: Path) -> dict[str, str]:
    """The environment of a server: gunicorn's control socket goes in its own temporary folder,
    not the shared ``~/.gunicorn/gunicorn.ctl``."""
    run_dir.mkdir(mode=0o700)
    env = dict(os.environ)
    env["XDG_RUNTIME_DIR"] = str(run_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(name: str, command: list[str], env: dict[str, str], tmp: Path,
           processes: list) -> subprocess.Popen:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    processes.append((name, process, log))
    return process


def stop(process: subprocess.Popen) -> None:
    """Stop a process and everything in its process group (gunicorn's workers included)."""
    if process.poll() is None or _group_alive(process.pid):
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if _group_alive(process.pid):
        _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _tail(name: str, log: Path, lines: int = 25) -> None:
    if log.exists():
        text = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {name} log (last {len(text)} lines) ---", *text, sep="\n", file=sys.stderr)


def fetch(port: int, path: str, headers: dict[str, str] | None = None,
          timeout: float = 5.0) -> tuple[int, list[tuple[str, str]], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def wait_ready(process: subprocess.Popen, port: int, path: str, log: Path,
               timeout: float = 45.0) -> tuple[int, list[tuple[str, str]], bytes]:
    """Poll ``path`` until the server answers; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server on port {port} exited with {process.returncode}")
        try:
            return fetch(port, path, timeout=2.0)
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"the server on port {port} was not ready after {timeout:.0f} s")


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name.lower()), None)


def _stable(headers: list[tuple[str, str]]) -> list[list[str]]:
    return [[key, value] for key, value in headers if key.lower() not in _VOLATILE]


# -- the load process --------------------------------------------------------------------------

def run_load(spec: dict) -> dict:
    """Drive both servers alternately; return per-round rates, the servers' CPU time per request
    (from /proc, summed over each server's process group) and error counts."""
    body = Path(spec["body_file"]).read_bytes()
    path, etag, targets = spec["path"], spec["etag"], spec["targets"]
    rates = {target: {"200": [], "304": []} for target in targets}
    cpu = {target: {"200": [], "304": []} for target in targets}
    errors = [0]
    samples: list[str] = []

    def phase(target: str, mode: int, seconds: float) -> tuple[float, float | None]:
        before = _group_cpu(spec["pgids"][target])
        ok, failed, elapsed, sample = _phase(targets[target], path, mode, etag, body,
                                             seconds, spec["concurrency"], spec["max_requests"])
        after = _group_cpu(spec["pgids"][target])
        errors[0] += failed
        samples.extend(f"{target} {mode}: {s}" for s in sample[:3] if len(samples) < 10)
        per_request = (after - before) / ok * 1e6 if ok and before is not None \
            and after is not None else None
        return (ok / elapsed if elapsed > 0 else 0.0), per_request

    for target in targets:  # warm up: every worker's caches and the client's code paths
        for mode in (200, 304):
            phase(target, mode, 0.3)
    names = list(targets)
    for number in range(spec["rounds"]):
        order = names if number % 2 == 0 else names[::-1]  # ABBA: neither side always goes first
        for mode in (200, 304):
            for target in order:
                rate, per_request = phase(target, mode, spec["seconds"])
                rates[target][str(mode)].append(rate)
                if per_request is not None:
                    cpu[target][str(mode)].append(per_request)
    return {"rates": rates, "cpu_us": cpu, "errors": errors[0], "error_samples": samples}


def _group_cpu(pgid: int) -> float | None:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _phase(port: int, path: str, mode: int, etag: str, body: bytes, seconds: float,
           concurrency: int, max_requests: int) -> tuple[int, int, float, list[str]]:
    """``concurrency`` threads, a new connection per request, for ``seconds`` or
    ``max_requests``; returns (correct responses, errors, elapsed seconds, error samples)."""
    headers = {"If-None-Match": etag} if mode == 304 else {}
    lock = threading.Lock()
    counts = {"sent": 0, "ok": 0, "failed": 0}
    samples: list[str] = []
    start = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client() -> None:
        start.wait()
        ok = failed = 0
        while time.perf_counter() < deadline[0]:
            with lock:
                if counts["sent"] >= max_requests:
                    break
                counts["sent"] += 1
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if response.status != mode:
                    problem = f"status {response.status}"
                elif mode == 200 and data != body:
                    problem = f"body of {len(data)} bytes differs"
                elif mode == 304 and response.getheader("ETag") != etag:
                    problem = f"304 ETag {response.getheader('ETag')!r}"
                else:
                    problem = None
            except (OSError, http.client.HTTPException) as error:
                problem = f"{type(error).__name__}: {error}"
            finally:
                connection.close()
            if problem is None:
                ok += 1
            else:
                failed += 1
                if len(samples) < 3:
                    samples.append(problem)
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    elapsed = time.perf_counter() - began
    return counts["ok"], counts["failed"], elapsed, samples


# -- in-process profile ------------------------------------------------------------------------

# Stages of a request, as (label, file suffix, function): cumulative time per request.
_STAGES = [
    ("WSGI call, total", "flask/app.py", "wsgi_app"),
    ("request context + URL routing", "flask/ctx.py", "push"),
    ("before_request hooks", "flask/app.py", "preprocess_request"),
    ("view (incl. flask-smorest wrapper)", "flask/app.py", "dispatch_request"),
    ("  flask-smorest response wrapper", "flask_smorest/response.py", "wrapper"),
    ("  version_response", "app/http/views/documents.py", "version_response"),
    ("  PublishingService.version", "app/publishing/service.py", "version"),
    ("after_request hooks", "flask/app.py", "process_response"),
    ("  flask-cors after_request", "flask_cors/extension.py", "cors_after_request"),
    ("  apply_conditional_get", "app/http/conditional.py", "apply_conditional_get"),
    ("Response -> WSGI status/headers", "werkzeug/wrappers/response.py", "get_wsgi_response"),
    ("request context pop/teardown", "flask/ctx.py", "pop"),
]


def profile(path: str, requests: int = 2000, batches: int = 12) -> int:
    """Time and profile one request to ``path``: our app vs. the bare app, 200 and 304, called
    through WSGI directly (no sockets, no test client), as gunicorn's workers call them."""
    import cProfile  # noqa: PLC0415
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    from werkzeug.test import EnvironBuilder  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp(prefix="tech7-bench-profile-"))
    try:
        from app.cli import prepare  # noqa: PLC0415
        from app.composition import create_app  # noqa: PLC0415
        from app.core import config  # noqa: PLC0415
        from app.pki.keyring import ensure_keys  # noqa: PLC0415
        from bench.bare_app import create_app as create_bare  # noqa: PLC0415

        ensure_keys(tmp / "keys", config.SEED_FILE)
        ours = create_app({"DATA_DIR": str(tmp / "data"), "DATABASE_URL": "",
                           "KEYS_DIR": str(tmp / "keys")})
        with ours.app_context():
            prepare(ours)
        status, headers, body = _wsgi(ours, EnvironBuilder(path=path).get_environ())
        etag = _header(headers, "ETag")
        if status != 200 or not etag:
            print(f"GET {path} answered {status} (ETag {etag!r})", file=sys.stderr)
            return 2
        environs = {200: EnvironBuilder(path=path).get_environ(),
                    304: EnvironBuilder(path=path, headers={"If-None-Match": etag}).get_environ()}
        _, headers_304, _ = _wsgi(ours, environs[304])
        (tmp / "body.json").write_bytes(body)
        (tmp / "bare.json").write_text(json.dumps({
            "path": path, "body_file": str(tmp / "body.json"), "etag": etag,
            "headers_200": _stable(headers), "headers_304": _stable(headers_304)}))
        apps = {"ours": ours, "bare": create_bare(str(tmp / "bare.json"))}

        # Best of interleaved batches, µs per request: robust against a noisy machine.
        cost = {(name, mode): float("inf") for name in apps for mode in environs}
        for application in apps.values():
            for environ in environs.values():
                for _ in range(200):
                    _wsgi(application, environ)
        for _ in range(batches):
            for name, application in apps.items():
                for mode, environ in environs.items():
                    began = time.perf_counter()
                    for _ in range(requests // 4):
                        _wsgi(application, environ)
                    cost[name, mode] = min(cost[name, mode], (time.perf_counter() - began)
                                           / (requests // 4) * 1e6)
        for mode in (200, 304):
            print(f"in-process µs/request {mode}: ours={cost['ours', mode]:.1f} "
                  f"bare={cost['bare', mode]:.1f} "
                  f"bare/ours={cost['bare', mode] / cost['ours', mode]:.2f}")

        stats = {}
        for name, application in apps.items():
            for mode, environ in environs.items():
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(requests):
                    _wsgi(application, environ)
                profiler.disable()
                stats[name, mode] = pstats.Stats(profiler)
        for mode in (200, 304):
            print(f"\n=== where a {mode} goes: cumulative µs/request under cProfile "
                  f"(inflated ~2x, compare rows) ===")
            print(f"{'stage':40} {'ours':>8} {'bare':>8}")
            for label, suffix, function in _STAGES:
                row = [sum(entry[3] for key, entry in stats[name, mode].stats.items()
                           if key[0].endswith(suffix) and key[2] == function)
                       / requests * 1e6 for name in apps]
                print(f"{label:40} {row[0]:8.1f} {row[1]:8.1f}")
        for mode in (200, 304):
            out = io.StringIO()
            stats["ours", mode].stream = out
            stats["ours", mode].sort_stats("tottime").print_stats(20)
            print(f"\n=== ours {mode}, {requests} requests, top 20 by own time ===")
            print(out.getvalue().split("\n\n", 1)[-1].strip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _wsgi(application, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    import io  # noqa: PLC0415

    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    started: list = []
    chunks = application(environ, lambda status, headers, exc_info=None: started.extend(
        (status, headers)))
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return int(started[0].split()[0]), started[1], body


if __name__ == "__main__":
    sys.exit(main())
