"""Who may do what: bearer tokens, roles and the permissions write endpoints declare."""

from app.auth.permissions import Permission, current_principal, requires

__all__ = ["Permission", "current_principal", "requires"]
