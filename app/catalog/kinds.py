"""The catalogue's document kinds: the declaration, its priorities, recommendations, members."""

from __future__ import annotations

import marshmallow as ma
from sqlalchemy.orm import Session

from app.catalog.schemas import AssociationContent, DeclarationContent, PriorityContent, RecommendationContent
from app.core.fields import Integer
from app.publishing.kinds import DocumentKind
from app.publishing.models import document_exists

DECLARATION_SLUG = "tech7-ai-action-summit"

DECLARATION = DocumentKind(
    name="declaration", collection="declaration", content_schema=DeclarationContent,
    description="The TECH7 declaration for the AI Action Summit.",
    singleton_slug=DECLARATION_SLUG)

PRIORITY = DocumentKind(
    name="priority", collection="priorities", content_schema=PriorityContent,
    description="The declaration's seven key priorities, addressed by number.",
    slug_pattern=r"^[1-9][0-9]{0,2}$", identity=lambda slug: {"number": int(slug)},
    identity_fields={"number": Integer(
        required=True, validate=ma.validate.Range(min=1, max=999),
        metadata={"description": "The priority's number in the declaration's list."})})

RECOMMENDATION = DocumentKind(
    name="recommendation", collection="recommendations", content_schema=RecommendationContent,
    description="The recommendations to policymakers, each under one priority.", creatable=True)

ASSOCIATION = DocumentKind(
    name="association", collection="associations", content_schema=AssociationContent,
    description="The ten TECH7 member associations.")



def is_member_association(session: Session, slug: str) -> bool:
    """Whether ``slug`` names a member association (a document of kind ``association``)."""
    return document_exists(session, ASSOCIATION.name, slug)


#: The catalogue's kinds, in the order the API lists them.
CATALOG_KINDS = (DECLARATION, PRIORITY, RECOMMENDATION, ASSOCIATION)
