"""Bad input gets a clear RFC 9457 problem, never a 500, and writes nothing."""

from __future__ import annotations

import pytest

DRAFT = "/v1/recommendations/key-risks/draft"


# The problem type of each status this file provokes.
PROBLEM_TYPES = {400: "/problems/invalid-json", 404: "/problems/not-found",
                 405: "/problems/method-not-allowed", 413: "/problems/content-too-large",
                 415: "/problems/unsupported-media-type", 422: "/problems/invalid-request"}


def _assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status
    assert body["type"] == PROBLEM_TYPES[status]
    assert body["title"] and body["detail"]
    return body


def test_unknown_route_and_method(client):
    _assert_problem(client.get("/v1/nothing-here"), 404)
    response = client.delete("/v1/recommendations/key-risks")
    _assert_problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}


@pytest.mark.parametrize("query, field", [
    ({"page": "0"}, "page"), ({"page": "99999999999999999999"}, "page"),
    ({"per_page": "1000"}, "per_page"), ({"per_page": "x"}, "per_page"),
    ({"as_of": "yesterday"}, "as_of"), ({"as_of": "2025-02-10T00:00:00"}, "as_of"),
    ({"priority": "-1"}, "priority"),
])
def test_bad_query_parameters_are_422_with_field_errors(client, query, field):
    body = _assert_problem(client.get("/v1/recommendations", query_string=query), 422)
    assert field in body["errors"]["query"]
    assert field in body["detail"]


def test_huge_path_integers_are_404_not_500(client):
    _assert_problem(client.get("/v1/recommendations/key-risks/versions/99999999999999999999"), 404)
    _assert_problem(client.get("/v1/recommendations/key-risks/versions/1/diff/99999999999"), 404)


@pytest.mark.parametrize("payload, content_type, status", [
    (b"{not json", "application/json", 400),
    (b"[1, 2]", "application/json", 422),
    (b'{"title": 7, "priority": "x", "text": "no"}', "application/json", 422),
    (b'{"title": "t", "priority": 3, "text": ["x"], "colour": "red"}', "application/json", 422),
    (b"title=t", "application/x-www-form-urlencoded", 415),
])
def test_bad_bodies_are_refused_and_write_nothing(client, operator, stored, payload,
                                                  content_type, status):
    before, recorded = stored(), stored.recorded()
    response = client.put(DRAFT, data=payload, headers={**operator, "If-None-Match": "*",
                                                        "Content-Type": content_type})
    _assert_problem(response, status)
    # Nothing stored (no draft, in particular) but the refusal's activity event.
    assert stored() == before
    assert stored.recorded() == recorded + 1
    assert client.get(DRAFT, headers=operator).status_code == 404


def test_unknown_fields_are_named(client, operator, stored):
    before = stored()
    body = client.get("/v1/recommendations/key-risks").json | {"colour": "red"}
    response = client.put(DRAFT, json=body, headers={**operator, "If-None-Match": "*"})
    problem = _assert_problem(response, 422)
    assert "colour" in problem["errors"]["json"]
    assert stored() == before


def test_oversized_body_is_413(app, operator, stored):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    client = app.test_client()
    before, recorded = stored(), stored.recorded()
    body = {"title": "x" * 4096, "priority": 3, "text": ["x"]}
    response = client.put(DRAFT, json=body, headers={**operator, "If-None-Match": "*"})
    _assert_problem(response, 413)
    assert stored() == before
    assert stored.recorded() == recorded + 1


def test_unknown_slugs_in_writes_are_404(client, operator, stored):
    before = stored()
    response = client.put("/v1/recommendations/nope/draft", json={"title": "t", "priority": 1,
                                                                  "text": ["x"]},
                          headers={**operator, "If-None-Match": "*"})
    _assert_problem(response, 404)
    _assert_problem(client.post("/v1/recommendations/nope/draft/publish",
                                headers={**operator, "If-Match": '"x"'}), 404)
    assert stored() == before


def test_cors_for_reads(client):
    response = client.get("/v1/recommendations", headers={"Origin": "https://app.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    preflight = client.options("/v1/recommendations/key-risks", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "If-None-Match"})
    assert preflight.status_code == 200
    assert "if-none-match" in preflight.headers["Access-Control-Allow-Headers"].lower()
