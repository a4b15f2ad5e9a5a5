"""Request and response schemas of the document routes, derived from each kind's content schema."""

from __future__ import annotations

import functools

import marshmallow as ma

from app.http.api import Schema
from app.http.pagination import PageQuerySchema
from app.publishing.kinds import DocumentKind


class AsOfQuerySchema(Schema):
    """``as_of``: a point in time (RFC 3339 with a UTC offset)."""

    as_of = ma.fields.AwareDateTime(load_default=None, metadata={
        "description": "Answer as the registry stood at this instant, e.g. 2025-02-10T00:00:00Z."})


class CollectionQuerySchema(PageQuerySchema, AsOfQuerySchema):
    """Filters shared by document collections."""

    q = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=200),
                         metadata={"description": "Case-insensitive text search."})
    include_withdrawn = ma.fields.Boolean(load_default=False)


class RecommendationQuerySchema(CollectionQuerySchema):
    """Filters of the recommendations collection."""

    priority = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=999))
    tag = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64))


class ChangesQuerySchema(Schema):
    """The change feed's cursor and page size."""

    since = ma.fields.String(load_default="0", validate=ma.validate.Regexp(
        r"^[0-9]{1,15}$", error="since must be a cursor returned by this feed."),
        metadata={"description": "Opaque cursor from a previous page's next_cursor; 0 to start."})
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=500))


class ChangeSchema(Schema):
    seq = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    slug = ma.fields.String(required=True)
    version = ma.fields.Integer(required=True)
    published_at = ma.fields.String(required=True)
    withdrawn = ma.fields.Boolean(required=True)
    href = ma.fields.String(required=True)


class ChangesSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(ChangeSchema), required=True)
    next_cursor = ma.fields.String(required=True, metadata={
        "description": "Pass as since to continue; equal to since when there is nothing new."})


class VersionSummarySchema(Schema):
    version = ma.fields.Integer(required=True)
    published_at = ma.fields.String(required=True)
    withdrawn = ma.fields.Boolean(required=True)
    sha256 = ma.fields.String(required=True)
    href = ma.fields.String(required=True)


class VersionListSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(VersionSummarySchema), required=True)
    total = ma.fields.Integer(required=True)


class JsonPatchOperationSchema(Schema):
    """One RFC 6902 operation."""

    class Meta:
        unknown = ma.INCLUDE

    op = ma.fields.String(required=True, validate=ma.validate.OneOf(
        ["add", "remove", "replace", "move", "copy", "test"]))
    path = ma.fields.String(required=True)


def _identity_fields(kind: DocumentKind) -> dict[str, ma.fields.Field]:
    return {"kind": ma.fields.String(required=True), "slug": ma.fields.String(required=True),
            **kind.identity_fields}


@functools.cache
def version_schema(kind: DocumentKind) -> type[ma.Schema]:
    """A published version of ``kind`` as served."""
    return kind.content_schema.from_dict(
        {**_identity_fields(kind), "version": ma.fields.Integer(required=True),
         "published_at": ma.fields.String(required=True)},
        name=f"{kind.name.title()}Version")


@functools.cache
def draft_schema(kind: DocumentKind) -> type[ma.Schema]:
    """A draft of ``kind`` as served (and as accepted back by PUT)."""
    return kind.content_schema.from_dict(
        {**_identity_fields(kind), "based_on_version": ma.fields.Integer(required=True),
         "updated_at": ma.fields.String(required=True)},
        name=f"{kind.name.title()}Draft")


@functools.cache
def collection_schema(kind: DocumentKind) -> type[ma.Schema]:
    """A page of a collection of ``kind``."""
    return Schema.from_dict({"items": ma.fields.List(ma.fields.Nested(version_schema(kind)),
                                                     required=True),
                             "total": ma.fields.Integer(required=True)},
                            name=f"{kind.name.title()}Collection")
