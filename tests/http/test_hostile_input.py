"""Hostile input gets a clear 4xx problem, never a 500, and writes nothing but its activity entry.

Every JSON body is read by one strict loader (:mod:`app.core.canonical`); integers refuse
fractions; dates and log indices outside what Python and the database hold are refused;
``Idempotency-Key`` values are never cut; bodies over the limit are 413 however they arrive, and
a body that cannot be read is a 4xx; so are a URL or a header field over the application's limits.
"""

from __future__ import annotations

import io

import pytest

from app.auth.service import ASSOCIATION, create_token

DRAFT = "/v1/recommendations/key-risks/draft"
DEEP = "[" * 100_000 + "]" * 100_000

# Bodies the strict loader refuses, with the reason it gives.
HOSTILE_JSON = [
    pytest.param(DEEP, "too-deep", id="100000-deep"),
    pytest.param("[" * 65 + "]" * 65, "too-deep", id="65-deep"),
    pytest.param('{"label": "\\ud800", "scopes": ["publish"]}', "surrogate", id="lone-surrogate"),
    pytest.param('{"\\udfff": 1}', "surrogate", id="lone-surrogate-name"),
    pytest.param('{"scopes": ["publish"], "scopes": ["read-drafts"]}', "duplicate-member",
                 id="duplicate-member"),
    pytest.param('{"title": NaN}', "number", id="nan"),
    pytest.param('{"title": 1e400}', "number", id="overflowing-float"),
    pytest.param('{"title": 9007199254740993}', "number", id="inexact-integer"),
    pytest.param('{"title": ' + "9" * 5000 + "}", "number", id="5000-digit-integer"),
    pytest.param(b'{"title": "\xff"}', "encoding", id="not-utf-8"),
    pytest.param("{", "syntax", id="syntax"),
]

OUT_OF_RANGE_DATES = ["9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01",
                      "99999-01-01T00:00:00Z", "9999-12-31T24:00:00Z"]

HUGE_TILES = ["0/x001/x002/x003/x004/x005/x006/x007/000",
              "entries/x001/x002/x003/x004/x005/x006/x007/000",
              # As deep as a URL within MAX_URL_BYTES goes (deeper is 414).
              "0/" + "x999/" * 790 + "999", "0/x036/x028/x797/x018/x963/968",
              "0/x002/x147/x483/648", "entries/x008/x388/608"]


def _assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.json


@pytest.fixture
def state(client, operator):
    """What a refused request must leave unchanged, and the activity trail's length."""
    def take():
        return (client.get("/v1/changes", query_string={"limit": 500}).get_data(),
                client.get("/v1/log/checkpoint").get_data(),
                client.get(DRAFT, headers=operator).status_code,
                client.get("/v1/tokens", headers=operator).get_data(),
                client.get("/v1/associations/bitkom/ca").get_data())

    def recorded():
        return len(client.get("/v1/activity", query_string={"limit": 1000},
                              headers=operator).json["items"])
    take.recorded = recorded
    return take


@pytest.fixture
def bitkom(app):
    return {"Authorization": "Bearer " + create_token(app.extensions["tech7.db"],
                                                      role=ASSOCIATION, association="bitkom")}


def _json_writes(operator, bitkom):
    """(method, path, headers) of every write that takes a JSON body."""
    return [
        ("PUT", DRAFT, {**operator, "If-None-Match": "*"}),
        ("PATCH", DRAFT, {**operator, "If-Match": "*",
                          "Content-Type": "application/merge-patch+json"}),
        ("POST", "/v1/recommendations", operator),
        ("POST", "/v1/associations/bitkom/statements", bitkom),
        ("POST", "/v1/tokens", operator),
        ("POST", "/v1/associations/bitkom/ca", bitkom),
        ("POST", "/v1/exports", operator),
    ]


@pytest.mark.parametrize("body, reason", HOSTILE_JSON)
def test_every_json_body_goes_through_the_strict_loader(client, operator, bitkom, state,
                                                        body, reason):
    before, recorded = state(), state.recorded()
    writes = _json_writes(operator, bitkom)
    for method, path, headers in writes:
        response = client.open(path, method=method, data=body,
                               headers={"Content-Type": "application/json", **headers})
        problem = _assert_problem(response, 400)
        assert problem["type"] == "/problems/invalid-json", (path, problem)
        assert problem["reason"] == reason, (path, problem)
    assert state() == before
    # Each refusal is in the activity trail, and nothing else is.
    assert state.recorded() == recorded + len(writes)


def test_a_fraction_where_an_integer_belongs_is_refused_not_truncated(client, operator, state):
    body = {"title": "Key risks", "priority": 1.5, "text": ["x"]}
    before = state()
    problem = _assert_problem(client.put(DRAFT, json=body,
                                         headers={**operator, "If-None-Match": "*"}), 422)
    assert "priority" in problem["errors"]["json"]
    problem = _assert_problem(client.post("/v1/exports", headers=operator, json={
        "format": "json", "priority": 2.5}), 422)
    assert "priority" in problem["errors"]["json"]
    assert state() == before
    # A zero fraction is the integer itself, as JSON Schema's "integer" has it.
    made = client.put(DRAFT, json=body | {"priority": 2.0},
                      headers={**operator, "If-None-Match": "*"})
    assert made.status_code == 201 and made.json["priority"] == 2


@pytest.mark.parametrize("value", OUT_OF_RANGE_DATES)
def test_dates_out_of_range_are_422(client, operator, state, value):
    before, recorded = state(), state.recorded()
    for response in [client.get("/v1/declaration", query_string={"as_of": value}),
                     client.get("/v1/recommendations", query_string={"as_of": value}),
                     client.post("/v1/tokens", headers=operator,
                                 json={"scopes": ["publish"], "expires_at": value})]:
        _assert_problem(response, 422)
    assert state() == before
    assert state.recorded() == recorded + 1


def test_dates_at_the_edges_of_the_calendar_are_served(client, operator):
    assert client.get("/v1/declaration",
                      query_string={"as_of": "9999-12-31T23:59:59.999Z"}).status_code == 200
    assert client.get("/v1/declaration",
                      query_string={"as_of": "0001-01-01T00:00:00Z"}).status_code == 404
    minted = client.post("/v1/tokens", headers=operator,
                         json={"scopes": ["publish"], "expires_at": "9999-12-31T23:59:59Z"})
    assert minted.status_code == 201, minted.json


@pytest.mark.parametrize("path", HUGE_TILES)
def test_tile_indices_beyond_the_database_are_404(client, path):
    _assert_problem(client.get(f"/v1/log/tile/{path}"), 404)


def _publishable(client, operator):
    """A draft that differs from the latest version (whose title it revises), and its ETag."""
    draft = client.get("/v1/recommendations/key-risks").json
    body = {k: draft[k] for k in ("title", "priority", "text")}
    made = client.put(DRAFT, json=body | {"title": draft["title"] + ", revised"},
                      headers={**operator, "If-None-Match": "*"})
    assert made.status_code == 201
    return made.headers["ETag"]


def test_idempotency_keys_over_the_maximum_are_refused_not_cut(client, operator, state):
    etag = _publishable(client, operator)
    before, recorded = state(), state.recorded()
    for key in ["k" * 256, "k" * 7_000, ""]:
        problem = _assert_problem(client.post(DRAFT + "/publish", headers={
            **operator, "If-Match": etag, "Idempotency-Key": key}), 400)
        assert problem["type"] == "/problems/invalid-idempotency-key"
    # A key longer than a header field may be is refused before the application reads it.
    problem = _assert_problem(client.post(DRAFT + "/publish", headers={
        **operator, "If-Match": etag, "Idempotency-Key": "k" * 10_000}), 431)
    assert problem["type"] == "/problems/request-header-fields-too-large"
    assert state() == before
    assert state.recorded() == recorded + 3
    published = client.post(DRAFT + "/publish", headers={**operator, "If-Match": etag,
                                                         "Idempotency-Key": "k" * 255})
    assert published.status_code == 201 and "Idempotent-Replayed" not in published.headers


def test_keys_sharing_a_255_character_prefix_never_replay_each_other(client, operator):
    prefix = "p" * 254
    first = client.post(DRAFT + "/publish", headers={
        **operator, "If-Match": _publishable(client, operator), "Idempotency-Key": prefix + "a"})
    assert first.status_code == 201
    second = client.post(DRAFT + "/publish", headers={
        **operator, "If-Match": _publishable(client, operator), "Idempotency-Key": prefix + "b"})
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.json["version"] == first.json["version"] + 1
    # A key longer than the maximum never reaches the store, so it cannot replay the first.
    third = client.post(DRAFT + "/publish", headers={
        **operator, "If-Match": _publishable(client, operator),
        "Idempotency-Key": prefix + "a" + "tail"})
    assert third.status_code == 400
    assert client.get(DRAFT, headers=operator).status_code == 200


def _chunked(client, path, body: bytes, headers, method="PUT"):
    """A body sent as gunicorn passes a chunked request on: no Content-Length, and the server
    vouching that the stream ends (``wsgi.input_terminated``)."""
    return client.open(path, method=method, input_stream=io.BytesIO(body),
                       headers={"Transfer-Encoding": "chunked",
                                "Content-Type": "application/json", **headers},
                       environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_413(app, client, operator, state):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    before, recorded = state(), state.recorded()
    big = b'{"title": "' + b"x" * 4096 + b'", "priority": 3, "text": ["x"]}'
    for body in [big, b"x" * 2049]:
        _assert_problem(_chunked(client, DRAFT, body, {**operator, "If-None-Match": "*"}), 413)
    assert state() == before
    assert state.recorded() == recorded + 2
    exact = b'{"title": "t", "priority": 3, "text": ["x"]}'
    exact = exact[:-1] + b" " * (2048 - len(exact)) + b"}"
    made = _chunked(client, DRAFT, exact, {**operator, "If-None-Match": "*"})
    assert made.status_code == 201, made.get_data(as_text=True)


TIMESTAMP_QUERY = {"Content-Type": "application/timestamp-query"}


def test_every_body_reading_path_is_held_to_the_limit(client):
    # The time-stamping endpoint reads its DER body itself, not through webargs.
    response = client.post("/v1/timestamp", input_stream=io.BytesIO(b"x" * (2 * 1024 * 1024)),
                           headers={"Transfer-Encoding": "chunked", **TIMESTAMP_QUERY},
                           environ_overrides={"wsgi.input_terminated": True})
    assert _assert_problem(response, 413)["type"] == "/problems/content-too-large"


def test_a_chunked_body_the_server_does_not_end_is_411_not_read_as_empty(client, operator,
                                                                         stored):
    """Without ``wsgi.input_terminated`` werkzeug would read a chunked body as no body at all:
    an empty time-stamp query, answered 200 with a rejection, or a draft without its fields."""
    before, recorded = stored(), stored.recorded()
    for path, method, headers in [("/v1/timestamp", "POST", TIMESTAMP_QUERY),
                                  (DRAFT, "PUT", {**operator, "If-None-Match": "*",
                                                  "Content-Type": "application/json"})]:
        response = client.open(path, method=method, data=b"x" * (2 * 1024 * 1024),
                               headers={"Transfer-Encoding": "chunked", **headers})
        assert _assert_problem(response, 411)["type"] == "/problems/length-required"
    assert stored() == before
    assert stored.recorded() == recorded + 1


class _BrokenChunks(io.BytesIO):
    """An input stream that fails as gunicorn's does on a chunk size line that does not parse
    (with an exception type of its own)."""

    def read(self, size=-1):
        raise RuntimeError("Invalid chunk size: b'zz'")


def test_a_body_the_server_cannot_read_is_400_unreadable_body(client, operator, stored):
    before, recorded = stored(), stored.recorded()
    for path, method, headers in [("/v1/timestamp", "POST", TIMESTAMP_QUERY),
                                  (DRAFT, "PUT", {**operator, "If-None-Match": "*",
                                                  "Content-Type": "application/json"})]:
        response = client.open(path, method=method, input_stream=_BrokenChunks(),
                               headers={"Transfer-Encoding": "chunked", **headers},
                               environ_overrides={"wsgi.input_terminated": True})
        assert _assert_problem(response, 400)["type"] == "/problems/unreadable-body"
    assert stored() == before
    assert stored.recorded() == recorded + 1


def test_a_url_or_header_field_over_the_limits_is_a_problem(app, client):
    # The defaults; tests/test_serve.py checks them against gunicorn's own limits.
    assert (app.config["MAX_URL_BYTES"], app.config["MAX_HEADER_BYTES"]) == (4000, 8000)
    path = "/v1/recommendations/"
    assert _assert_problem(client.get(path + "a" * (4000 - len(path))), 404)["type"] \
        == "/problems/not-found"
    problem = _assert_problem(client.get(path + "a" * (4001 - len(path))), 414)
    assert problem["type"] == "/problems/uri-too-long"
    # Versions the fast path serves are held to the same limits.
    assert client.get("/v1/recommendations/key-risks/versions/1").status_code == 200
    for target in ["/v1/recommendations/key-risks/versions/1", "/v1/nothing"]:
        _assert_problem(client.get(target + "?" + "a" * 4000), 414)
    # "X-Filler: " is 10 bytes of the field line.
    assert client.get("/v1/recommendations/key-risks/versions/1",
                      headers={"X-Filler": "a" * 7990}).status_code == 200
    for target in ["/v1/recommendations/key-risks/versions/1", "/v1/recommendations"]:
        problem = _assert_problem(client.get(target, headers={"X-Filler": "a" * 7991}), 431)
        assert problem["type"] == "/problems/request-header-fields-too-large"
        assert "X-Filler" in problem["detail"]
