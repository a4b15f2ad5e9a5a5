"""Collection queries in SQL: what each published version is filtered and searched on.

``version_search`` holds one row per published version (kind, association, priority, statement
type, withdrawn, whether it is its document's latest, publication time and the folded words of
its text); ``version_labels`` one row per tag and per addressed recommendation. Both are derived
from the versions' bytes and written with the version (``app.publishing.search``); the next
version's publish clears ``latest``. The versions themselves are only read here.
The text index is per engine: an FTS5 table on SQLite, filled by an insert trigger on
``version_search``; a GIN index on ``words::tsvector`` on PostgreSQL. Upgrading derives the rows
of every version already published.

Revision ID: 5b2f0c9e7d41
Revises: 8837dce6798b
Create Date: 2026-12-03 09:30:00
"""
import json

from alembic import op
import sqlalchemy as sa

from app.publishing.search import facets, labels


revision = '5b2f0c9e7d41'
down_revision = '8837dce6798b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('version_search',
    sa.Column('version_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('latest', sa.Boolean(), nullable=False),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.Column('association', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.Column('statement_type', sa.String(length=32), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('words', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_version_search_document_id_documents')),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_version_search_version_id_versions')),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_version_search')),
    sa.UniqueConstraint('document_id', 'number', name=op.f('uq_version_search_document_id_number'))
    )
    with op.batch_alter_table('version_search', schema=None) as batch_op:
        batch_op.create_index('ix_version_search_listing', ['kind', 'latest', 'withdrawn', 'document_id'], unique=False)
        batch_op.create_index('ix_version_search_association', ['kind', 'latest', 'withdrawn', 'association', 'document_id'], unique=False)
        batch_op.create_index('ix_version_search_priority', ['kind', 'latest', 'withdrawn', 'priority', 'document_id'], unique=False)
        batch_op.create_index('ix_version_search_statement_type', ['kind', 'latest', 'withdrawn', 'statement_type', 'document_id'], unique=False)
        batch_op.create_index('ix_version_search_published_at', ['kind', 'published_at'], unique=False)
    op.create_table('version_labels',
    sa.Column('label', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=128), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('latest', sa.Boolean(), nullable=False),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_version_labels_document_id_documents')),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_version_labels_version_id_versions')),
    sa.PrimaryKeyConstraint('label', 'value', 'version_id', name=op.f('pk_version_labels'))
    )
    with op.batch_alter_table('version_labels', schema=None) as batch_op:
        batch_op.create_index('ix_version_labels_listing', ['label', 'value', 'kind', 'latest', 'withdrawn', 'document_id'], unique=False)
        batch_op.create_index('ix_version_labels_document_id', ['document_id'], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        # Contentless: the index answers rowids (= version ids) only, and stores no second copy
        # of the words. The ascii tokenizer leaves each stored word whole (they are already
        # folded), so SQLite and PostgreSQL match the same words.
        op.execute("CREATE VIRTUAL TABLE version_search_fts USING fts5("
                   "words, content='', tokenize='ascii')")
        op.execute("CREATE TRIGGER version_search_fts_insert AFTER INSERT ON version_search "
                   "BEGIN INSERT INTO version_search_fts (rowid, words) "
                   "VALUES (new.version_id, new.words); END")
    else:
        op.execute("CREATE INDEX ix_version_search_words ON version_search "
                   "USING gin ((words::tsvector))")
    _derive_published_versions()


def _derive_published_versions() -> None:
    """Insert the search rows of every version published before this revision (read only)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT v.id, v.document_id, v.number, v.published_at, v.body, d.kind, "
        "v.number = (SELECT max(n.number) FROM versions n WHERE n.document_id = v.document_id) "
        "FROM versions v JOIN documents d ON d.id = v.document_id ORDER BY v.id")).all()
    search = sa.table('version_search', *(sa.column(c) for c in (
        'version_id', 'document_id', 'number', 'kind', 'latest', 'withdrawn', 'association',
        'priority', 'statement_type', 'published_at', 'words')))
    label_table = sa.table('version_labels', *(sa.column(c) for c in (
        'label', 'value', 'version_id', 'document_id', 'kind', 'latest', 'withdrawn')))
    for version_id, document_id, number, published_at, body, kind, latest in rows:
        document = json.loads(bytes(body))
        derived = facets(document)
        bind.execute(search.insert().values(
            version_id=version_id, document_id=document_id, number=number, kind=kind,
            latest=bool(latest), published_at=published_at, **derived))
        for label, value in sorted(labels(document)):
            bind.execute(label_table.insert().values(
                label=label, value=value, version_id=version_id, document_id=document_id,
                kind=kind, latest=bool(latest), withdrawn=derived["withdrawn"]))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER version_search_fts_insert")
        op.execute("DROP TABLE version_search_fts")
    else:
        op.execute("DROP INDEX ix_version_search_words")
    with op.batch_alter_table('version_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_version_labels_document_id')
        batch_op.drop_index('ix_version_labels_listing')
    op.drop_table('version_labels')
    with op.batch_alter_table('version_search', schema=None) as batch_op:
        batch_op.drop_index('ix_version_search_published_at')
        batch_op.drop_index('ix_version_search_statement_type')
        batch_op.drop_index('ix_version_search_priority')
        batch_op.drop_index('ix_version_search_association')
        batch_op.drop_index('ix_version_search_listing')
    op.drop_table('version_search')
