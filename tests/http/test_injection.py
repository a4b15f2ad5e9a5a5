"""SQL and path injection strings in every kind of parameter: refused cleanly, nothing written."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.auth.service import ASSOCIATION, create_token

INJECTIONS = ["' OR '1'='1", "1; DROP TABLE versions; --", "../../etc/passwd", "..%2F..%2Fkeys",
              "%00", "bitkom/../numeum", "\" OR 1=1 --", "$(id)", "<script>x</script>"]

NOT_FOUND, INVALID, UNAUTHENTICATED = ((404, "/problems/not-found"),
                                      (422, "/problems/invalid-request"),
                                      (401, "/problems/unauthenticated"))


def _requests(operator, bitkom, value):
    """(method, path, arguments, expected) of every request the injection string goes into.

    ``expected`` is the exact answer: 200 (the value is harmless there, e.g. an unknown
    If-None-Match), or a problem's (status, type). A string in a path segment is sent
    percent-encoded; one holding a "/" (once decoded) takes the path out of its route, so that
    request is a 404 whatever the route checks.
    """
    segment = quote(value, safe="")

    def in_path(expected):
        return NOT_FOUND if "/" in value else expected

    return [
        ("GET", f"/v1/recommendations/{segment}", {}, NOT_FOUND),
        ("GET", f"/v1/recommendations/{segment}/versions/1", {}, NOT_FOUND),
        ("GET", f"/v1/associations/{segment}/statements", {}, NOT_FOUND),
        ("GET", f"/v1/log/tile/{segment}", {}, NOT_FOUND),
        ("GET", f"/v1/trust/certificates/{segment}", {}, in_path(INVALID)),
        ("GET", "/v1/statements", {"query_string": {"association": value,
                                                    "recommendation": value}}, INVALID),
        ("GET", "/v1/changes", {"query_string": {"since": value}}, INVALID),
        ("GET", "/v1/log/entries", {"query_string": {"sha256": value}}, INVALID),
        ("GET", "/v1/recommendations", {"query_string": {"as_of": value}}, INVALID),
        ("PUT", f"/v1/recommendations/{segment}/draft", {
            "json": {"title": value}, "headers": {**operator, "If-None-Match": "*"}},
         in_path(INVALID)),
        ("POST", f"/v1/recommendations/{segment}/draft/publish", {
            "headers": {**operator, "If-Match": value, "Idempotency-Key": value}}, NOT_FOUND),
        ("POST", "/v1/recommendations", {"headers": operator, "json": {
            "slug": value, "title": value, "priority": 1, "text": [value]}}, INVALID),
        ("POST", "/v1/associations/bitkom/statements", {"headers": bitkom, "json": {
            "slug": value, "statement_type": "position", "title": value, "text": [value],
            "addresses": [{"slug": value, "version": 1}]}}, INVALID),
        ("GET", "/v1/recommendations/key-risks", {"headers": {"If-None-Match": value}}, 200),
        ("GET", "/v1/recommendations/key-risks/draft",
         {"headers": {"Authorization": f"Bearer {value}"}}, UNAUTHENTICATED),
    ]


def _routed_away(value, path):
    return "/" in value and quote(value, safe="") in path


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_are_refused_and_write_nothing(app, client, operator, stored, value):
    bitkom = {"Authorization": "Bearer " + create_token(app.extensions["tech7.db"],
                                                         role=ASSOCIATION, association="bitkom")}
    before, recorded = stored(), stored.recorded()
    requests = _requests(operator, bitkom, value)
    for method, path, arguments, expected in requests:
        response = client.open(path, method=method, **arguments)
        where = (method, path, response.get_data(as_text=True))
        if expected == 200:
            assert response.status_code == 200, where
            continue
        status, problem = expected
        assert response.status_code == status, where
        assert response.mimetype == "application/problem+json", where
        assert response.json["type"] == problem, where
    # The injected search matched nothing rather than everything.
    search = client.get("/v1/recommendations", query_string={"q": value, "tag": value})
    assert search.status_code == 200 and search.json["total"] == 0
    assert stored() == before
    # Each refused write that reached its view is recorded in the activity trail, and that is all that was written.
    reached = [path for method, path, _, _ in requests
               if method != "GET" and not _routed_away(value, path)]
    assert stored.recorded() == recorded + len(reached)
    # The declaration is still whole: the injected SQL ran nowhere.
    assert client.get("/v1/recommendations").json["total"] == 14


# Inputs that once reached Python's or the database's limits (500s), each with what it gets now:
# an instant that leaves years 1-9999 once in UTC is 422, a tile index past 64 bits is 404.
PAST_9999, BEFORE_0001 = "9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01"
OVERFLOWS = [
    pytest.param("GET", "/v1/declaration", {"query_string": {"as_of": PAST_9999}}, 422,
                 id="as_of-past-9999"),
    pytest.param("GET", "/v1/declaration", {"query_string": {"as_of": BEFORE_0001}}, 422,
                 id="as_of-before-0001"),
    pytest.param("GET", "/v1/activity", {"query_string": {"since": 2**31}}, 422,
                 id="activity-cursor-past-32-bits"),
    pytest.param("POST", "/v1/tokens", {"json": {"scopes": ["publish"], "expires_at": PAST_9999}},
                 422, id="token-expires_at-past-9999"),
    pytest.param("GET", "/v1/log/tile/0/x001/x002/x003/x004/x005/x006/x007/000", {}, 404,
                 id="tile-index-past-64-bits"),
    pytest.param("GET", "/v1/log/tile/entries/x001/x002/x003/x004/x005/x006/x007/000", {}, 404,
                 id="entry-tile-index-past-64-bits"),
]


@pytest.mark.parametrize("method, path, arguments, status", OVERFLOWS)
def test_overflowing_dates_and_indices_are_refused_and_write_nothing(client, operator, stored,
                                                                      method, path, arguments,
                                                                      status):
    before, recorded = stored(), stored.recorded()
    response = client.open(path, method=method, headers=operator, **arguments)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == {404: "/problems/not-found",
                                      422: "/problems/invalid-request"}[status]
    assert stored() == before
    assert stored.recorded() == recorded + (method != "GET")
