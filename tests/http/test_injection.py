"""SQL and path injection strings in every kind of parameter: refused cleanly, nothing written."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.auth.service import ASSOCIATION, create_token

INJECTIONS = ["' OR '1'='1", "1; DROP TABLE versions; --", "../../etc/passwd", "..%2F..%2Fkeys",
              "%00", "bitkom/../numeum", "\" OR 1=1 --", "$(id)", "<script>x</script>"]


def _state(client):
    return (client.get("/v1/changes", query_string={"limit": 500}).get_data(),
            client.get("/v1/log/checkpoint").get_data(),
            client.get("/v1/trust").json["revocations"])


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_are_refused_and_write_nothing(app, client, operator, value):
    bitkom = {"Authorization": "Bearer " + create_token(app.extensions["tech7.db"],
                                                         role=ASSOCIATION, association="bitkom")}
    before = _state(client)
    segment = quote(value, safe="")
    responses = [
        client.get(f"/v1/recommendations/{segment}"),
        client.get(f"/v1/recommendations/{segment}/versions/1"),
        client.get(f"/v1/associations/{segment}/statements"),
        client.get(f"/v1/log/tile/{segment}"),
        client.get(f"/v1/trust/certificates/{segment}"),
        client.get("/v1/recommendations", query_string={"q": value, "tag": value}),
        client.get("/v1/statements", query_string={"association": value,
                                                   "recommendation": value}),
        client.get("/v1/changes", query_string={"since": value}),
        client.get("/v1/log/entries", query_string={"sha256": value}),
        client.get("/v1/recommendations", query_string={"as_of": value}),
        client.put(f"/v1/recommendations/{segment}/draft", json={"title": value},
                   headers={**operator, "If-None-Match": "*"}),
        client.post(f"/v1/recommendations/{segment}/draft/publish",
                    headers={**operator, "If-Match": value, "Idempotency-Key": value}),
        client.post("/v1/recommendations", json={"slug": value, "title": value, "priority": 1,
                                                 "text": [value]}, headers=operator),
        client.post("/v1/associations/bitkom/statements", headers=bitkom, json={
            "slug": value, "statement_type": "position", "title": value, "text": value,
            "addresses": [{"slug": value, "version": 1}]}),
        client.get("/v1/recommendations/key-risks", headers={"If-None-Match": value}),
        client.get("/v1/recommendations/key-risks/draft",
                   headers={"Authorization": f"Bearer {value}"}),
    ]
    for response in responses:
        assert response.status_code < 500, (response.request.path, response.get_data(as_text=True))
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json"
    assert _state(client) == before
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
    pytest.param("GET", "/v1/audit-events", {"query_string": {"since": PAST_9999}}, 422,
                 id="audit-since-past-9999"),
    pytest.param("POST", "/v1/tokens", {"json": {"scopes": ["publish"], "expires_at": PAST_9999}},
                 422, id="token-expires_at-past-9999"),
    pytest.param("GET", "/v1/log/tile/0/x001/x002/x003/x004/x005/x006/x007/000", {}, 404,
                 id="tile-index-past-64-bits"),
    pytest.param("GET", "/v1/log/tile/entries/x001/x002/x003/x004/x005/x006/x007/000", {}, 404,
                 id="entry-tile-index-past-64-bits"),
]


@pytest.mark.parametrize("method, path, arguments, status", OVERFLOWS)
def test_overflowing_dates_and_indices_are_refused_and_write_nothing(client, operator, method,
                                                                      path, arguments, status):
    before = _state(client)
    response = client.open(path, method=method, headers=operator, **arguments)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == {404: "/problems/not-found",
                                      422: "/problems/invalid-request"}[status]
    assert _state(client) == before
