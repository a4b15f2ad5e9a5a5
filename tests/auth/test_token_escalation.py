"""No token makes a stronger one, and no operator acts in an association's name.

A token mints only scopes it holds, and only for principals it may act for. An association's first
token is an onboarding act that needs ``onboard-associations``; it is in the activity trail and in the
association's own token list, and once an association has a live token only the association makes
more.
"""

from __future__ import annotations

import pytest

from app.auth.service import ASSOCIATION, OPERATOR, create_token
from tests.support.tokens import bearer

ALL_OPERATOR_SCOPES = ["manage-tokens", "publish", "read-activity", "read-drafts"]
STATEMENT = {"slug": "by-operator", "statement_type": "position", "title": "t", "text": ["t"]}


def _operator(app, *scopes: str, label: str = "ops") -> str:
    return create_token(app.extensions["tech7.db"], role=OPERATOR, scopes=scopes, label=label)


def _token_id(client, token: str) -> int:
    """The id of ``token``, which must hold manage-tokens."""
    mine = client.get("/v1/tokens", headers=bearer(token))
    assert mine.status_code == 200, mine.json
    return max(item["id"] for item in mine.json["items"])


def test_a_manage_tokens_operator_cannot_mint_a_wider_operator_token(app, client, state):
    narrow = _operator(app, "manage-tokens")
    before = state.snapshot()
    refused = client.post("/v1/tokens", json={"scopes": ALL_OPERATOR_SCOPES},
                          headers=bearer(narrow))
    assert refused.status_code == 403, refused.json
    assert refused.mimetype == "application/problem+json"
    assert "publish" in refused.json["detail"]
    state.assert_only_recorded(before, status=403, permission="manage-tokens")
    same = client.post("/v1/tokens", json={"scopes": ["manage-tokens"]}, headers=bearer(narrow))
    assert same.status_code == 201, same.json


@pytest.mark.parametrize("scopes", [["manage-tokens"], ALL_OPERATOR_SCOPES])
def test_an_ordinary_operator_cannot_mint_an_association_token(app, client, state, scopes):
    # The attack: an operator token mints a publish token for bitkom and writes in its name.
    operator = _operator(app, *scopes)
    before = state.snapshot()
    refused = client.post("/v1/tokens", json={"association": "bitkom", "scopes": ["publish"]},
                          headers=bearer(operator))
    assert refused.status_code == 403, refused.json
    assert "onboard-associations" in refused.json["detail"]
    # The attempt is recorded as what it was: an attempt to onboard an association.
    state.assert_only_recorded(before, status=403, permission="onboard-associations")
    statements = client.get("/v1/associations/bitkom/statements").json
    assert statements["total"] == 0


def test_operator_default_scopes_do_not_onboard(app, client, operator):
    refused = client.post("/v1/tokens", json={"association": "bitkom", "scopes": ["publish"]},
                          headers=operator)
    assert refused.status_code == 403, refused.json
    listed = client.get("/v1/tokens", headers=operator).json["items"]
    assert "onboard-associations" not in listed[0]["scopes"]


def test_onboarding_is_recorded_and_shown_to_the_association(app, client, state):
    onboarder = _operator(app, "manage-tokens", "publish", "onboard-associations", label="alice")
    onboarder_id = _token_id(client, onboarder)
    made = client.post("/v1/tokens", json={"association": "bitkom", "label": "handover",
                                           "scopes": ["manage-tokens", "publish"]},
                       headers=bearer(onboarder))
    assert made.status_code == 201, made.json
    handed_over = made.json
    assert handed_over["role"] == ASSOCIATION and handed_over["onboarding"] is True
    assert handed_over["minted_by"] == {"token_id": onboarder_id, "role": OPERATOR,
                                        "association": None, "label": "alice"}
    assert handed_over["parent_id"] is None, "an onboarding token starts a chain of its own"
    event = state.events()[-1]
    assert (event.permission, event.status, event.token_id, event.principal) == (
        "onboard-associations", 201, onboarder_id, "operator")

    # The association sees who made its token, and when, and revokes it.
    bitkom = bearer(handed_over["token"])
    own = client.get("/v1/tokens", headers=bitkom).json["items"]
    assert [(t["id"], t["minted_by"], t["created_at"], t["onboarding"]) for t in own] == [
        (handed_over["id"], handed_over["minted_by"], handed_over["created_at"], True)]
    child = client.post("/v1/tokens", json={"association": "bitkom", "scopes": ["publish"]},
                        headers=bitkom).json
    assert child["onboarding"] is False and child["parent_id"] == handed_over["id"]
    assert child["minted_by"] == {"token_id": handed_over["id"], "role": ASSOCIATION,
                                  "association": "bitkom", "label": "handover"}
    # The operator's token itself never acts as bitkom.
    assert client.post("/v1/associations/bitkom/statements", json=STATEMENT,
                       headers=bearer(onboarder)).status_code == 403
    assert client.delete(f"/v1/tokens/{handed_over['id']}", headers=bitkom).status_code == 204
    assert client.get("/v1/tokens", headers=bitkom).status_code == 401


def test_an_onboarded_association_makes_its_own_tokens(app, client, state):
    onboarder = _operator(app, "manage-tokens", "publish", "onboard-associations")
    body = {"association": "bitkom", "scopes": ["publish"]}
    first = client.post("/v1/tokens", json=body, headers=bearer(onboarder))
    assert first.status_code == 201
    before = state.snapshot()
    again = client.post("/v1/tokens", json=body, headers=bearer(onboarder))
    assert again.status_code == 403, again.json
    assert "bitkom" in again.json["detail"]
    state.assert_only_recorded(before, status=403, permission="onboard-associations")
    # Once the association's tokens are all revoked it can be onboarded again, visibly.
    client.delete(f"/v1/tokens/{first.json['id']}", headers=bearer(onboarder))
    assert client.post("/v1/tokens", json=body, headers=bearer(onboarder)).status_code == 201


@pytest.mark.parametrize(("body", "status"), [
    ({"association": "bitkom", "scopes": ["read-drafts"]}, 403),  # not held by the onboarder
    ({"association": "bitkom", "scopes": ["onboard-associations"]}, 422),
    ({"association": "bitkom", "scopes": ["read-activity"]}, 422),  # operators' scope only
    ({"association": "nosuch", "scopes": ["publish"]}, 422),
])
def test_onboarding_refusals_write_nothing(app, client, state, body, status):
    onboarder = _operator(app, "manage-tokens", "publish", "onboard-associations")
    before = state.snapshot()
    refused = client.post("/v1/tokens", json=body, headers=bearer(onboarder))
    assert refused.status_code == status, refused.json
    assert refused.mimetype == "application/problem+json"
    state.assert_only_recorded(before, status=status, permission="onboard-associations")


def test_an_association_mints_only_for_itself_and_only_what_it_holds(app, client, state):
    bitkom = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom",
                          scopes=["manage-tokens", "publish"])
    for body, status in [({"association": "numeum", "scopes": ["publish"]}, 403),
                         ({"association": "bitkom", "scopes": ["read-drafts"]}, 403),
                         ({"association": "bitkom", "scopes": ["onboard-associations"]}, 422),
                         ({"scopes": ["read-drafts"]}, 403),  # for itself, not held
                         ({"association": "bitkom", "scopes": ["read-activity"]}, 422),
                         ({"association": "nosuch", "scopes": ["publish"]}, 422)]:
        before = state.snapshot()
        refused = client.post("/v1/tokens", json=body, headers=bearer(bitkom))
        assert refused.status_code == status, (body, refused.json)
        state.assert_only_recorded(before, status=status, permission="manage-tokens")


def test_operators_with_onboarding_mint_onboarding_operators(app, client):
    onboarder = _operator(app, "manage-tokens", "onboard-associations")
    onboarder_id = _token_id(client, onboarder)
    made = client.post("/v1/tokens", json={"scopes": ["manage-tokens", "onboard-associations"]},
                       headers=bearer(onboarder))
    assert made.status_code == 201, made.json
    assert made.json["parent_id"] == onboarder_id
    assert made.json["onboarding"] is False
