"""Every model, imported once so that ``metadata`` describes the whole schema (for Alembic)."""

from app.auth.models import AccessToken, ActivityEvent
from app.core.db import Base, RegistryHead
from app.exports.models import Export
from app.http.idempotency import IdempotencyRecord
from app.ledger.models import LogCheckpoint, LogEntry, LogTile, WitnessCosignature, WitnessLease, WitnessState
from app.pki.models import AssociationCA, Revocation, SigningCertificate
from app.publishing.models import Document, Draft, Version, VersionLabel, VersionSearch

metadata = Base.metadata

__all__ = [
    "AccessToken",
    "ActivityEvent",
    "AssociationCA",
    "Document",
    "Draft",
    "Export",
    "IdempotencyRecord",
    "LogCheckpoint",
    "LogEntry",
    "LogTile",
    "RegistryHead",
    "Revocation",
    "SigningCertificate",
    "Version",
    "VersionLabel",
    "VersionSearch",
    "WitnessCosignature",
    "WitnessLease",
    "WitnessState",
    "metadata",
]
