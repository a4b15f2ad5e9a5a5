"""The activity trail's scope: tokens that hold ``read-audit`` hold ``read-activity`` instead.

The trail of writes is called the activity trail, so that "audit" names only what auditors do;
its scope follows. Scopes are stored space-separated on ``access_tokens``, which is the only table
this revision touches: the activity trail itself (append-only) is read only, and no published
version or log entry names a scope.

Revision ID: 3a6c9e1f0d52
Revises: 7c4a9e2b1f60
Create Date: 2026-12-03 13:00:00
"""
from alembic import op


revision = '3a6c9e1f0d52'
down_revision = '7c4a9e2b1f60'
branch_labels = None
depends_on = None


def _rename_scope(old: str, new: str) -> None:
    # No other scope contains either name, so replacing the substring renames exactly that scope.
    op.execute(f"UPDATE access_tokens SET scopes = REPLACE(scopes, '{old}', '{new}') "
               f"WHERE scopes LIKE '%{old}%'")


def upgrade() -> None:
    _rename_scope("read-audit", "read-activity")


def downgrade() -> None:
    _rename_scope("read-activity", "read-audit")
