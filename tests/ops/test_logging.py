"""Request IDs on every response and log record; JSON log lines from the app and from gunicorn."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.ops.logging import JsonFormatter, RequestLog, accepted_request_id, install_json_logging
from tests.support.serve import free_port

VERSION = "/v1/recommendations/sme-participation/versions/1"


@pytest.fixture
def restored_logging():
    """Undo what installing JSON logging does to the process's root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# --- request IDs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc-123", "A.b_C-9", "x" * 128])
def test_a_well_formed_request_id_is_kept(given):
    assert accepted_request_id(given) == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "new\nline", "é", "a/b"])
def test_anything_else_gets_a_new_uuid4(given):
    made = accepted_request_id(given)
    assert len(made) == 32 and int(made, 16) >= 0
    assert made != accepted_request_id(given)


def test_every_response_echoes_the_request_id(app, client):
    client.get(VERSION)  # now cached: the next reads are answered by the WSGI fast path
    publishing = app.extensions["tech7.publishing"]
    etag = client.get(VERSION).headers["ETag"]
    cases = [
        ("GET", VERSION, {}, 200),                          # fast path
        ("HEAD", VERSION, {}, 200),                         # fast path
        ("GET", VERSION, {"If-None-Match": etag}, 304),     # fast path
        ("GET", "/v1/recommendations", {}, 200),            # Flask
        ("GET", "/v1/nowhere", {}, 404),                    # a problem
        ("DELETE", "/v1/changes", {}, 405),                 # a problem with Allow
        ("POST", "/v1/recommendations/key-risks/draft/publish", {}, 401),
    ]
    for method, url, headers, status in cases:
        sent = client.open(url, method=method, headers={**headers, "X-Request-ID": "trace-1.2_3"})
        assert sent.status_code == status, (method, url)
        assert sent.headers.getlist("X-Request-ID") == ["trace-1.2_3"], (method, url)
        made = client.open(url, method=method, headers=headers)
        assert len(made.headers["X-Request-ID"]) == 32, (method, url)
        forged = client.open(url, method=method, headers={**headers, "X-Request-ID": "a b"})
        assert forged.headers["X-Request-ID"] not in ("a b", made.headers["X-Request-ID"])
    publishing._versions.clear()
    flask_304 = client.get(VERSION, headers={"If-None-Match": etag, "X-Request-ID": "r304"})
    assert flask_304.status_code == 304 and flask_304.headers["X-Request-ID"] == "r304"


def test_browsers_may_read_the_request_id(client):
    client.get(VERSION)
    for url in (VERSION, "/v1/recommendations"):  # fast path, then Flask
        exposed = client.get(url, headers={"Origin": "https://app.example"}) \
            .headers["Access-Control-Expose-Headers"]
        assert "X-Request-ID" in [name.strip() for name in exposed.split(",")], url


# --- access log -----------------------------------------------------------------------------------


def test_one_access_line_per_request(app, client, operator, caplog):
    client.get(VERSION)
    caplog.set_level(logging.INFO, logger="tech7.access")
    client.get(VERSION, headers={"X-Request-ID": "fast"})
    client.get("/v1/nowhere", headers={"X-Request-ID": "missing"})
    client.delete("/v1/recommendations/key-risks/draft",
                  headers={**operator, "If-Match": '"stale"', "X-Request-ID": "who"})
    lines = [r for r in caplog.records if r.name == "tech7.access"]
    assert [(r.method, r.path, r.status, r.request_id) for r in lines] == [
        ("GET", VERSION, 200, "fast"), ("GET", "/v1/nowhere", 404, "missing"),
        ("DELETE", "/v1/recommendations/key-risks/draft", 412, "who")]
    assert all(isinstance(r.duration_ms, float) and r.duration_ms >= 0 for r in lines)
    assert [r.principal for r in lines] == ["anonymous", "anonymous", "operator"]


def test_a_request_that_raises_is_logged_as_500(caplog):
    def broken(environ, start_response):
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="tech7.access")
    with pytest.raises(RuntimeError):
        RequestLog(broken)({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
    (line,) = [r for r in caplog.records if r.name == "tech7.access"]
    assert (line.method, line.path, line.status) == ("GET", "/x", 500)


# --- JSON lines -----------------------------------------------------------------------------------


def test_records_are_single_json_lines_with_their_extra_fields():
    record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "failed %s", ("twice",), None)
    record.request_id = "r1"
    record.status = 503
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["time"].endswith("Z") and entry["level"] == "ERROR"
    assert (entry["logger"], entry["message"]) == ("app.x", "failed twice")
    assert (entry["request_id"], entry["status"]) == ("r1", 503)
    assert "ValueError: line one\nline two" in entry["exception"]


def test_app_logs_carry_the_request_id(make_app, databases, tmp_path, restored_logging):
    stream = io.StringIO()
    install_json_logging(stream)
    app = make_app(databases.clone_template(), tmp_path)

    def noisy():
        logging.getLogger("app.example").warning("inside the request")
        return "ok"

    app.add_url_rule("/noisy", view_func=noisy)
    answer = app.test_client().get("/noisy")
    logging.getLogger("app.example").warning("outside any request")
    app.extensions["tech7.db"].engine.dispose()

    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = [e for e in entries if e["message"] == "inside the request"]
    assert [e["request_id"] for e in inside] == [answer.headers["X-Request-ID"]]
    access = [e for e in entries if e["logger"] == "tech7.access"]
    assert [(e["path"], e["status"], e["request_id"]) for e in access] == [
        ("/noisy", 200, answer.headers["X-Request-ID"])]
    (outside,) = [e for e in entries if e["message"] == "outside any request"]
    assert "request_id" not in outside


def test_outside_tests_the_app_logs_json_to_stderr_once(make_app, databases, tmp_path, capsys,
                                                        restored_logging):
    apps = [make_app(databases.clone_template(), tmp_path, TESTING=False) for _ in range(2)]
    capsys.readouterr()
    apps[1].test_client().get("/healthz", headers={"X-Request-ID": "json-1"})
    for app in apps:
        app.extensions["tech7.db"].engine.dispose()
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["json-1"], lines


# --- gunicorn -------------------------------------------------------------------------------------


def test_everything_serve_writes_is_json_lines(keys_dir, tmp_path):
    """From migrations and seeding to gunicorn's worker boots and the access lines, every line
    ``serve`` writes, on stdout or stderr, is one JSON object."""
    port = free_port()
    env = {**os.environ, "TECH7_DATA_DIR": str(tmp_path / "data"), "TECH7_KEYS_DIR": str(keys_dir)}
    env.pop("TECH7_DATABASE_URL", None)
    command = [str(Path(sys.executable).with_name("tech7-registry")), "serve",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as errors:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=errors,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, "the server did not become ready"
                try:
                    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz",
                                                     headers={"X-Request-ID": "served-1"})
                    with urllib.request.urlopen(request, timeout=2) as response:
                        assert response.headers["X-Request-ID"] == "served-1"
                        break
                except OSError:
                    time.sleep(0.3)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    assert stdout.read_text() == ""
    lines = stderr.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    messages = [(e["logger"], e["message"]) for e in entries]
    assert any(logger.startswith("alembic") and "Running upgrade" in message
               for logger, message in messages), messages
    assert any("Published the TECH7 declaration" in message for _, message in messages)
    assert any(message.startswith(f"Serving on http://127.0.0.1:{port}/v1")
               for _, message in messages)
    assert any(logger == "gunicorn.error" and "Booting worker" in message
               for logger, message in messages)
    access = [e for e in entries if e["logger"] == "tech7.access"]
    assert {"method": "GET", "path": "/readyz", "status": 200, "request_id": "served-1",
            "principal": "anonymous"}.items() <= access[-1].items()
