"""One set of conventions across the API: collections, links, times, JSON style, cursors, text.

Each test walks every response of its kind rather than a sample, and the collection test takes
its list of collections from the OpenAPI document, so a collection added later is held to the
same rules or the test fails.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app.auth.service import ASSOCIATION, create_token
from tests.support.own_pki import make_own_pki

#: RFC 3339 in UTC with milliseconds and a Z: the one time format.
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
#: Anything that looks like the start of an ISO 8601 / RFC 3339 instant, inside any string.
TIME_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}[^\s,;)]*")

STATEMENT = "/v1/associations/bitkom/statements/sme-support"


def _links(response) -> dict[str, str]:
    return {rel: url for url, rel in
            re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers.get("Link", ""))}


@pytest.fixture
def bitkom(app) -> dict[str, str]:
    token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def busy(client, operator, bitkom):
    """A registry with a published statement, a second recommendation version, an own CA
    registered, some refused writes in the activity trail, and a verification."""
    created = client.post("/v1/associations/bitkom/statements", headers=bitkom, json={
        "slug": "sme-support", "statement_type": "endorsement", "title": "SMEs",
        "text": ["Bitkom supports it.", "Second paragraph."],
        "addresses": [{"slug": "sme-participation", "version": 1}]})
    assert created.status_code == 201, created.json
    published = client.post(STATEMENT + "/draft/publish",
                            headers={**bitkom, "If-Match": created.headers["ETag"]})
    assert published.status_code == 201, published.json
    body = client.get("/v1/recommendations/key-risks").json | {"tags": ["risk"]}
    put = client.put("/v1/recommendations/key-risks/draft", json=body,
                     headers={**operator, "If-None-Match": "*"})
    assert client.post("/v1/recommendations/key-risks/draft/publish", headers={
        **operator, "If-Match": put.headers["ETag"]}).status_code == 201
    client.delete("/v1/recommendations/key-risks/draft")  # 401, recorded
    return published.json


def _collection_urls(client, busy) -> dict[str, str]:
    """A concrete URL for every documented collection (by OpenAPI path)."""
    sha256 = client.get("/v1/recommendations/key-risks/versions").json["items"][0]["sha256"]
    return {
        "/v1/declaration/versions": "/v1/declaration/versions",
        "/v1/priorities": "/v1/priorities?per_page=3",
        "/v1/priorities/{slug}/versions": "/v1/priorities/3/versions",
        "/v1/recommendations": "/v1/recommendations?per_page=4",
        "/v1/recommendations/{slug}/versions": "/v1/recommendations/key-risks/versions?per_page=1",
        "/v1/associations": "/v1/associations?per_page=4",
        "/v1/associations/{slug}/versions": "/v1/associations/bitkom/versions",
        "/v1/statements": "/v1/statements",
        "/v1/associations/{association}/statements": "/v1/associations/bitkom/statements",
        "/v1/associations/{association}/statements/{slug}/versions": STATEMENT + "/versions",
        "/v1/associations/{association}/ca": "/v1/associations/bitkom/ca",
        "/v1/changes": "/v1/changes?since=0&limit=7",
        "/v1/activity": "/v1/activity?since=0&limit=2",
        "/v1/tokens": "/v1/tokens?per_page=1",
        "/v1/log/entries": f"/v1/log/entries?sha256={sha256}",
        "/v1/log/witnesses": "/v1/log/witnesses",
    }


def _documented_collections(client) -> set[str]:
    """Every GET path whose 200 answer is documented as an object with ``items``."""
    document = client.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    found = set()
    for path, operations in document["paths"].items():
        content = operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        if "items" in schema.get("properties", {}):
            found.add(path)
    return found


def test_every_collection_has_items_links_a_total_or_cursor_and_item_hrefs(app, client, operator,
                                                                            busy):
    urls = _collection_urls(client, busy)
    assert _documented_collections(client) == set(urls), "a collection this test does not know"
    # The CA collection needs a CA in it; registering one needs only the association's token.
    bitkom = {"Authorization": "Bearer " + create_token(app.extensions["tech7.db"],
                                                        role=ASSOCIATION, association="bitkom")}
    registered = client.post("/v1/associations/bitkom/ca", data=make_own_pki("Bitkom").ca_pem, headers={
        **bitkom, "Content-Type": "application/x-pem-file"})
    assert registered.status_code == 201, registered.json
    for documented, url in urls.items():
        response = client.get(url, headers=operator)
        assert response.status_code == 200, (url, response.json)
        body = response.json
        assert isinstance(body["items"], list), url
        links = _links(response)
        if "next_cursor" in body:  # a feed: cursor paging, oldest first
            assert isinstance(body["next_cursor"], int) and "total" not in body, url
            assert {"first", "next"} <= set(links), url
            assert parse_qs(urlsplit(links["next"]).query)["since"] == [str(body["next_cursor"])]
        else:  # page-number paging with a total
            assert isinstance(body["total"], int) and body["total"] >= len(body["items"]), url
            assert {"first", "last"} <= set(links), url
            assert client.get(links["last"], headers=operator).status_code == 200, url
            if body["total"] > len(body["items"]):
                assert "next" in links, url
                assert client.get(links["next"], headers=operator).json["items"], url
        if documented != "/v1/log/witnesses":  # no witness policy here: tests/ledger covers it
            assert body["items"], f"{url} has nothing to check"
        for item in body["items"]:
            assert isinstance(item.get("href"), str) and item["href"].startswith("/v1/"), (url, item)
            target = client.get(item["href"], headers=operator)
            assert target.status_code == 200, (url, item["href"])
            if documented in ("/v1/activity", "/v1/tokens", "/v1/log/entries",
                              "/v1/associations/{association}/ca"):
                assert target.json == item, item["href"]  # the item is its own resource


def test_feeds_page_oldest_first_by_cursor(client, operator, busy):
    for feed, position in (("/v1/changes", "seq"), ("/v1/activity", "id")):
        everything = client.get(feed, query_string={"limit": 500}, headers=operator).json["items"]
        assert len(everything) >= 3, feed
        positions = [item[position] for item in everything]
        assert positions == sorted(positions) and all(isinstance(p, int) for p in positions)
        seen, since = [], 0
        for _ in range(len(everything) + 1):
            page = client.get(feed, query_string={"since": since, "limit": 2},
                              headers=operator).json
            if not page["items"]:
                assert page["next_cursor"] == since
                break
            seen += page["items"]
            since = page["next_cursor"]
            assert since == page["items"][-1][position]
        assert seen == everything, feed
        # A cursor is an integer in the query too; anything else is refused.
        assert client.get(feed, query_string={"since": "abc"}, headers=operator).status_code == 422
        assert client.get(feed, query_string={"since": -1}, headers=operator).status_code == 422


def test_change_feed_items_name_the_document_its_slug_and_association(client, busy):
    items = client.get("/v1/changes", query_string={"limit": 500}).json["items"]
    statement = next(item for item in items if item["kind"] == "statement")
    assert statement["slug"] == "sme-support" and statement["association"] == "bitkom"
    assert statement["document"] == STATEMENT
    assert statement["href"] == STATEMENT + "/versions/1"
    assert client.get(statement["document"]).json == busy
    recommendation = next(item for item in items if item["kind"] == "recommendation")
    assert recommendation["association"] is None
    assert recommendation["document"] == "/v1/recommendations/" + recommendation["slug"]
    member = next(item for item in items if item["kind"] == "association")
    assert member["document"] == f"/v1/associations/{member['slug']}"
    for item in items:
        assert item["slug"] == client.get(item["href"]).json["slug"]


def test_the_entry_point_links_every_entry_point(client):
    response = client.get("/v1")
    links = response.json["links"]
    assert {"declaration", "priorities", "recommendations", "associations", "statements",
            "changes", "activity", "tokens", "trust", "log", "exports", "verify", "timestamp",
            "docs", "openapi"} <= set(links)
    paths = client.get("/openapi.json").json["paths"]
    for name, link in links.items():
        assert set(link) == {"href", "method", "title"}, name
        if link["method"] == "GET":
            assert client.get(link["href"]).status_code in (200, 401), name
        else:
            assert link["method"].lower() in paths[link["href"]], name


def _json_responses(client, operator, busy) -> list[tuple[str, bytes, str]]:
    """(what, body, media type) of every kind of JSON response the API gives."""
    urls = [url for url in _collection_urls(client, busy).values()]
    urls += ["/v1", "/v1/trust", "/v1/trust/c2pa-settings.json", "/v1/declaration",
             STATEMENT, "/v1/recommendations/key-risks/versions/1/diff/2", "/v1/log/entries/0",
             "/v1/tokens/1", "/v1/activity/1", "/openapi.json", "/healthz", "/readyz",
             "/v1/nowhere", "/v1/recommendations?per_page=0", STATEMENT + "/draft"]
    trust = client.get("/v1/trust").json
    urls.append(trust["certificates"][0]["href"])
    responses = [(url, client.get(url, headers=operator)) for url in urls]
    version = client.get(STATEMENT + "/versions/1")
    manifest = client.get(STATEMENT + "/versions/1/manifest")
    responses.append(("POST /v1/verify", client.post("/v1/verify", data={
        "file": (io.BytesIO(version.get_data()), "v1.json"),
        "manifest": (io.BytesIO(manifest.get_data()), "v1.c2pa")})))
    responses.append(("POST /v1/tokens", client.post("/v1/tokens", headers=operator,
                                                     json={"scopes": ["publish"]})))
    responses.append(("DELETE /v1/changes", client.delete("/v1/changes")))
    return [(what, r.get_data(), r.mimetype) for what, r in responses]


def test_every_non_canonical_json_response_is_compact(client, operator, busy):
    for what, body, mimetype in _json_responses(client, operator, busy):
        assert mimetype.endswith("json"), (what, mimetype)
        if what in ("/v1/declaration", STATEMENT):
            continue  # a concept URL serves its latest version's canonical bytes
        text = body.decode("utf-8")
        value = json.loads(text)
        assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n", what
    # Versions are their canonical RFC 8785 bytes, untouched.
    version = client.get(STATEMENT + "/versions/1").get_data()
    assert not version.endswith(b"\n") and b": " not in version


def _strings(value, where=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


def test_every_time_is_rfc3339_utc_with_milliseconds(client, operator, busy):
    checked = 0
    for what, body, _ in _json_responses(client, operator, busy):
        if what == "/openapi.json":
            continue  # its examples are prose
        for where, value in _strings(json.loads(body)):
            for found in TIME_LIKE.findall(value):
                assert TIME.match(found.rstrip(".")), f"{what} {where}: {value!r}"
                checked += 1
    assert checked > 50
    # The verification summary says when it was signed, in the same format.
    version = client.get(STATEMENT + "/versions/1")
    manifest = client.get(STATEMENT + "/versions/1/manifest")
    report = client.post("/v1/verify", data={
        "file": (io.BytesIO(version.get_data()), "v1.json"),
        "manifest": (io.BytesIO(manifest.get_data()), "v1.c2pa")}).json
    assert TIME.match(report["signed_at"]) and report["signed_at"] in report["summary"]
    assert "+00:00" not in json.dumps(report)


def test_links_are_named_href_everywhere(client, operator, busy):
    def keys(value):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key
                yield from keys(item)
        elif isinstance(value, list):
            for item in value:
                yield from keys(item)

    for what, body, _ in _json_responses(client, operator, busy):
        if what == "/openapi.json":
            continue
        assert not {"url", "link", "self", "uri"} & set(keys(json.loads(body))), what


def test_text_is_a_list_of_paragraphs_in_every_kind(client, bitkom, busy):
    for url in ("/v1/priorities/1", "/v1/recommendations/key-risks", STATEMENT):
        text = client.get(url).json["text"]
        assert isinstance(text, list) and all(isinstance(p, str) for p in text), url
    assert busy["text"] == ["Bitkom supports it.", "Second paragraph."]
    for refused in ("One string.", [], [""], ["ok", 3]):
        response = client.post("/v1/associations/bitkom/statements", headers=bitkom, json={
            "slug": "refused", "statement_type": "position", "title": "t", "text": refused})
        assert response.status_code == 422, refused
        assert "text" in response.json["errors"]["json"], refused


#: Names the API once had for two concepts: the activity trail of writes ("audit" is the
#: auditor's word) and own-key publishing.
RETIRED_NAMES = ("audit-events", "read-audit", "audit trail", "audit event", "signed-versions",
                 "signed-version", "signed_version", "byo", "own-keys", "own_keys",
                 "non-custodial")


def test_each_concept_has_one_public_name(client, operator):
    document = client.get("/openapi.json").get_data(as_text=True).lower()
    for retired in RETIRED_NAMES:
        assert retired not in document, retired
    paths = client.get("/openapi.json").json["paths"]
    assert {"/v1/activity", "/v1/activity/{event_id}",
            "/v1/associations/{association}/statements/{slug}/own-key-versions"} <= set(paths)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for retired in RETIRED_NAMES:
        assert retired not in readme.lower(), retired
    refused = client.post("/v1/tokens", headers=operator, json={"scopes": ["read-audit"]})
    assert refused.status_code == 422 and "read-activity" in refused.get_data(as_text=True)
