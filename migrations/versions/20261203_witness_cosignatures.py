"""Witness cosignatures: the cosignature lines witnesses gave each checkpoint, each witness's
last cosigned size and error, and the lease that lets one submitter talk to them at a time.

New tables only; the log's append-only tables and their triggers are untouched.

Revision ID: 5e1d7c0a9b23
Revises: 5b2f0c9e7d41
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa



revision = '5e1d7c0a9b23'
down_revision = '5b2f0c9e7d41'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'witness_cosignatures',
        sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('witness', sa.String(length=200), nullable=False),
        sa.Column('signature_line', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('tree_size', 'witness', name=op.f('pk_witness_cosignatures')),
    )
    op.create_table(
        'witness_states',
        sa.Column('witness', sa.String(length=200), nullable=False),
        sa.Column('tree_size', sa.BigInteger(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('witness', name=op.f('pk_witness_states')),
    )
    op.create_table(
        'witness_leases',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_witness_leases')),
    )


def downgrade() -> None:
    op.drop_table('witness_leases')
    op.drop_table('witness_states')
    op.drop_table('witness_cosignatures')
