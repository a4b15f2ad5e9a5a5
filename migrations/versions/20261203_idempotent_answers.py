"""Idempotency records keep the first answer itself, for every unsafe request.

An ``Idempotency-Key`` now has the same meaning on every write, not only on publish, so a record
stores the answer to replay (status, media type, the replayed headers and the body) rather than
the version a publish made. A record is only a retry aid, never part of what was published: the
old records are dropped with their table, and a retry of a publish made before this migration is
a new request.

Revision ID: 7c4a9e2b1f60
Revises: 5e1d7c0a9b23
Create Date: 2026-12-03 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '7c4a9e2b1f60'
down_revision = '5e1d7c0a9b23'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('idempotency_records')
    op.create_table(
        'idempotency_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('request_sha256', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('mimetype', sa.String(length=100), nullable=False),
        sa.Column('headers', sa.Text(), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
        sa.UniqueConstraint('token_id', 'key', name=op.f('uq_idempotency_records_token_id_key')),
    )


def downgrade() -> None:
    op.drop_table('idempotency_records')
    op.create_table(
        'idempotency_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('request_sha256', sa.String(length=64), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['versions.id'],
                                name=op.f('fk_idempotency_records_version_id_versions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
        sa.UniqueConstraint('token_id', 'key', name=op.f('uq_idempotency_records_token_id_key')),
    )
