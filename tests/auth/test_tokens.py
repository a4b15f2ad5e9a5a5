"""Tokens are printed once, stored only as hashes, and can expire."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import sqlalchemy as sa

from app.auth.models import AccessToken
from app.auth.service import OPERATOR, create_token
from app.db import utcnow


def test_tokens_create_prints_once_and_stores_only_a_hash(app):
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--operator",
                                                "--label", "ci"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("t7_") and len(token) > 40
    with app.extensions["tech7.db"].sessions() as session:
        rows = session.scalars(sa.select(AccessToken)).all()
    assert [row.token_sha256 for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert all(token not in str(vars(row)) for row in rows)
    response = app.test_client().get("/v1/recommendations/key-risks/draft",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404  # authenticated; there is simply no draft


def test_tokens_create_needs_exactly_one_role(app):
    result = app.test_cli_runner().invoke(args=["tokens", "create"])
    assert result.exit_code != 0
    assert "--operator" in result.output


def test_expired_tokens_are_refused(app, client):
    token = create_token(app.extensions["tech7.db"], role=OPERATOR,
                         expires_at=utcnow() - timedelta(seconds=1))
    response = client.get("/v1/recommendations/key-risks/draft",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json["detail"]
