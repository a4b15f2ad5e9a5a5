"""Request and response schemas of the document routes, derived from each kind's content schema."""

from __future__ import annotations

import copy
from collections.abc import Callable

import marshmallow as ma

from app.core.caching import BoundedCache
from app.core.fields import SLUG, DateTime, Integer, Schema
from app.http.pagination import PageQuerySchema, since_field
from app.publishing.kinds import DocumentKind
from app.statements.schemas import STATEMENT_TYPES


class AsOfQuerySchema(Schema):
    """``as_of``: a point in time (RFC 3339 with a UTC offset)."""

    as_of = DateTime(load_default=None, metadata={
        "description": "Answer as the registry stood at this instant, e.g. 2025-02-10T00:00:00Z."})


class CollectionQuerySchema(PageQuerySchema, AsOfQuerySchema):
    """Filters shared by document collections."""

    q = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=200),
                         metadata={"description": (
                             "Words to find: a document matches when every word of q is one of "
                             "the words of its text (any string value), with case and accents "
                             "folded (é is e, ß is ss). Words are runs of letters and digits; "
                             "whole words, in any order.")})
    include_withdrawn = ma.fields.Boolean(load_default=False)


class RecommendationQuerySchema(CollectionQuerySchema):
    """Filters of the recommendations collection."""

    priority = Integer(load_default=None, validate=ma.validate.Range(min=1, max=999))
    tag = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64))


class ChangesQuerySchema(Schema):
    """The change feed's cursor and page size."""

    since = since_field("seq")
    limit = Integer(load_default=100, validate=ma.validate.Range(min=1, max=500))


def _published_at() -> ma.fields.Field:
    # Served as the string the version's bytes hold, so documented rather than parsed.
    return ma.fields.String(required=True, metadata={
        "format": "date-time",
        "description": "When the version was published: RFC 3339 in UTC with milliseconds, "
                       "e.g. 2025-02-10T09:30:00.000Z."})


def _version_number(description: str) -> ma.fields.Field:
    return Integer(required=True, validate=ma.validate.Range(min=1),
                   metadata={"description": description})


class ChangeSchema(Schema):
    """One publication in the change feed."""

    seq = Integer(required=True, validate=ma.validate.Range(min=1), metadata={
        "description": "Position in publication order across the whole registry; a cursor."})
    kind = ma.fields.String(required=True)
    slug = ma.fields.String(required=True, metadata={
        "description": "The document's slug, as in its URL and its versions' bodies."})
    association = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "The member association the document belongs to (a statement's author, "
                       "or the association a member document describes); null for the "
                       "declaration, priorities and recommendations."})
    version = _version_number("The version this publication made.")
    published_at = _published_at()
    withdrawn = ma.fields.Boolean(required=True)
    document = ma.fields.String(required=True, metadata={
        "description": "The document's URL (its latest version)."})
    href = ma.fields.String(required=True, metadata={"description": "The version's immutable URL."})


class ChangesSchema(Schema):
    """A page of the change feed, oldest first."""

    items = ma.fields.List(ma.fields.Nested(ChangeSchema), required=True)
    next_cursor = Integer(required=True, validate=ma.validate.Range(min=0), metadata={
        "description": "The seq of this page's last item: pass it as since to continue; equal "
                       "to since when there is nothing new."})


class VersionSummarySchema(Schema):
    """One published version of a document, without its content."""

    version = _version_number("Version number, from 1.")
    published_at = _published_at()
    withdrawn = ma.fields.Boolean(required=True)
    sha256 = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[0-9a-f]{64}$"),
                              metadata={"description": "SHA-256 of the version's exact bytes "
                                                       "(RFC 8785); also its ETag."})
    href = ma.fields.String(required=True, metadata={"description": "The version's immutable URL."})


class VersionListSchema(Schema):
    """Every published version of a document, oldest first."""

    items = ma.fields.List(ma.fields.Nested(VersionSummarySchema), required=True)
    total = Integer(required=True, validate=ma.validate.Range(min=0))


class JsonPatchOperationSchema(Schema):
    """One RFC 6902 operation."""

    class Meta:
        unknown = ma.INCLUDE

    op = ma.fields.String(required=True, validate=ma.validate.OneOf(
        ["add", "remove", "replace", "move", "copy", "test"]))
    path = ma.fields.String(required=True)


def _identity_fields(kind: DocumentKind) -> dict[str, ma.fields.Field]:
    return {"kind": ma.fields.String(required=True, validate=ma.validate.OneOf([kind.name]),
                                     metadata={"description": "The kind of document."}),
            "slug": ma.fields.String(required=True, validate=ma.validate.Regexp(kind.slug_pattern),
                                     metadata={"description": "The document's stable identifier "
                                                              "in its URL."}),
            **kind.identity_fields}


def _served_content_fields(kind: DocumentKind) -> dict[str, ma.fields.Field]:
    """Content fields that every served version and draft holds.

    Content is stored as loaded, so a field that loading fills with a default (``withdrawn``,
    ``tags``, ``footnotes`` …) is always present in what is served: required there, with no
    default, even though an editor may leave it out of a draft.
    """
    fields = {}
    for name, field in kind.content_schema().fields.items():
        if field.required or field.load_default is ma.missing:
            continue
        served = copy.deepcopy(field)
        served.load_default = ma.missing
        served.required = True
        fields[name] = served
    return fields


#: Each kind's served schemas, made once: apispec names a schema after its class, so each role
#: of a kind must be one class. Three roles per kind, and far more room than there are kinds.
_SERVED_SCHEMAS: BoundedCache[tuple[str, DocumentKind], type[ma.Schema]] = BoundedCache(64)


def _made_once(role: str, kind: DocumentKind,
               make: Callable[[DocumentKind], type[ma.Schema]]) -> type[ma.Schema]:
    """The schema of ``kind`` in ``role``, made by ``make`` the first time it is asked for."""
    made = _SERVED_SCHEMAS.get((role, kind))
    return made if made is not None else _SERVED_SCHEMAS.put((role, kind), make(kind))


def version_schema(kind: DocumentKind) -> type[ma.Schema]:
    """A published version of ``kind`` as served."""
    return _made_once("version", kind, _make_version_schema)


def draft_schema(kind: DocumentKind) -> type[ma.Schema]:
    """A draft of ``kind`` as served (and as accepted back by PUT)."""
    return _made_once("draft", kind, _make_draft_schema)


def collection_schema(kind: DocumentKind) -> type[ma.Schema]:
    """A page of a collection of ``kind``: each item a served version, plus its ``href``."""
    return _made_once("collection", kind, _make_collection_schema)


def _make_version_schema(kind: DocumentKind) -> type[ma.Schema]:
    return kind.content_schema.from_dict(
        {**_served_content_fields(kind), **_identity_fields(kind),
         "version": _version_number("Version number, from 1; a version never changes."),
         "published_at": _published_at()},
        name=f"{kind.name.title()}Version")


def _make_draft_schema(kind: DocumentKind) -> type[ma.Schema]:
    return kind.content_schema.from_dict(
        {**_served_content_fields(kind), **_identity_fields(kind),
         "based_on_version": Integer(
             required=True, validate=ma.validate.Range(min=0),
             metadata={"description": "The version the draft was started from; 0 for a new "
                                      "document."}),
         "updated_at": ma.fields.String(required=True, metadata={
             "format": "date-time",
             "description": "When the draft last changed (RFC 3339, UTC)."})},
        name=f"{kind.name.title()}Draft")


def _make_collection_schema(kind: DocumentKind) -> type[ma.Schema]:
    item = version_schema(kind).from_dict(
        {"href": ma.fields.String(required=True, metadata={
             "description": "The version's immutable URL; not part of the version's bytes."})},
        name=f"{kind.name.title()}CollectionItem")
    return Schema.from_dict({"items": ma.fields.List(ma.fields.Nested(item), required=True),
                             "total": Integer(required=True,
                                              validate=ma.validate.Range(min=0),
                                              metadata={"description": "Items on all "
                                                                  "pages together."})},
                            name=f"{kind.name.title()}Collection")


class StatementQuerySchema(CollectionQuerySchema):
    """Filters of the statements collections."""

    association = ma.fields.String(load_default=None, validate=SLUG)
    recommendation = ma.fields.String(load_default=None, validate=SLUG, metadata={
        "description": "Only statements that address this recommendation."})
    statement_type = ma.fields.String(load_default=None,
                                      validate=ma.validate.OneOf(STATEMENT_TYPES))
