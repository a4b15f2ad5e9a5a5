"""The content of a statement, and the query filters of the statements collections."""

from __future__ import annotations

import marshmallow as ma

from app.catalog.schemas import WithdrawableContent, text_field
from app.http.api import Integer, Schema
from app.publishing.schemas import CollectionQuerySchema

STATEMENT_TYPES = ("position", "endorsement", "progress-report")
_SLUG = ma.validate.Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$", error="Use lowercase kebab-case.")


class AddressedRecommendation(Schema):
    """A recommendation a statement addresses, pinned to the version it was written against."""

    slug = ma.fields.String(required=True, validate=_SLUG)
    version = Integer(required=True, validate=ma.validate.Range(min=1, max=999_999_999))


class StatementContent(WithdrawableContent):
    """A member association's position, endorsement or progress report."""

    statement_type = ma.fields.String(required=True, validate=ma.validate.OneOf(STATEMENT_TYPES))
    title = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=500))
    text = text_field(required=True)
    addresses = ma.fields.List(ma.fields.Nested(AddressedRecommendation), load_default=list,
                               validate=ma.validate.Length(max=50), metadata={
                                   "description": "Recommendations addressed, each at a version."})

    @ma.validates("addresses")
    def _distinct(self, value, **_kwargs):
        # Items that failed their own validation may lack a slug; they are reported already.
        slugs = [item["slug"] for item in value if "slug" in item]
        if len(slugs) != len(set(slugs)):
            raise ma.ValidationError("Address each recommendation once.")


class StatementQuerySchema(CollectionQuerySchema):
    """Filters of the statements collections."""

    association = ma.fields.String(load_default=None, validate=_SLUG)
    recommendation = ma.fields.String(load_default=None, validate=_SLUG, metadata={
        "description": "Only statements that address this recommendation."})
    statement_type = ma.fields.String(load_default=None,
                                      validate=ma.validate.OneOf(STATEMENT_TYPES))
