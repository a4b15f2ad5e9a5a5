"""Initial schema: documents, immutable signed versions, drafts, idempotency records, tokens,
signed exports, signing certificates and revocations, audit events, associations' own CAs, and the transparency log (entries, C2SP
tiles, signed checkpoints).

The database itself refuses UPDATE and DELETE of published versions and log entries (triggers on
both engines), and lets a log tile only grow, so no code path and no hand-written SQL can rewrite
what was published.

Revision ID: ad933e95d6ae
Revises: 
Create Date: 2026-11-25 20:22:40.737767
"""
from alembic import op
import sqlalchemy as sa


revision = 'ad933e95d6ae'
down_revision = None
branch_labels = None
depends_on = None


IMMUTABLE_TABLES = ("versions", "log_entries", "log_checkpoints", "exports",
                    "signing_certificates", "revocations", "audit_events")


def forbid_changes(table: str) -> None:
    """Install triggers that make ``table`` append-only: UPDATE, DELETE (and TRUNCATE) fail."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable'); END")
        return
    op.execute(f"""CREATE FUNCTION {table}_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN RAISE EXCEPTION '{table} rows are immutable'
                         USING ERRCODE = 'restrict_violation'; END $$""")
    op.execute(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
               f"FOR EACH ROW EXECUTE FUNCTION {table}_immutable()")
    op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
               f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_immutable()")


def allow_changes(table: str) -> None:
    """Remove the triggers installed by :func:`forbid_changes`."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER {table}_no_{action}")
        return
    op.execute(f"DROP TRIGGER {table}_no_change ON {table}")
    op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    op.execute(f"DROP FUNCTION {table}_immutable()")


def tiles_only_grow() -> None:
    """A tile may be created and extended, never shortened, rewritten or deleted; a full tile
    (256 hashes of 32 bytes) never changes at all (C2SP tlog-tiles)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER log_tiles_only_grow BEFORE UPDATE ON log_tiles "
                   "WHEN length(OLD.hashes) >= 8192 OR length(NEW.hashes) < length(OLD.hashes) "
                   "OR substr(NEW.hashes, 1, length(OLD.hashes)) != OLD.hashes "
                   "OR NEW.level != OLD.level OR NEW.\"index\" != OLD.\"index\" "
                   "BEGIN SELECT RAISE(ABORT, 'log_tiles rows are immutable once written'); END")
        op.execute("CREATE TRIGGER log_tiles_no_delete BEFORE DELETE ON log_tiles "
                   "BEGIN SELECT RAISE(ABORT, 'log_tiles rows are immutable once written'); END")
        return
    op.execute("""CREATE FUNCTION log_tiles_only_grow() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN
                    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
                      RAISE EXCEPTION 'log_tiles rows are immutable once written'
                        USING ERRCODE = 'restrict_violation';
                    END IF;
                    IF length(OLD.hashes) >= 8192
                       OR length(NEW.hashes) < length(OLD.hashes)
                       OR substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) <> OLD.hashes
                       OR NEW.level <> OLD.level OR NEW."index" <> OLD."index" THEN
                      RAISE EXCEPTION 'log_tiles rows are immutable once written'
                        USING ERRCODE = 'restrict_violation';
                    END IF;
                    RETURN NEW;
                  END $$""")
    op.execute("CREATE TRIGGER log_tiles_only_grow BEFORE UPDATE OR DELETE ON log_tiles "
               "FOR EACH ROW EXECUTE FUNCTION log_tiles_only_grow()")
    op.execute("CREATE TRIGGER log_tiles_no_truncate BEFORE TRUNCATE ON log_tiles "
               "FOR EACH STATEMENT EXECUTE FUNCTION log_tiles_only_grow()")


def upgrade() -> None:
    op.create_table('access_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('association', sa.String(length=64), nullable=True),
    sa.Column('scopes', sa.String(length=200), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(role = 'association') = (association IS NOT NULL)", name=op.f('ck_access_tokens_association_role')),
    sa.CheckConstraint("role IN ('operator', 'association')", name=op.f('ck_access_tokens_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_access_tokens_token_sha256'))
    )
    op.create_table('documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('slug', sa.String(length=128), nullable=False),
    sa.Column('association', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('kind', 'slug', name=op.f('uq_documents_kind_slug'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_association'), ['association'], unique=False)

    op.create_table('log_checkpoints',
    sa.Column('tree_size', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_log_checkpoints'))
    )
    op.create_table('log_entries',
    sa.Column('index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('leaf', sa.LargeBinary(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('entry_type', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('document_sha256', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('index', name=op.f('pk_log_entries'))
    )
    with op.batch_alter_table('log_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_log_entries_document_sha256'), ['document_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_log_entries_subject'), ['subject'], unique=False)

    op.create_table('log_tiles',
    sa.Column('level', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hashes', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('level', 'index', name=op.f('pk_log_tiles'))
    )
    op.create_table('registry_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_head'))
    )
    op.create_table('drafts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('based_on_version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_drafts_document_id_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drafts')),
    sa.UniqueConstraint('document_id', name=op.f('uq_drafts_document_id'))
    )
    op.create_table('versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.Column('published_by', sa.String(length=128), nullable=False),
    sa.Column('manifest', sa.LargeBinary(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('manifest_label', sa.String(length=200), nullable=False),
    sa.Column('signer', sa.String(length=64), nullable=False),
    sa.Column('signer_certificate_sha256', sa.String(length=64), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.CheckConstraint('number >= 1', name=op.f('ck_versions_number_positive')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_versions_document_id_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_versions')),
    sa.UniqueConstraint('document_id', 'number', name=op.f('uq_versions_document_id_number')),
    sa.UniqueConstraint('log_index', name=op.f('uq_versions_log_index')),
    sa.UniqueConstraint('seq', name=op.f('uq_versions_seq'))
    )
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_versions_sha256'), ['sha256'], unique=False)

    op.create_table('idempotency_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_sha256', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_idempotency_records_version_id_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('token_id', 'key', name=op.f('uq_idempotency_records_token_id_key'))
    )

    op.create_table('exports',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('manifest', sa.LargeBinary(), nullable=True),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('manifest_label', sa.String(length=200), nullable=False),
    sa.Column('versions', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports')),
    sa.UniqueConstraint('log_index', name=op.f('uq_exports_log_index'))
    )
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exports_sha256'), ['sha256'], unique=False)

    op.create_table('signing_certificates',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('signer', sa.String(length=64), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_signing_certificates')),
    sa.UniqueConstraint('log_index', name=op.f('uq_signing_certificates_log_index'))
    )
    with op.batch_alter_table('signing_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signing_certificates_signer'), ['signer'], unique=False)

    op.create_table('revocations',
    sa.Column('certificate_sha256', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['certificate_sha256'], ['signing_certificates.sha256'], name=op.f('fk_revocations_certificate_sha256_signing_certificates')),
    sa.PrimaryKeyConstraint('certificate_sha256', name=op.f('pk_revocations')),
    sa.UniqueConstraint('log_index', name=op.f('uq_revocations_log_index'))
    )
    op.create_table('association_cas',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('association', sa.String(length=64), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registered_by', sa.String(length=128), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_association_cas'))
    )
    with op.batch_alter_table('association_cas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_association_cas_association'), ['association'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('principal', sa.String(length=128), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('permission', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
    op.execute("INSERT INTO registry_head (id, last_seq) VALUES (1, 0)")
    for table in IMMUTABLE_TABLES:
        forbid_changes(table)
    tiles_only_grow()

def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER log_tiles_only_grow")
        op.execute("DROP TRIGGER log_tiles_no_delete")
    else:
        op.execute("DROP TRIGGER log_tiles_only_grow ON log_tiles")
        op.execute("DROP TRIGGER log_tiles_no_truncate ON log_tiles")
        op.execute("DROP FUNCTION log_tiles_only_grow()")
    for table in reversed(IMMUTABLE_TABLES):
        allow_changes(table)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')
    with op.batch_alter_table('association_cas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_association_cas_association'))

    op.drop_table('association_cas')
    op.drop_table('revocations')
    with op.batch_alter_table('signing_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signing_certificates_signer'))

    op.drop_table('signing_certificates')
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exports_sha256'))

    op.drop_table('exports')
    op.drop_table('idempotency_records')
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_versions_sha256'))

    op.drop_table('versions')
    op.drop_table('drafts')
    op.drop_table('registry_head')
    op.drop_table('log_tiles')
    with op.batch_alter_table('log_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_log_entries_subject'))
        batch_op.drop_index(batch_op.f('ix_log_entries_document_sha256'))

    op.drop_table('log_entries')
    op.drop_table('log_checkpoints')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_association'))

    op.drop_table('documents')
    op.drop_table('access_tokens')
