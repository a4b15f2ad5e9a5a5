"""Collections: totals, filters, bounded pages with RFC 8288 links, validators on every GET."""

from __future__ import annotations

import re


def _links(response):
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers["Link"])}


def test_pages_have_totals_and_links(client):
    first = client.get("/v1/recommendations", query_string={"per_page": 5})
    assert first.json["total"] == 14
    assert len(first.json["items"]) == 5
    links = _links(first)
    assert set(links) == {"first", "next", "last"}
    assert "page=3" in links["last"] and "per_page=5" in links["last"]
    last = client.get(links["last"])
    assert len(last.json["items"]) == 4
    assert set(_links(last)) == {"first", "prev", "last"}
    seen = [i["slug"] for p in (1, 2, 3) for i in client.get(
        "/v1/recommendations", query_string={"per_page": 5, "page": p}).json["items"]]
    assert len(seen) == len(set(seen)) == 14
    assert seen[0] == "ethical-guidelines-and-standards", "document order"


def test_filters(client):
    by_priority = client.get("/v1/recommendations", query_string={"priority": 7}).json
    assert {i["priority"] for i in by_priority["items"]} == {7} and by_priority["total"] == 2
    sme = client.get("/v1/recommendations", query_string={"tag": "sme"}).json["items"]
    assert "sme-participation" in {i["slug"] for i in sme}
    assert all("sme" in i["tags"] for i in sme)
    search = client.get("/v1/recommendations", query_string={"q": "WATERMARKING"}).json
    assert [i["slug"] for i in search["items"]] == ["explainability-and-provenance"]
    assert client.get("/v1/associations", query_string={"q": "japan"}).json["total"] == 2
    assert client.get("/v1/associations").json["total"] == 10
    assert [i["number"] for i in client.get("/v1/priorities").json["items"]] == list(range(1, 8))


def test_every_get_has_an_etag_and_answers_304(client):
    for url in ["/v1/recommendations", "/v1/priorities?per_page=3", "/v1/changes",
                "/v1/declaration", "/v1/declaration/versions", "/v1"]:
        response = client.get(url)
        assert response.status_code == 200, url
        etag = response.headers["ETag"]
        cached = client.get(url, headers={"If-None-Match": etag})
        assert cached.status_code == 304, url
        assert cached.headers["ETag"] == etag
