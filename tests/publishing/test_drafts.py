"""Editing and publishing: drafts under optimistic locking, publish, idempotency, withdrawal."""

from __future__ import annotations

import pytest

DRAFT = "/v1/recommendations/key-risks/draft"
PUBLISH = DRAFT + "/publish"


def _version_count(client, slug="key-risks"):
    return client.get(f"/v1/recommendations/{slug}/versions").json["total"]


def _create_draft(client, operator, **changes):
    body = client.get("/v1/recommendations/key-risks").json
    body.update(changes)
    response = client.put(DRAFT, json=body, headers={**operator, "If-None-Match": "*"})
    assert response.status_code == 201, response.json
    return response


def test_served_body_round_trips_into_a_draft(client, operator):
    served = client.get("/v1/recommendations/key-risks").json
    draft = _create_draft(client, operator)
    assert draft.headers["Location"] == DRAFT
    content = {k: v for k, v in draft.json.items() if k not in ("based_on_version", "updated_at")}
    assert content == {k: v for k, v in served.items() if k not in ("version", "published_at")}
    assert draft.json["based_on_version"] == 1
    assert client.get(DRAFT, headers=operator).json == draft.json


def test_put_requires_a_precondition_and_detects_stale_copies(client, operator):
    body = client.get("/v1/recommendations/key-risks").json
    assert client.put(DRAFT, json=body, headers=operator).status_code == 428
    first = _create_draft(client, operator)
    again = client.put(DRAFT, json=body, headers={**operator, "If-None-Match": "*"})
    assert again.status_code == 412
    body["title"] = "Define and Prioritise Key Risks (revised)"
    replaced = client.put(DRAFT, json=body, headers={**operator, "If-Match": first.headers["ETag"]})
    assert replaced.status_code == 200
    assert replaced.headers["ETag"] != first.headers["ETag"]
    stale = client.put(DRAFT, json=body, headers={**operator, "If-Match": first.headers["ETag"]})
    assert stale.status_code == 412
    assert stale.mimetype == "application/problem+json"
    weak = client.put(DRAFT, json=body,
                      headers={**operator, "If-Match": "W/" + replaced.headers["ETag"]})
    assert weak.status_code == 412, "If-Match uses strong comparison"


def test_merge_patch_needs_if_match(client, operator):
    draft = _create_draft(client, operator)
    patch = {"tags": ["risk", "governance"], "references": None}
    headers = {**operator, "Content-Type": "application/merge-patch+json"}
    assert client.patch(DRAFT, json=patch, headers=headers).status_code == 428
    bad = client.patch(DRAFT, json=patch, headers={**headers, "If-Match": '"nope"'})
    assert bad.status_code == 412
    patched = client.patch(DRAFT, json=patch, headers={**headers, "If-Match": draft.headers["ETag"]})
    assert patched.status_code == 200, patched.json
    assert patched.json["tags"] == ["risk", "governance"]
    assert patched.json["references"] == []  # null removes the member; the schema default applies
    invalid = client.patch(DRAFT, json={"priority": "high"},
                           headers={**headers, "If-Match": patched.headers["ETag"]})
    assert invalid.status_code == 422
    assert "priority" in invalid.json["errors"]["json"]


def test_delete_draft(client, operator):
    draft = _create_draft(client, operator)
    assert client.delete(DRAFT, headers=operator).status_code == 428
    assert client.delete(DRAFT, headers={**operator, "If-Match": draft.headers["ETag"]}).status_code == 204
    assert client.get(DRAFT, headers=operator).status_code == 404
    assert _version_count(client) == 1


def test_publish_creates_the_next_version_and_consumes_the_draft(client, operator):
    draft = _create_draft(client, operator, title="Define and Prioritise Key Risks (revised)")
    assert client.post(PUBLISH, headers=operator).status_code == 428
    published = client.post(PUBLISH, headers={**operator, "If-Match": draft.headers["ETag"]})
    assert published.status_code == 201
    assert published.headers["Location"] == "/v1/recommendations/key-risks/versions/2"
    assert published.json["version"] == 2
    assert client.get(published.headers["Location"]).get_data() == published.get_data()
    # The draft is gone, so a second publish with the same precondition fails: exactly one wins.
    again = client.post(PUBLISH, headers={**operator, "If-Match": draft.headers["ETag"]})
    assert again.status_code == 412
    assert _version_count(client) == 2


def test_idempotency_key_replays_or_refuses(client, operator):
    draft = _create_draft(client, operator, tags=["risk", "revised"])
    headers = {**operator, "If-Match": draft.headers["ETag"], "Idempotency-Key": "k-1"}
    first = client.post(PUBLISH, headers=headers)
    assert first.status_code == 201
    replay = client.post(PUBLISH, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == first.get_data()
    assert replay.headers["Location"] == first.headers["Location"]
    other = client.post(PUBLISH, headers=headers, json={"different": True})
    assert other.status_code == 422
    assert other.json["type"] == "/problems/idempotency-key-reused"
    assert _version_count(client) == 2


def test_withdrawal_is_a_new_version(client, operator):
    _create_draft(client, operator, withdrawn=True, withdrawal_reason="Superseded.")
    etag = client.get(DRAFT, headers=operator).headers["ETag"]
    published = client.post(PUBLISH, headers={**operator, "If-Match": etag})
    assert published.json["withdrawn"] is True
    assert client.get("/v1/recommendations/key-risks/versions/1").json["withdrawn"] is False
    listed = client.get("/v1/recommendations", query_string={"per_page": 100}).json["items"]
    assert "key-risks" not in {item["slug"] for item in listed}
    listed = client.get("/v1/recommendations", query_string={"per_page": 100,
                                                             "include_withdrawn": "true"}).json
    assert "key-risks" in {item["slug"] for item in listed["items"]}
    feed = client.get("/v1/changes", query_string={"limit": 500}).json["items"]
    assert feed[-1]["slug"] == "key-risks" and feed[-1]["withdrawn"] is True


def test_create_recommendation_then_publish_version_1(client, operator):
    body = {"slug": "open-data-spaces", "title": "Open data spaces", "priority": 4,
            "text": ["Editorial test text."], "tags": ["innovation"]}
    created = client.post("/v1/recommendations", json=body, headers=operator)
    assert created.status_code == 201, created.json
    assert created.headers["Location"] == "/v1/recommendations/open-data-spaces/draft"
    assert client.get("/v1/recommendations/open-data-spaces").status_code == 404
    published = client.post("/v1/recommendations/open-data-spaces/draft/publish",
                            headers={**operator, "If-Match": created.headers["ETag"]})
    assert published.status_code == 201
    assert published.json["version"] == 1
    assert client.post("/v1/recommendations", json=body, headers=operator).status_code == 409
    tagged = client.get("/v1/recommendations", query_string={"tag": "innovation", "priority": 4})
    assert "open-data-spaces" in {item["slug"] for item in tagged.json["items"]}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer t7_unknown"},
                                     {"Authorization": "Basic abc"}])
def test_writes_need_a_valid_token(client, headers):
    response = client.put(DRAFT, json={}, headers={**headers, "If-None-Match": "*"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(DRAFT, headers=headers).status_code == 401


def test_concurrent_draft_writers_never_both_win(app, operator):
    """Two editors racing on one draft: exactly one wins, the other gets 412 (not a 500 and not a
    lost edit), on both engines."""
    import threading  # noqa: PLC0415

    body = app.test_client().get("/v1/recommendations/key-risks").json
    barrier = threading.Barrier(2)
    outcomes = []

    def write(headers):
        client = app.test_client()
        barrier.wait()
        outcomes.append(client.put(DRAFT, json=body, headers={**operator, **headers}).status_code)

    for headers in ({"If-None-Match": "*"}, None):
        if headers is None:  # second round: both hold the same ETag of the existing draft
            etag = app.test_client().get(DRAFT, headers=operator).headers["ETag"]
            headers = {"If-Match": etag}
        outcomes.clear()
        threads = [threading.Thread(target=write, args=(headers,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) in ([201, 412], [200, 412]), outcomes
