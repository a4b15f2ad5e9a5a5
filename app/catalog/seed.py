"""Loading the declaration: its data file is published as version 1 of every catalogue document.

Seeding runs once, in one transaction under the registry's writer lock, so several processes that
start together publish it exactly once: the first takes the lock and publishes, the others then
find the declaration already there.

The same transaction first records the key folder's signing certificates (every start does, so a
certificate issued since the last one is recorded too): their ``certificate-issue`` log entries
precede the publications they sign.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.catalog.kinds import ASSOCIATION, DECLARATION, DECLARATION_SLUG, PRIORITY, RECOMMENDATION
from app.certificates.service import CertificateService
from app.publishing.models import Document
from app.publishing.service import PublishingService

SEED_PUBLISHER = "registry:seed"


def load_content(path: str | Path) -> dict[str, Any]:
    """Read the structured declaration data file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def seed_declaration(publishing: PublishingService, path: str | Path, *,
                     certificates: CertificateService) -> bool:
    """Record new signing certificates, then publish the declaration's documents as version 1
    unless already done; True if it seeded."""
    data = load_content(path)
    with publishing.db.registry_transaction() as session:
        certificates.sync(session)
        if session.scalar(sa.select(Document.id).where(Document.kind == DECLARATION.name)):
            return False
        declaration = {k: v for k, v in data["declaration"].items() if k != "slug"}
        publishing.publish_content(session, DECLARATION, DECLARATION_SLUG, declaration,
                                   publisher=SEED_PUBLISHER)
        for priority in data["priorities"]:
            content = {k: v for k, v in priority.items() if k != "number"}
            publishing.publish_content(session, PRIORITY, str(priority["number"]), content,
                                       publisher=SEED_PUBLISHER)
        for recommendation in data["recommendations"]:
            content = {k: v for k, v in recommendation.items() if k != "slug"}
            publishing.publish_content(session, RECOMMENDATION, recommendation["slug"], content,
                                       publisher=SEED_PUBLISHER)
        for association in data["associations"]:
            content = {k: v for k, v in association.items() if k != "slug"}
            publishing.publish_content(session, ASSOCIATION, association["slug"], content,
                                       publisher=SEED_PUBLISHER, association=association["slug"])
    return True
