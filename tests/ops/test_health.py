"""/healthz answers while the process lives; /readyz only when database, keys and signer are usable."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from app.provenance import service
from tests.support.ops import unreachable_postgres_url

PROBLEM = "application/problem+json"


def _assert_not_ready(response, failing: list[str]) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["type"] == "/problems/service-unavailable"
    assert response.json["failing_checks"] == failing
    assert int(response.headers["Retry-After"]) > 0


def test_a_ready_app_answers_both(client):
    live = client.get("/healthz")
    assert live.status_code == 200 and live.json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready",
                          "checks": {"database": "ok", "keys": "ok", "signer": "ok"}}
    for response in (live, ready):
        assert response.headers["Cache-Control"] == "no-store"


def test_liveness_never_touches_the_database_and_readiness_names_it(make_app, keys_dir, tmp_path):
    app = make_app(unreachable_postgres_url(), tmp_path)
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    _assert_not_ready(client.get("/readyz"), ["database"])


def test_missing_keys_and_no_self_check_are_not_ready(make_app, databases, tmp_path):
    # Without start-up checks the app builds even though the key folder is empty.
    app = make_app(databases.clone_template(), tmp_path, KEYS_DIR=str(tmp_path / "no-keys"),
                   STARTUP_CHECKS=False)
    _assert_not_ready(app.test_client().get("/readyz"), ["keys", "signer"])
    app.extensions["tech7.db"].engine.dispose()


def test_ready_only_once_the_signer_checked_itself_in_this_process(make_app, databases, tmp_path,
                                                                   monkeypatch):
    app = make_app(databases.clone_template(), tmp_path, STARTUP_CHECKS=False)
    client = app.test_client()
    _assert_not_ready(client.get("/readyz"), ["signer"])

    app.extensions["tech7.provenance"].start()
    assert client.get("/readyz").status_code == 200

    # A forked worker inherits the flag but not the check: it must run its own. (Only the
    # service's view of the process id changes; the database pool would drop its connections.)
    monkeypatch.setattr(service, "os", SimpleNamespace(getpid=lambda: os.getpid() + 1))
    _assert_not_ready(client.get("/readyz"), ["signer"])
    app.extensions["tech7.db"].engine.dispose()


def test_health_endpoints_are_not_rate_limited(make_app, databases, tmp_path):
    app = make_app(databases.clone_template(), tmp_path, RATELIMIT_ANONYMOUS="2 per minute")
    client = app.test_client()
    for _ in range(5):
        for url in ("/healthz", "/readyz"):
            response = client.get(url)
            assert response.status_code == 200, url
            assert "RateLimit-Limit" not in response.headers
    # The limiter is active for the API itself.
    statuses = [client.get("/v1/recommendations").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    app.extensions["tech7.db"].engine.dispose()


@pytest.mark.parametrize("url", ["/healthz", "/readyz"])
def test_operator_endpoints_are_outside_the_public_api(client, url):
    assert url not in client.get("/openapi.json").json["paths"]
    assert client.get("/v1" + url).status_code == 404
    refused = client.post(url)
    assert refused.status_code == 405 and refused.mimetype == PROBLEM
    assert set(refused.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
