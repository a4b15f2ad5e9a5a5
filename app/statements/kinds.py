"""The statement kind: documents owned, edited and signed by one member association."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.core.errors import InvalidRequest
from app.publishing.kinds import DocumentKind
from app.publishing.models import Document, Version
from app.statements.schemas import StatementContent


def check_addresses(session: Session, content: Mapping[str, Any]) -> None:
    """Every addressed recommendation must exist at the version given."""
    missing = []
    for address in content.get("addresses", ()):
        found = session.scalar(
            sa.select(Version.id).join(Document, Document.id == Version.document_id)
            .where(Document.kind == "recommendation", Document.slug == address["slug"],
                   Version.number == address["version"]))
        if found is None:
            missing.append(f"{address['slug']} version {address['version']}")
    if missing:
        raise InvalidRequest("These addressed recommendations do not exist: "
                             + ", ".join(missing) + ".",
                             errors={"json": {"addresses": [f"Unknown: {m}" for m in missing]}})


STATEMENT = DocumentKind(
    name="statement", collection="statements", content_schema=StatementContent,
    description="Member associations' signed statements, each in its own name.",
    creatable=True, owned_by_association=True, check_references=check_addresses,
    identity=lambda slug: {"association": slug.split("/", 1)[0]},
    identity_fields={"association": ma.fields.String(required=True)})
