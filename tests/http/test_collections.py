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


# --- q: words, with case and accents folded, in the database ------------------------------------

_TEXTS = {
    "bitkom": ("cafe-position", "position", "Café numérique",
               "Die Straße der Daten: KI-Verordnung, état de l'art."),
    "numeum": ("souverainete", "endorsement", "Souveraineté NUMÉRIQUE",
               "Numeum soutient l'IA de confiance (trustworthy AI)."),
    "techuk": ("data-bridges", "progress-report", "Data bridges",
               "Progress on cross-border data flows; the cafe meeting_notes are public."),
}

#: Each query and the statements it must find, on every engine: a document matches when each
#: word of q, folded, is one of its words (not a part of one).
_QUERIES = [
    ("café", ["bitkom", "techuk"]),           # accents folded on both sides
    ("CAFE", ["bitkom", "techuk"]),           # case folded
    ("numerique", ["bitkom", "numeum"]),
    ("strasse", ["bitkom"]),                  # ß folds to ss
    ("STRAßE daten", ["bitkom"]),             # every word must be there
    ("daten flows", []),
    ("ki", ["bitkom"]),                       # "KI-Verordnung" is the words ki, verordnung
    ("verord", []),                           # whole words only, no prefixes
    ("meeting", ["techuk"]),                  # "_" separates words
    ("meeting_notes", ["techuk"]),
    ("l'art", ["bitkom"]),                    # punctuation in q only separates its words
    ("trustworthy, AI!", ["numeum"]),
    ("bitkom", ["bitkom"]),                   # the association's slug is one of its strings
    ("position", ["bitkom"]),
    ("!!!", []),                              # no word at all: nothing
]


def _publish_statements(app, client):
    from app.auth.service import ASSOCIATION, create_token  # noqa: PLC0415

    for association, (slug, statement_type, title, text) in _TEXTS.items():
        token = create_token(app.extensions["tech7.db"], role=ASSOCIATION,
                             association=association)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"/v1/associations/{association}/statements"
        created = client.post(base, json={"slug": slug, "statement_type": statement_type,
                                          "title": title, "text": [text]}, headers=headers)
        assert created.status_code == 201, created.json
        published = client.post(f"{base}/{slug}/draft/publish",
                                headers={**headers, "If-Match": created.headers["ETag"]})
        assert published.status_code == 201, published.json


def test_q_matches_folded_words_alike_on_every_engine(app, client):
    _publish_statements(app, client)
    for q, expected in _QUERIES:
        found = client.get("/v1/statements", query_string={"q": q})
        assert found.status_code == 200, q
        assert [i["association"] for i in found.json["items"]] == expected, q
        assert found.json["total"] == len(expected), q


def test_q_in_sql_agrees_with_its_definition(app, client):
    from app.publishing.search import document_words, words  # noqa: PLC0415

    _publish_statements(app, client)
    documents = client.get("/v1/statements", query_string={"per_page": 100}).json["items"]
    for q, _ in _QUERIES:
        expected = [d["association"] for d in documents
                    if words(q) and set(words(q)) <= set(document_words(d).split())]
        found = client.get("/v1/statements", query_string={"q": q}).json["items"]
        assert [i["association"] for i in found] == expected, q


def test_filters_combine_with_q_and_pages(app, client):
    _publish_statements(app, client)
    both = client.get("/v1/statements", query_string={"q": "cafe", "statement_type": "position"})
    assert [i["association"] for i in both.json["items"]] == ["bitkom"]
    first = client.get("/v1/statements", query_string={"q": "cafe", "per_page": 1})
    assert first.json["total"] == 2 and [i["association"] for i in first.json["items"]] == \
        ["bitkom"]
    second = client.get(_links(first)["next"])
    assert [i["association"] for i in second.json["items"]] == ["techuk"]
    own = client.get("/v1/associations/numeum/statements", query_string={"q": "numerique"})
    assert [i["slug"] for i in own.json["items"]] == ["souverainete"]
