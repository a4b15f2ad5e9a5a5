"""``Idempotency-Key`` means one thing on every unsafe request (app/http/idempotency.py): a
retry replays the first answer and writes nothing, another request under the key is refused
(422), a key over 255 characters is refused (400), and a request that fails keeps no key.

Each endpoint class is tried: draft PUT and PATCH, the creates (a document's draft, a token,
an export, an association's CA), publish, and the deletes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.auth.service import ASSOCIATION, create_token
from tests.support.own_pki import make_own_pki

DRAFT = "/v1/recommendations/key-risks/draft"
VERSION = "/v1/recommendations/sme-participation/versions/1"


@dataclass
class Call:
    """One unsafe request, and another that differs from it only in its body."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    other_body: dict[str, Any] = field(default_factory=dict)

    def send(self, client, key: str | None, *, other: bool = False):
        headers = {**self.headers, **({"Idempotency-Key": key} if key is not None else {})}
        return client.open(self.path, method=self.method, headers=headers,
                           **(self.other_body if other else self.body))


def _served_content(client) -> dict:
    return {k: v for k, v in client.get("/v1/recommendations/key-risks").json.items()
            if k not in ("version", "published_at")}


def _draft_etag(client, operator) -> str:
    made = client.put(DRAFT, json={**_served_content(client), "tags": ["risk", "draft"]},
                      headers={**operator, "If-None-Match": "*"})
    assert made.status_code == 201, made.json
    return made.headers["ETag"]


def _draft_put(app, client, operator) -> Call:
    content = _served_content(client)
    return Call("PUT", DRAFT, {**operator, "If-None-Match": "*"},
                {"json": {**content, "tags": ["risk", "one"]}},
                {"json": {**content, "tags": ["risk", "two"]}})


def _draft_patch(app, client, operator) -> Call:
    return Call("PATCH", DRAFT, {**operator, "If-Match": _draft_etag(client, operator)},
                {"json": {"tags": ["risk", "one"]}}, {"json": {"tags": ["risk", "two"]}})


def _draft_delete(app, client, operator) -> Call:
    return Call("DELETE", DRAFT, {**operator, "If-Match": _draft_etag(client, operator)},
                {}, {"json": {"other": True}})


def _document_create(app, client, operator) -> Call:
    body = {"slug": "open-data-spaces", "title": "Open data spaces", "priority": 4,
            "text": ["Editorial test text."]}
    return Call("POST", "/v1/recommendations", operator, {"json": body},
                {"json": {**body, "title": "Open data spaces, again"}})


def _publish(app, client, operator) -> Call:
    return Call("POST", DRAFT + "/publish",
                {**operator, "If-Match": _draft_etag(client, operator)},
                {}, {"json": {"different": True}})


def _token_create(app, client, operator) -> Call:
    return Call("POST", "/v1/tokens", operator,
                {"json": {"scopes": ["publish"], "label": "first"}},
                {"json": {"scopes": ["publish"], "label": "second"}})


def _token_delete(app, client, operator) -> Call:
    made = client.post("/v1/tokens", json={"scopes": ["publish"], "label": "doomed"},
                       headers=operator)
    return Call("DELETE", made.headers["Location"], operator, {}, {"json": {"other": True}})


def _export_create(app, client, operator) -> Call:
    return Call("POST", "/v1/exports", operator,
                {"json": {"format": "json", "scope": {"versions": [VERSION]}}},
                {"json": {"format": "csv", "scope": {"versions": [VERSION]}}})


def _ca_register(app, client, operator) -> Call:
    token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")
    return Call("POST", "/v1/associations/bitkom/ca", {"Authorization": f"Bearer {token}"},
                {"json": {"pem": make_own_pki("Bitkom").ca_pem.decode()}},
                {"json": {"pem": make_own_pki("Bitkom").ca_pem.decode()}})


CALLS: dict[str, Callable[..., Call]] = {
    "draft-put": _draft_put, "draft-patch": _draft_patch, "draft-delete": _draft_delete,
    "document-create": _document_create, "publish": _publish, "token-create": _token_create,
    "token-delete": _token_delete, "export-create": _export_create,
    "ca-register": _ca_register,
}


@pytest.fixture(params=list(CALLS))
def call(request, app, client, operator) -> Call:
    return CALLS[request.param](app, client, operator)


def test_a_retry_replays_the_first_answer_and_writes_nothing(call, client, stored):
    first = call.send(client, "retry-1")
    assert 200 <= first.status_code < 300, first.get_data(as_text=True)
    assert "Idempotent-Replayed" not in first.headers
    after_first = stored()
    replay = call.send(client, "retry-1")
    assert replay.status_code == first.status_code
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.mimetype == first.mimetype
    for name in ("Location", "ETag", "Content-Location", "Link"):
        assert replay.headers.get(name) == first.headers.get(name), name
    if call.path == "/v1/tokens":
        # The token itself is stored only hashed, so a replay cannot show it again.
        assert replay.json == {k: v for k, v in first.json.items() if k != "token"}
    else:
        assert replay.get_data() == first.get_data()
    assert stored() == after_first


def test_the_same_key_for_another_request_is_refused_and_writes_nothing(call, client, stored):
    first = call.send(client, "mismatch-1")
    assert 200 <= first.status_code < 300, first.get_data(as_text=True)
    after_first = stored()
    other = call.send(client, "mismatch-1", other=True)
    assert other.status_code == 422
    assert other.json["type"] == "/problems/idempotency-key-reused"
    assert stored() == after_first


def test_a_key_too_long_is_refused_and_writes_nothing(call, client, stored):
    before = stored()
    refused = call.send(client, "k" * 256)
    assert refused.status_code == 400
    assert refused.json["type"] == "/problems/invalid-idempotency-key"
    assert stored() == before
    assert 200 <= call.send(client, "k" * 255).status_code < 300


def test_a_request_that_fails_keeps_no_key(client, operator, stored):
    content = _served_content(client)
    headers = {**operator, "If-None-Match": "*", "Idempotency-Key": "fails-first"}
    before = stored()
    refused = client.put(DRAFT, json={**content, "title": ""}, headers=headers)
    assert refused.status_code == 422
    assert stored() == before
    made = client.put(DRAFT, json=content, headers=headers)
    assert made.status_code == 201 and "Idempotent-Replayed" not in made.headers


def test_a_repeated_draft_put_is_replayed_rather_than_refused(client, operator):
    body = {**_served_content(client), "tags": ["risk", "again"]}
    without_key = {**operator, "If-None-Match": "*"}
    first = client.put(DRAFT, json=body, headers={**without_key, "Idempotency-Key": "put-1"})
    assert first.status_code == 201
    replay = client.put(DRAFT, json=body, headers={**without_key, "Idempotency-Key": "put-1"})
    assert replay.status_code == 201 and replay.headers["ETag"] == first.headers["ETag"]
    assert client.put(DRAFT, json=body, headers=without_key).status_code == 412  # no key: as ever


def test_keys_belong_to_their_token(app, client, operator):
    """Another token's request under the same key is its own."""
    other = {"Authorization": "Bearer " + create_token(app.extensions["tech7.db"],
                                                         role="operator")}
    body = {"format": "json", "scope": {"versions": [VERSION]}}
    first = client.post("/v1/exports", json=body, headers={**operator, "Idempotency-Key": "e"})
    second = client.post("/v1/exports", json=body, headers={**other, "Idempotency-Key": "e"})
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert first.json["id"] != second.json["id"]


def test_a_retry_racing_the_first_publish_is_answered_with_its_result(app, client, operator):
    """The timeout-and-retry race the key exists for: both copies of the publish arrive at once.
    The second waits for the first and replays its 201, rather than failing on the draft the
    first already published (412 on PostgreSQL before the key was claimed first)."""
    call = _publish(app, client, operator)
    start = threading.Barrier(2)
    answers = []

    def publish():
        start.wait(timeout=10)
        answers.append(call.send(app.test_client(), "raced-1"))

    racers = [threading.Thread(target=publish) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(answer.status_code for answer in answers) == [201, 201], \
        [answer.get_data(as_text=True) for answer in answers]
    assert sorted(answer.headers.get("Idempotent-Replayed", "") for answer in answers) == \
        ["", "true"]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
