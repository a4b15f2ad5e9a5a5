"""Reading published versions: concept URLs, immutable version URLs, validators, history."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import rfc8785

VERSION_URL = "/v1/recommendations/sme-participation/versions/1"


def test_concept_serves_latest_with_content_location(client):
    response = client.get("/v1/recommendations/sme-participation")
    assert response.status_code == 200
    assert response.headers["Content-Location"] == VERSION_URL
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.json["title"] == "Support SME and startups participation in AI innovation"
    assert response.json["version"] == 1


def test_version_is_canonical_bytes_with_validators(client):
    response = client.get(VERSION_URL)
    body = response.get_data()
    assert body == rfc8785.dumps(json.loads(body))
    digest = hashlib.sha256(body).digest()
    assert response.headers["Content-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    assert response.headers["ETag"] == f'"{digest.hex()}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_if_none_match_gives_304_with_etag_for_strong_and_weak_tags(client):
    etag = client.get(VERSION_URL).headers["ETag"]
    for header in (etag, "W/" + etag, f'"other", {etag}', "*"):
        response = client.get(VERSION_URL, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.headers["ETag"] == etag
        assert response.get_data() == b""
    assert client.get(VERSION_URL, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_declaration_priority_and_association_share_the_shapes(client):
    for url, kind in [("/v1/declaration", "declaration"), ("/v1/priorities/7", "priority"),
                      ("/v1/associations/bitkom", "association")]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.json["kind"] == kind
        assert client.get(response.headers["Content-Location"]).get_data() == response.get_data()
    assert client.get("/v1/priorities/7").json["number"] == 7
    assert client.get("/v1/associations/bitkom").json["country"] == "Germany"


def test_unknown_documents_and_versions_are_404_problems(client):
    for url in ["/v1/recommendations/no-such-thing", "/v1/recommendations/sme-participation/versions/9",
                "/v1/priorities/99", "/v1/associations/nobody/versions"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "application/problem+json"
        assert response.json["status"] == 404 and response.json["detail"]


def test_versions_list_diff_and_as_of(client, operator):
    first = client.get(VERSION_URL)
    before_second = datetime.now(UTC)
    _publish_edit(client, operator, "sme-participation", {"tags": ["sme", "startups"]})
    listing = client.get("/v1/recommendations/sme-participation/versions").json
    assert [item["version"] for item in listing["items"]] == [1, 2]
    assert listing["items"][0]["sha256"] == hashlib.sha256(first.get_data()).hexdigest()
    patch = client.get("/v1/recommendations/sme-participation/versions/1/diff/2")
    assert patch.mimetype == "application/json-patch+json"
    ops = {(op["op"], op["path"]) for op in patch.json}
    assert ("replace", "/version") in ops and ("replace", "/published_at") in ops
    assert any(path.startswith("/tags") for _, path in ops)
    # The first version is unchanged, byte for byte.
    assert client.get(VERSION_URL).get_data() == first.get_data()
    at = (before_second - timedelta(milliseconds=1)).isoformat()
    assert client.get("/v1/recommendations/sme-participation",
                      query_string={"as_of": at}).json["version"] == 1
    assert client.get("/v1/recommendations/sme-participation").json["version"] == 2
    assert client.get("/v1/recommendations/sme-participation",
                      query_string={"as_of": "2001-01-01T00:00:00Z"}).status_code == 404
    old = client.get("/v1/recommendations", query_string={"as_of": at, "per_page": 100}).json
    assert next(i for i in old["items"] if i["slug"] == "sme-participation")["version"] == 1


def test_change_feed_in_publication_order_with_cursor(client, operator):
    first_page = client.get("/v1/changes", query_string={"limit": 5}).json
    assert [item["seq"] for item in first_page["items"]] == [1, 2, 3, 4, 5]
    assert first_page["items"][0]["kind"] == "declaration"
    everything = client.get("/v1/changes", query_string={"limit": 500}).json
    cursor = everything["next_cursor"]
    assert client.get("/v1/changes", query_string={"since": cursor}).json["items"] == []
    _publish_edit(client, operator, "key-risks", {"tags": ["risk"]})
    new = client.get("/v1/changes", query_string={"since": cursor}).json
    assert [(i["slug"], i["version"]) for i in new["items"]] == [("key-risks", 2)]
    assert new["items"][0]["href"] == "/v1/recommendations/key-risks/versions/2"
    for cursor in ("abc", "-1", "9863795683914", "2147483648"):
        assert client.get("/v1/changes", query_string={"since": cursor}).status_code == 422


def _publish_edit(client, operator, slug, changes):
    """GET the latest version, edit it, PUT it back as a draft, publish it."""
    body = client.get(f"/v1/recommendations/{slug}").json
    body.update(changes)
    put = client.put(f"/v1/recommendations/{slug}/draft", json=body,
                     headers={**operator, "If-None-Match": "*"})
    assert put.status_code == 201, put.json
    published = client.post(f"/v1/recommendations/{slug}/draft/publish",
                            headers={**operator, "If-Match": put.headers["ETag"]})
    assert published.status_code == 201, published.json
    return published
