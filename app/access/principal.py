"""The authenticated caller of a request, as every service receives it."""

from __future__ import annotations

from dataclasses import dataclass

from app.access.scopes import Permission

#: The two roles a token has: a registry operator's, or a member association's.
OPERATOR = "operator"
ASSOCIATION = "association"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    token_id: int
    role: str
    association: str | None
    scopes: frozenset[Permission]

    @property
    def name(self) -> str:
        """How the activity trail names this caller."""
        return OPERATOR if self.role == OPERATOR else f"association:{self.association}"
