"""Tokens through the API: scoped, revocable, confined to their association; the activity trail."""

from __future__ import annotations

from app.auth.service import ASSOCIATION, create_token


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_association_manages_its_own_tokens_only(app, client):
    db = app.extensions["tech7.db"]
    bitkom = _bearer(create_token(db, role=ASSOCIATION, association="bitkom"))
    created = client.post("/v1/tokens", json={"association": "bitkom", "scopes": ["publish"],
                                             "label": "ci"}, headers=bitkom)
    assert created.status_code == 201, created.json
    new = created.json
    assert new["token"].startswith("t7_") and new["scopes"] == ["publish"]
    listed = client.get("/v1/tokens", headers=bitkom).json["items"]
    assert all("token" not in item for item in listed)
    assert {item["association"] for item in listed} == {"bitkom"}
    assert client.post("/v1/tokens", json={"association": "numeum", "scopes": ["publish"]},
                       headers=bitkom).status_code == 403
    for_itself = client.post("/v1/tokens", json={"scopes": ["publish"]}, headers=bitkom)
    assert for_itself.status_code == 201, "an association's token without association is its own"
    assert for_itself.json["association"] == "bitkom" and for_itself.json["role"] == "association"
    location = for_itself.headers["Location"]
    read = client.get(location, headers=bitkom)
    assert read.status_code == 200 and read.headers["Cache-Control"] == "no-store"
    assert read.json == {k: v for k, v in for_itself.json.items() if k != "token"}
    narrow = _bearer(new["token"])
    assert client.get("/v1/tokens", headers=narrow).status_code == 403, "not scoped to manage"
    numeum = _bearer(create_token(db, role=ASSOCIATION, association="numeum"))
    assert client.get(location, headers=numeum).status_code == 404, "another's token is unseen"
    assert client.get("/v1/tokens/99999", headers=bitkom).status_code == 404
    assert client.delete(f"/v1/tokens/{new['id']}", headers=numeum).status_code == 404
    assert client.delete(f"/v1/tokens/{new['id']}", headers=bitkom).status_code == 204
    revoked = client.post("/v1/associations/bitkom/statements", headers=narrow, json={
        "slug": "x", "statement_type": "position", "title": "t", "text": ["t"]})
    assert revoked.status_code == 401
    assert "revoked" in revoked.json["detail"]


def test_tokens_revoke_command(app, client):
    db = app.extensions["tech7.db"]
    token = create_token(db, role=ASSOCIATION, association="jeita")
    token_id = client.get("/v1/tokens", headers=_bearer(token)).json["items"][0]["id"]
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", str(token_id)])
    assert result.exit_code == 0, result.output
    assert client.get("/v1/tokens", headers=_bearer(token)).status_code == 401
    assert app.test_cli_runner().invoke(args=["tokens", "revoke", "99999"]).exit_code != 0


def test_every_write_is_recorded_and_only_operators_read_the_trail(app, client, operator):
    bitkom = _bearer(create_token(app.extensions["tech7.db"], role=ASSOCIATION,
                                  association="bitkom"))
    body = client.get("/v1/recommendations/key-risks").json
    client.put("/v1/recommendations/key-risks/draft", json=body,
               headers={**bitkom, "If-None-Match": "*"})  # 403
    client.post("/v1/associations/bitkom/statements", headers=bitkom, json={
        "slug": "audited", "statement_type": "position", "title": "t", "text": ["t"]})  # 201
    client.delete("/v1/recommendations/key-risks/draft")  # 401
    trail = client.get("/v1/activity", headers=operator)
    assert trail.status_code == 200
    seen = [(e["method"], e["path"], e["status"], e["principal"]) for e in trail.json["items"]]
    # Oldest first: the trail reads like the change feed.
    assert seen[-3:] == [
        ("PUT", "/v1/recommendations/key-risks/draft", 403, "association:bitkom"),
        ("POST", "/v1/associations/bitkom/statements", 201, "association:bitkom"),
        ("DELETE", "/v1/recommendations/key-risks/draft", 401, "unauthenticated"),
    ]
    assert all(e["token_id"] for e in trail.json["items"][-3:-1])
    assert client.get("/v1/activity", headers=bitkom).status_code == 403


def test_association_tokens_hold_nothing_they_are_refused(app, client, operator):
    # Made on the command line without --scopes, an association's token gets its defaults.
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--association", "bitkom"])
    assert result.exit_code == 0, result.output
    bitkom = _bearer(result.output.splitlines()[0])
    own = client.get("/v1/tokens", headers=bitkom).json["items"]
    assert own[0]["scopes"] == ["manage-tokens", "publish", "read-drafts"]
    for scope in own[0]["scopes"]:
        assert scope != "read-activity"
    assert client.get("/v1/activity", headers=bitkom).status_code == 403
    # An operator's own defaults are unchanged.
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--operator"])
    made = client.get("/v1/tokens", headers=_bearer(result.output.splitlines()[0])).json["items"]
    assert "read-activity" in made[-1]["scopes"]
