"""Publishing content equal to the latest version is refused: a version must change something."""

from __future__ import annotations

DRAFT = "/v1/recommendations/key-risks/draft"


def test_a_draft_equal_to_the_latest_version_is_refused_and_kept(client, operator):
    served = client.get("/v1/recommendations/key-risks")
    body = served.json
    draft = client.put(DRAFT, json=body, headers={**operator, "If-None-Match": "*"})
    assert draft.status_code == 201
    refused = client.post(DRAFT + "/publish", headers={**operator, "If-Match": draft.headers["ETag"]})
    assert refused.status_code == 409, refused.json
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "/problems/unchanged-content"
    assert refused.json["version"] == 1
    assert client.get("/v1/recommendations/key-risks/versions").json["total"] == 1
    assert client.get(DRAFT, headers=operator).status_code == 200, "the draft is kept"
    # Any change at all makes it publishable.
    body["tags"] = [*body["tags"], "revised"]
    changed = client.put(DRAFT, json=body, headers={**operator, "If-Match": draft.headers["ETag"]})
    published = client.post(DRAFT + "/publish",
                            headers={**operator, "If-Match": changed.headers["ETag"]})
    assert published.status_code == 201, published.json
    assert published.json["version"] == 2


def test_a_statement_republished_unchanged_is_refused(app, client):
    from app.auth.service import ASSOCIATION, create_token  # noqa: PLC0415

    bitkom = {"Authorization": "Bearer " + create_token(app.extensions["tech7.db"],
                                                        role=ASSOCIATION, association="bitkom")}
    base = "/v1/associations/bitkom/statements"
    created = client.post(base, headers=bitkom, json={
        "slug": "same", "statement_type": "position", "title": "t", "text": ["t"]})
    assert created.status_code == 201, created.json
    draft = base + "/same/draft"
    first = client.post(draft + "/publish", headers={**bitkom, "If-Match": created.headers["ETag"]})
    assert first.status_code == 201, first.json
    again = client.put(draft, headers={**bitkom, "If-None-Match": "*"}, json={
        "statement_type": "position", "title": "t", "text": ["t"]})
    assert again.status_code == 201, again.json
    refused = client.post(draft + "/publish", headers={**bitkom, "If-Match": again.headers["ETag"]})
    assert refused.status_code == 409, refused.json
    assert refused.json["type"] == "/problems/unchanged-content"
