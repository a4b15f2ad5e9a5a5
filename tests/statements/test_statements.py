"""Associations publish, correct and withdraw their own statements, and only their own."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tech7_audit.manifests import read_manifest

BITKOM = "/v1/associations/bitkom/statements"
STATEMENT = {"slug": "ai-act-position", "statement_type": "position",
             "title": "Bitkom on SME participation",
             "text": ["Bitkom supports the TECH7 recommendation on SME participation."],
             "addresses": [{"slug": "sme-participation", "version": 1}]}




def _state(client):
    """What must not change when a request is refused."""
    return (client.get("/v1/changes", query_string={"limit": 500}).get_data(),
            client.get("/v1/log/checkpoint").get_data())


def _publish_new(client, headers, body=STATEMENT, base=BITKOM):
    created = client.post(base, json=body, headers=headers)
    assert created.status_code == 201, created.json
    published = client.post(f"{base}/{body['slug']}/draft/publish",
                            headers={**headers, "If-Match": created.headers["ETag"]})
    assert published.status_code == 201, published.json
    return published


def _edit_and_publish(client, headers, url, **changes):
    body = client.get(url).json | changes
    put = client.put(url + "/draft", json=body, headers={**headers, "If-None-Match": "*"})
    assert put.status_code == 201, put.json
    published = client.post(url + "/draft/publish", headers={**headers, "If-Match": put.headers["ETag"]})
    assert published.status_code == 201, published.json
    return published


def test_publish_correct_withdraw_signed_by_the_association(app, client, token_of):
    bitkom = token_of("bitkom")
    v1 = _publish_new(client, bitkom)
    url = f"{BITKOM}/ai-act-position"
    assert v1.headers["Location"] == f"{url}/versions/1"
    assert v1.json["association"] == "bitkom" and v1.json["slug"] == "ai-act-position"
    v2 = _edit_and_publish(client, bitkom, url, text=["Corrected: Bitkom strongly supports it."])
    v3 = _edit_and_publish(client, bitkom, url, withdrawn=True, withdrawal_reason="Superseded.")
    assert [v.json["version"] for v in (v1, v2, v3)] == [1, 2, 3]
    anchors = client.get("/v1/trust/anchors.pem").get_data()
    bitkom_cert = app.extensions["tech7.keys"].store.signer_certificate("bitkom")
    for number in (1, 2, 3):
        version = client.get(f"{url}/versions/{number}")
        manifest = client.get(f"{url}/versions/{number}/manifest").get_data()
        report = read_manifest(version.get_data(), "application/json", manifest,
                               trust_anchors_pem=anchors)
        assert report.trusted and report.timestamp_trusted
        assert report.signer_certificate_sha256 == hashlib.sha256(
            bitkom_cert.public_bytes(Encoding.DER)).hexdigest()
        assert report.identity["association"] == "bitkom"
        entries = client.get("/v1/log/entries", query_string={
            "sha256": hashlib.sha256(version.get_data()).hexdigest()}).json["items"]
        assert [e["record"]["association"] for e in entries] == ["bitkom"]
    assert client.get(url).json["withdrawn"] is True
    listed = client.get("/v1/statements", query_string={"association": "bitkom",
                                                        "include_withdrawn": "true"}).json
    assert [i["slug"] for i in listed["items"]] == ["ai-act-position"]
    assert client.get("/v1/statements", query_string={"association": "bitkom"}).json["total"] == 0


def test_associations_cannot_touch_each_others_statements(client, token_of):
    bitkom, numeum = token_of("bitkom"), token_of("numeum")
    _publish_new(client, bitkom)
    url = f"{BITKOM}/ai-act-position"
    body = client.get(url).json
    put = client.put(url + "/draft", json=body, headers={**bitkom, "If-None-Match": "*"})
    etag = put.headers["ETag"]
    before = _state(client)
    attempts = [
        client.get(url + "/draft", headers=numeum),
        client.put(url + "/draft", json=body, headers={**numeum, "If-Match": etag}),
        client.patch(url + "/draft", json={"title": "x"}, headers={
            **numeum, "If-Match": etag, "Content-Type": "application/merge-patch+json"}),
        client.delete(url + "/draft", headers={**numeum, "If-Match": etag}),
        client.post(url + "/draft/publish", headers={**numeum, "If-Match": etag}),
        client.post(BITKOM, json=STATEMENT | {"slug": "forged"}, headers=numeum),
        client.put("/v1/recommendations/key-risks/draft",
                   json=client.get("/v1/recommendations/key-risks").json,
                   headers={**bitkom, "If-None-Match": "*"}),
    ]
    for response in attempts:
        assert response.status_code == 403, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
    assert _state(client) == before
    assert client.get(url + "/draft", headers=bitkom).headers["ETag"] == etag


def test_operators_do_not_publish_in_an_associations_name(client, operator):
    response = client.post(BITKOM, json=STATEMENT, headers=operator)
    assert response.status_code == 403


@pytest.mark.parametrize("addresses", [[{"slug": "no-such-recommendation", "version": 1}],
                                       [{"slug": "sme-participation", "version": 7}]])
def test_addressed_recommendations_are_validated(client, token_of, addresses):
    before = _state(client)
    response = client.post(BITKOM, json=STATEMENT | {"addresses": addresses},
                           headers=token_of("bitkom"))
    assert response.status_code == 422
    assert "addresses" in response.json["errors"]["json"]
    assert _state(client) == before


def test_filters_across_associations(client, token_of):
    _publish_new(client, token_of("bitkom"))
    _publish_new(client, token_of("techuk"), STATEMENT | {
        "slug": "standards-endorsement", "statement_type": "endorsement",
        "addresses": [{"slug": "industry-led-standardization", "version": 1}]},
        base="/v1/associations/techuk/statements")
    everything = client.get("/v1/statements").json
    assert everything["total"] == 2
    sme = client.get("/v1/statements", query_string={"recommendation": "sme-participation"}).json
    assert [i["association"] for i in sme["items"]] == ["bitkom"]
    endorsements = client.get("/v1/statements", query_string={"statement_type": "endorsement"})
    assert [i["association"] for i in endorsements.json["items"]] == ["techuk"]
    assert client.get("/v1/associations/techuk/statements").json["total"] == 1
    assert client.get("/v1/associations/nobody/statements").status_code == 404


def test_a_revoked_signer_signs_nothing_new(app, client, token_of):
    bitkom = token_of("bitkom")
    app.extensions["tech7.certificates"].revoke("bitkom", "keyCompromise")
    before = _state(client)
    created = client.post(BITKOM, json=STATEMENT, headers=bitkom)
    published = client.post(f"{BITKOM}/{STATEMENT['slug']}/draft/publish",
                            headers={**bitkom, "If-Match": created.headers["ETag"]})
    assert published.status_code == 409
    assert published.json["type"] == "/problems/signer-revoked"
    assert "keys rotate bitkom" in published.json["detail"]
    assert _state(client) == before
