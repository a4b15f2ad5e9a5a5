"""Fixtures of the token tests."""

from __future__ import annotations

import pytest

from tests.support.tokens import TokenState


@pytest.fixture
def state(app) -> TokenState:
    """The tokens and the activity trail of this test's database."""
    return TokenState(app)
