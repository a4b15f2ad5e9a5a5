"""Tokens on the command line: printed once with their id, stored only as hashes, listed,
refused when they cannot be right; an association's first token made at the host is recorded."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.auth import service
from app.auth.models import AccessToken
from app.auth.service import OPERATOR, create_token
from app.core.db import utcnow
from tests.support.tokens import bearer


def _cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["tokens", *args])


def test_tokens_create_prints_once_and_stores_only_a_hash(app):
    result = _cli(app, "create", "--operator", "--label", "ci")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("t7_") and len(token) > 40
    with app.extensions["tech7.db"].sessions() as session:
        rows = session.scalars(sa.select(AccessToken)).all()
    assert [row.token_sha256 for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert all(token not in str(vars(row)) for row in rows)
    response = app.test_client().get("/v1/recommendations/key-risks/draft",
                                     headers=bearer(token))
    assert response.status_code == 404  # authenticated; there is simply no draft


def test_tokens_create_prints_the_id_beside_the_token(app, state):
    result = _cli(app, "create", "--operator", "--label", "ci")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1, "stdout is the token alone, for TOKEN=$(…)"
    token_id = int(re.search(r"\btoken (\d+)\b", result.stderr).group(1))
    assert state.tokens()[-1][0] == token_id
    assert state.tokens()[-1][1] == hashlib.sha256(result.stdout.strip().encode()).hexdigest()
    revoked = _cli(app, "revoke", str(token_id))
    assert revoked.exit_code == 0, revoked.output
    event = state.events()[-1]
    assert (event.principal, event.method, event.path, event.permission, event.status) == (
        "command-line", "CLI", f"/v1/tokens/{token_id}", "manage-tokens", 204)
    assert app.test_client().get("/v1/tokens", headers=bearer(result.stdout.strip())
                                 ).status_code == 401


@pytest.mark.parametrize(("args", "says"), [
    (["--operator", "--expires", "2020-01-01"], "future"),
    (["--operator", "--expires", "2020-01-01T10:00:00+01:00"], "future"),
    (["--association", "nosuch"], "nosuch"),
    (["--association", "bitkom", "--scopes", "publish,onboard-associations"],
     "onboard-associations"),
])
def test_tokens_create_refuses_and_writes_nothing(app, state, args, says):
    before = state.snapshot()
    result = _cli(app, "create", *args)
    assert result.exit_code != 0, result.output
    assert result.stdout == ""
    message = result.stderr.strip()
    assert message.count("\n") == 0 and message.startswith("Error:") and says in message, message
    assert state.snapshot() == before


def test_an_unknown_scope_names_the_valid_ones(app, state):
    before = state.snapshot()
    result = _cli(app, "create", "--operator", "--scopes", "publish,publsh")
    assert result.exit_code == 2
    for valid in ("publish", "read-drafts", "manage-tokens", "read-activity", "onboard-associations"):
        assert valid in result.stderr
    assert "'publsh'" in result.stderr
    assert state.snapshot() == before


def test_tokens_create_needs_exactly_one_role(app):
    result = _cli(app, "create")
    assert result.exit_code != 0
    assert "--operator" in result.output


def test_onboarding_at_the_host_is_recorded(app, client, state):
    result = _cli(app, "create", "--association", "bitkom", "--label", "handover")
    assert result.exit_code == 0, result.output
    bitkom = bearer(result.stdout.strip())
    own = client.get("/v1/tokens", headers=bitkom).json["items"]
    assert [(t["minted_by"], t["onboarding"], t["parent_id"]) for t in own] == [
        ({"token_id": None, "role": "command-line", "association": None, "label": ""}, True,
         None)]
    event = state.events()[-1]
    assert (event.principal, event.method, event.permission, event.token_id) == (
        "command-line", "CLI", "onboard-associations", None)
    assert str(own[0]["id"]) in event.path


def test_operator_tokens_onboard_only_when_asked_for(app, client):
    ordinary = _cli(app, "create", "--operator").stdout.strip()
    onboarder = _cli(app, "create", "--operator", "--scopes",
                     "manage-tokens,publish,onboard-associations").stdout.strip()
    body = {"association": "bitkom", "scopes": ["publish"]}
    assert client.post("/v1/tokens", json=body, headers=bearer(ordinary)).status_code == 403
    assert client.post("/v1/tokens", json=body, headers=bearer(onboarder)).status_code == 201


def test_tokens_list(app, client):
    operator = _cli(app, "create", "--operator", "--label", "alice").stdout.strip()
    made = client.post("/v1/tokens", json={"scopes": ["publish"], "label": "bob"},
                       headers=bearer(operator)).json
    _cli(app, "revoke", str(made["id"]))
    listed = _cli(app, "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert re.search(rf"^\s*{made['parent_id']}\s+operator\b.*\balice\b", lines[1])
    assert re.search(rf"^\s*{made['id']}\s+operator\b.*\brevoked\b.*\bbob\b", lines[2])
    assert "t7_" not in listed.stdout and operator not in listed.stdout
    as_json = json.loads(_cli(app, "list", "--json").stdout)
    assert [t["id"] for t in as_json] == [made["parent_id"], made["id"]]
    # The same fields as GET /v1/tokens, never the token itself.
    expected = {key: value for key, value in made.items() if key != "token"}
    assert as_json[1] == {**expected, "revoked_at": as_json[1]["revoked_at"]}
    assert as_json[1]["revoked_at"] and as_json[1]["minted_by"]["label"] == "alice"


def test_expired_tokens_are_refused(app, client, monkeypatch):
    expires = utcnow() + timedelta(hours=1)
    token = create_token(app.extensions["tech7.db"], role=OPERATOR, expires_at=expires)
    assert client.get("/v1/tokens", headers=bearer(token)).status_code == 200
    monkeypatch.setattr(service, "utcnow", lambda: expires)
    response = client.get("/v1/tokens", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json["detail"]
