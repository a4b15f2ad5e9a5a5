"""A minted token never outlives the token that minted it.

It expires no later than its parent, and revoking a token ends every token it minted,
transitively. An association's onboarding token starts a chain of its own.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from tech7_audit.times import isoformat

from app.auth import service
from app.auth.models import AccessToken
from app.auth.service import ASSOCIATION, OPERATOR, create_token
from app.core.db import utcnow
from app.core.errors import Unauthenticated
from tests.support.tokens import bearer


def _statement(slug: str) -> dict:
    return {"slug": slug, "statement_type": "position", "title": "t", "text": ["t"]}


def _mint(client, parent: str, **body) -> dict:
    made = client.post("/v1/tokens", json={"association": "bitkom", "scopes": ["manage-tokens",
                                                                               "publish"], **body},
                       headers=bearer(parent))
    assert made.status_code == 201, made.json
    return made.json


def test_a_child_of_an_expiring_token_expires_with_it(app, client, state, monkeypatch):
    expires = utcnow() + timedelta(days=1)
    parent = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom",
                          expires_at=expires)
    child = _mint(client, parent)
    assert child["expires_at"] == isoformat(expires), "no expiry means the parent's"
    grandchild = _mint(client, child["token"], expires_at=isoformat(expires - timedelta(hours=1)))
    assert grandchild["expires_at"] == isoformat(expires - timedelta(hours=1))

    before = state.snapshot()
    later = client.post("/v1/tokens", json={
        "association": "bitkom", "scopes": ["publish"],
        "expires_at": isoformat(expires + timedelta(seconds=1))}, headers=bearer(parent))
    assert later.status_code == 422, later.json
    assert isoformat(expires) in later.json["detail"]
    state.assert_only_recorded(before, status=422, permission="manage-tokens")

    # When the parent's time is up, the whole chain stops.
    monkeypatch.setattr(service, "utcnow", lambda: expires + timedelta(seconds=1))
    for token in (parent, child["token"], grandchild["token"]):
        response = client.post("/v1/associations/bitkom/statements", json=_statement("late"),
                               headers=bearer(token))
        assert response.status_code == 401, response.json
        assert "expired" in response.json["detail"]


def test_revoking_a_token_ends_every_token_it_minted(app, client, state):
    root = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")
    child = _mint(client, root)
    grandchild = _mint(client, child["token"])
    sibling = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")
    assert client.delete(f"/v1/tokens/{child['id']}", headers=bearer(root)).status_code == 204
    for token in (child["token"], grandchild["token"]):
        response = client.post("/v1/associations/bitkom/statements", json=_statement("after"),
                               headers=bearer(token))
        assert response.status_code == 401, response.json
        assert "revoked" in response.json["detail"]
    listed = {t["id"]: t for t in client.get("/v1/tokens", headers=bearer(root)).json["items"]}
    assert listed[child["id"]]["revoked_at"] and listed[grandchild["id"]]["revoked_at"]
    # The token that minted the revoked one, and tokens outside its chain, keep working.
    for slug, token in (("still-root", root), ("still-sibling", sibling)):
        response = client.post("/v1/associations/bitkom/statements", json=_statement(slug),
                               headers=bearer(token))
        assert response.status_code == 201, response.json


def test_revoking_an_operator_token_ends_the_operator_tokens_it_minted(app, client, operator):
    child = client.post("/v1/tokens", json={"scopes": ["manage-tokens"]}, headers=operator).json
    grandchild = client.post("/v1/tokens", json={"scopes": ["manage-tokens"]},
                             headers=bearer(child["token"])).json
    parent_id = child["parent_id"]
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", str(parent_id)])
    assert result.exit_code == 0, result.output
    assert f"the tokens it made: {child['id']}, {grandchild['id']}." in result.stdout
    for token in (child["token"], grandchild["token"]):
        assert client.get("/v1/tokens", headers=bearer(token)).status_code == 401


def test_an_onboarding_token_outlives_the_operator_token_that_made_it(app, client):
    expires = utcnow() + timedelta(days=1)
    onboarder = create_token(app.extensions["tech7.db"], role=OPERATOR, expires_at=expires,
                             scopes=["manage-tokens", "publish", "onboard-associations"])
    handed_over = _mint(client, onboarder)
    assert handed_over["expires_at"] is None, "the association's chain is its own"
    child = _mint(client, handed_over["token"])
    result = app.test_cli_runner().invoke(
        args=["tokens", "revoke", str(handed_over["minted_by"]["token_id"])])
    assert result.exit_code == 0, result.output
    assert client.get("/v1/tokens", headers=bearer(onboarder)).status_code == 401
    for slug, token in (("kept-a", handed_over["token"]), ("kept-b", child["token"])):
        response = client.post("/v1/associations/bitkom/statements", json=_statement(slug),
                               headers=bearer(token))
        assert response.status_code == 201, response.json
    # The record of who onboarded bitkom stays.
    own = client.get("/v1/tokens", headers=bearer(child["token"])).json["items"]
    first = next(t for t in own if t["id"] == handed_over["id"])
    assert first["minted_by"]["role"] == OPERATOR and first["onboarding"] is True


@pytest.mark.parametrize("when", [timedelta(seconds=-1), timedelta(days=-400)])
def test_a_past_expiry_is_refused(app, client, operator, state, when):
    before = state.snapshot()
    refused = client.post("/v1/tokens", json={
        "scopes": ["publish"], "expires_at": isoformat(utcnow() + when)}, headers=operator)
    assert refused.status_code == 422, refused.json
    state.assert_only_recorded(before, status=422, permission="manage-tokens")


def test_a_revoked_parent_mints_nothing(app, client, state):
    root = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")
    child = _mint(client, root)
    client.delete(f"/v1/tokens/{child['parent_id']}", headers=bearer(child["token"]))
    before = state.snapshot()
    refused = client.post("/v1/tokens", json={"association": "bitkom", "scopes": ["publish"]},
                          headers=bearer(child["token"]))
    assert refused.status_code == 401, refused.json
    state.assert_only_recorded(before, status=401, permission="manage-tokens")


def test_a_token_revoked_while_it_mints_mints_nothing(app, state):
    # A revocation of the maker that commits while a mint waits for it must be seen by the mint,
    # or the new token would escape the cascade. The revocation here holds its transaction open;
    # however late the mint gets to its read, it must read the revoked row.
    db = app.extensions["tech7.db"]
    create_token(db, role=ASSOCIATION, association="bitkom")
    parent_id = state.tokens()[-1][0]
    principal = service.Principal(token_id=parent_id, role=ASSOCIATION, association="bitkom",
                                  scopes=frozenset(service.DEFAULT_SCOPES))
    outcome: list[BaseException | None] = []

    def mint() -> None:
        try:
            service.issue_token(db, principal, association="bitkom", scopes=["publish"])
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            outcome.append(error)

    with db.write() as session:
        session.execute(sa.update(AccessToken).where(AccessToken.id == parent_id)
                        .values(revoked_at=utcnow()))
        session.flush()
        minter = threading.Thread(target=mint)
        minter.start()
        time.sleep(1)  # let the mint reach its read of the maker, where it must wait
    minter.join(timeout=60)
    assert not minter.is_alive()
    assert isinstance(outcome[0], Unauthenticated), outcome
    assert [row[0] for row in state.tokens()] == [parent_id]
