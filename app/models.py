"""Every model, imported once so that ``metadata`` describes the whole schema (for Alembic)."""

from app.auth.models import AccessToken
from app.db import Base
from app.publishing.models import Document, Draft, IdempotencyRecord, RegistryHead, Version

metadata = Base.metadata

__all__ = ["AccessToken", "Document", "Draft", "IdempotencyRecord", "RegistryHead", "Version",
           "metadata"]
