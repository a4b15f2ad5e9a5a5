"""Fixtures of the statement tests."""

from __future__ import annotations

import pytest

from app.auth.service import ASSOCIATION, create_token


@pytest.fixture
def token_of(app):
    """``token_of(association)``: bearer headers of a new token of that association."""
    def make(association):
        token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association=association)
        return {"Authorization": f"Bearer {token}"}
    return make
