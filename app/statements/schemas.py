"""The content of a statement."""

from __future__ import annotations

import marshmallow as ma

from app.catalog.schemas import WithdrawableContent, text_field
from app.core.fields import SLUG, Integer, Schema

STATEMENT_TYPES = ("position", "endorsement", "progress-report")


class AddressedRecommendation(Schema):
    """A recommendation a statement addresses, pinned to the version it was written against."""

    slug = ma.fields.String(required=True, validate=SLUG)
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
