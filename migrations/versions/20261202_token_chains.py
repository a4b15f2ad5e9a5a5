"""Token chains: which token a token's life depends on, and who made it.

``access_tokens.parent_id`` names the token whose expiry bounds this one and whose revocation
revokes it; ``minted_by_id`` names the token that made it (for an association's onboarding token,
the operator's token, which is not its parent). Both are NULL for tokens made on the command line,
and for every token made before this revision: nothing is deployed yet, so there is no history to
recover. Only ``access_tokens`` changes; the append-only tables and their triggers are untouched.

Revision ID: 8837dce6798b
Revises: ad933e95d6ae
Create Date: 2026-12-02 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '8837dce6798b'
down_revision = 'ad933e95d6ae'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite adds a foreign key only by rebuilding the table; PostgreSQL alters it.
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('minted_by_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_access_tokens_parent_id'), ['parent_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_access_tokens_parent_id_access_tokens'),
                                    'access_tokens', ['parent_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_access_tokens_minted_by_id_access_tokens'),
                                    'access_tokens', ['minted_by_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_access_tokens_minted_by_id_access_tokens'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_access_tokens_parent_id_access_tokens'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_access_tokens_parent_id'))
        batch_op.drop_column('minted_by_id')
        batch_op.drop_column('parent_id')
