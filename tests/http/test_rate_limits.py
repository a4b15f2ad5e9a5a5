"""Rate limits: per client address when anonymous, per bearer token otherwise, across the API."""

from __future__ import annotations

import secrets
import socket

import pytest

from app.auth.service import OPERATOR, create_token, issue_token, revoke_token

DECLARATION = "/v1/declaration"
VERSION = "/v1/recommendations/sme-participation/versions/1"
DRAFT = "/v1/recommendations/key-risks/draft"
FIELDS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.fixture
def limited_app(make_app, databases, tmp_path):
    """Builds apps with the given settings; apps given ``database_url`` share that database."""
    built = []

    def build(database_url: str | None = None, **settings):
        application = make_app(database_url or databases.clone_template(), tmp_path, **settings)
        built.append(application)
        return application

    yield build
    for application in built:
        application.extensions["tech7.db"].engine.dispose()


def _get(client, url, address="192.0.2.1", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(url, headers=headers, environ_base={"REMOTE_ADDR": address})


def _remaining(response) -> int:
    assert response.status_code == 200, response.get_data(as_text=True)
    return int(response.headers["RateLimit-Remaining"])


def _operator_token(app) -> str:
    return create_token(app.extensions["tech7.db"], role=OPERATOR, label="rate limit test")


def test_responses_carry_the_ratelimit_fields(client):
    response = client.get(DECLARATION, headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["RateLimit-Limit"] == "100000"  # conftest's test limit
    assert response.headers["RateLimit-Remaining"] == "99999"
    assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
    assert "Retry-After" not in response.headers
    exposed = response.headers["Access-Control-Expose-Headers"].split(", ")
    assert set(FIELDS) <= set(exposed)


def test_the_openapi_document_is_limited(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert set(FIELDS) <= set(response.headers.keys())


def test_docs_assets_and_the_verify_page_cost_no_budget(limited_app):
    client = limited_app(RATELIMIT_ANONYMOUS="2 per minute").test_client()
    pages = ["/docs/", "/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/verify"]
    for _ in range(3):
        for url in pages:
            with _get(client, url) as response:  # closes the static file it streams
                assert response.status_code == 200, url
                assert not set(FIELDS) & set(response.headers.keys()), url
    assert _remaining(_get(client, DECLARATION)) == 1  # the API budget is whole


def test_anonymous_requests_share_one_bucket_per_client_address(limited_app):
    client = limited_app(RATELIMIT_ANONYMOUS="3 per minute").test_client()
    # One bucket for the whole API, not one per endpoint.
    assert [_remaining(_get(client, url)) for url in
            (DECLARATION, "/v1/priorities", "/openapi.json")] == [2, 1, 0]
    refused = _get(client, DECLARATION)
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert _remaining(_get(client, DECLARATION, address="192.0.2.2")) == 2
    assert _remaining(_get(client, DECLARATION, address="2001:db8::1")) == 2


def test_tokens_have_buckets_of_their_own_whatever_the_address(limited_app):
    app = limited_app(RATELIMIT_ANONYMOUS="5 per minute", RATELIMIT_AUTHENTICATED="2 per minute")
    client = app.test_client()
    token, other_token = _operator_token(app), _operator_token(app)
    first = _get(client, DECLARATION, token=token)
    assert first.headers["RateLimit-Limit"] == "2"
    assert _remaining(first) == 1
    # The bucket follows the token to another address, and leaves that address's bucket alone.
    assert _remaining(_get(client, DECLARATION, address="192.0.2.9", token=token)) == 0
    assert _get(client, DECLARATION, token=token).status_code == 429
    anonymous = _get(client, DECLARATION)
    assert anonymous.headers["RateLimit-Limit"] == "5"
    assert _remaining(anonymous) == 4
    assert _remaining(_get(client, DECLARATION, token=other_token)) == 1


@pytest.mark.parametrize("method, url", [("GET", "/v1/log/checkpoint"), ("POST", "/v1/timestamp"),
                                         ("POST", "/v1/verify"), ("GET", DECLARATION)])
def test_a_bearer_string_that_is_no_token_counts_as_anonymous(limited_app, method, url):
    # A random string per request would otherwise buy a fresh bucket each time, and public
    # endpoints would serve it under the higher authenticated limit.
    client = limited_app(RATELIMIT_ANONYMOUS="2 per minute").test_client()
    statuses = [client.open(url, method=method, environ_base={"REMOTE_ADDR": "192.0.2.1"},
                            headers={"Authorization": f"Bearer t7_{secrets.token_hex(8)}"})
                for _ in range(3)]
    assert [(r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"])
            for r in statuses] == [("2", "1"), ("2", "0"), ("2", "0")]
    assert statuses[2].status_code == 429, statuses[2].get_data(as_text=True)
    assert _get(client, DECLARATION).status_code == 429  # the address's bucket is spent


def test_an_unknown_or_revoked_token_gets_401_from_the_address_bucket(limited_app):
    app = limited_app(RATELIMIT_ANONYMOUS="3 per minute", RATELIMIT_AUTHENTICATED="50 per minute")
    client = app.test_client()
    db = app.extensions["tech7.db"]
    issued = issue_token(db, None, association=None, label="revoked")
    revoke_token(db, None, issued.row.id)
    token = issued.token
    statuses = []
    for bearer in ("t7_unknown", token, "t7_unknown"):
        response = client.put(DRAFT, json={}, environ_base={"REMOTE_ADDR": "192.0.2.1"},
                              headers={"Authorization": f"Bearer {bearer}", "If-None-Match": "*"})
        statuses.append((response.status_code, response.headers["RateLimit-Limit"],
                         response.headers["RateLimit-Remaining"]))
    assert statuses == [(401, "3", "2"), (401, "3", "1"), (401, "3", "0")]
    assert _get(client, DECLARATION).status_code == 429


def test_beyond_the_limit_is_a_429_problem_that_writes_nothing(limited_app):
    app = limited_app(RATELIMIT_AUTHENTICATED="2 per minute")
    client = app.test_client()
    token = _operator_token(app)
    body = client.get("/v1/recommendations/key-risks").json
    headers = {"Authorization": f"Bearer {token}", "If-None-Match": "*"}
    assert _remaining(_get(client, DECLARATION, token=token)) == 1
    assert _remaining(_get(client, DECLARATION, token=token)) == 0

    refused = client.put(DRAFT, json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "/problems/rate-limited"
    assert refused.json["status"] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Both count down to the same instant (read a moment apart, so perhaps a second apart).
    assert abs(int(refused.headers["Retry-After"]) - int(refused.headers["RateLimit-Reset"])) <= 1

    fresh = {"Authorization": f"Bearer {_operator_token(app)}"}
    assert client.get(DRAFT, headers=fresh).status_code == 404, "the refused PUT wrote nothing"
    assert client.put(DRAFT, json=body, headers={**fresh, "If-None-Match": "*"}).status_code == 201


def test_immutable_version_reads_are_not_limited(limited_app):
    client = limited_app(RATELIMIT_ANONYMOUS="1 per minute").test_client()
    # The first read goes through Flask (the version is not cached yet), the others through the
    # WSGI fast path: none of them counts, and all answer alike.
    for _ in range(3):
        response = _get(client, VERSION)
        assert response.status_code == 200
        assert not set(FIELDS) & set(response.headers.keys())
    assert _remaining(_get(client, DECLARATION)) == 0
    # With a query string a version URL is an ordinary request.
    assert _get(client, VERSION + "?x=1").status_code == 429


def test_disabled_limits_add_no_fields_and_refuse_nothing(limited_app):
    client = limited_app(RATELIMIT_ENABLED=False, RATELIMIT_ANONYMOUS="1 per minute").test_client()
    for _ in range(3):
        response = _get(client, DECLARATION)
        assert response.status_code == 200
        assert not set(FIELDS) & set(response.headers.keys())


def test_a_malformed_limit_refuses_to_start(limited_app):
    with pytest.raises(ValueError):
        limited_app(RATELIMIT_ANONYMOUS="lots per minute")


def test_unreachable_storage_falls_back_to_counting_in_memory(limited_app):
    # Nothing listens on port 1: the storage fails and each process counts on its own instead.
    client = limited_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1",
                         RATELIMIT_ANONYMOUS="2 per minute").test_client()
    assert [_remaining(_get(client, DECLARATION)) for _ in range(2)] == [1, 0]
    assert _get(client, DECLARATION).status_code == 429


def _redis_listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_listening(), reason="no Redis server on 127.0.0.1:6379")
def test_workers_share_counters_through_redis(limited_app):
    settings = {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
                "RATELIMIT_ANONYMOUS": "3 per minute"}
    first = limited_app(**settings)
    second = limited_app(first.config["DATABASE_URL"], **settings)
    workers = [first.test_client(), second.test_client()]
    # Redis outlives the test: an address of its own keeps this run's counters apart from others'.
    address = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    try:
        assert [_remaining(_get(workers[n % 2], DECLARATION, address))
                for n in range(3)] == [2, 1, 0]
        assert _get(workers[1], DECLARATION, address).status_code == 429
        assert _get(workers[0], DECLARATION, address).status_code == 429
    finally:
        for application in (first, second):
            for limiter in application.extensions["limiter"]:
                limiter.storage.storage.close()  # the Redis client's pooled connections
