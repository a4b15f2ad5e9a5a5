"""The editable content of each catalogue kind (what a draft holds; identity comes from the URL)."""

from __future__ import annotations

import marshmallow as ma

from app.core.fields import SLUG, Integer, Schema

_TEXT = ma.validate.Length(min=1, max=20_000)
_TITLE = ma.validate.Length(min=1, max=500)
_PARAGRAPHS = ma.fields.List(ma.fields.String(validate=_TEXT), validate=ma.validate.Length(max=200))


def text_field(*, required: bool) -> ma.fields.List:
    """A document's ``text``: its paragraphs, in order, the one shape of text in every kind.

    Required text has at least one paragraph; optional text (a priority's) defaults to none.
    """
    if required:
        return ma.fields.List(ma.fields.String(validate=_TEXT), required=True,
                              validate=ma.validate.Length(min=1, max=200),
                              metadata={"description": "Paragraphs, in order; at least one."})
    return ma.fields.List(ma.fields.String(validate=_TEXT), load_default=list,
                          validate=ma.validate.Length(max=200),
                          metadata={"description": "Paragraphs, in order."})


class WithdrawableContent(Schema):
    """Fields every document has: withdrawal is a published version with ``withdrawn: true``."""

    withdrawn = ma.fields.Boolean(load_default=False, metadata={
        "description": "True on the version that withdraws the document; earlier versions stay."})
    withdrawal_reason = ma.fields.String(load_default=None, allow_none=True,
                                         validate=ma.validate.Length(max=2000), metadata={
        "description": "Why the document was withdrawn; only with withdrawn: true."})

    @ma.validates_schema
    def _reason_only_when_withdrawn(self, data, **_kwargs):
        if data.get("withdrawal_reason") and not data.get("withdrawn"):
            raise ma.ValidationError("Give a withdrawal_reason only with withdrawn: true.",
                                     "withdrawal_reason")


class SectionSchema(Schema):
    """A headed section of the declaration."""

    heading = ma.fields.String(required=True, validate=_TITLE)
    paragraphs = ma.fields.List(ma.fields.String(validate=_TEXT), required=True,
                                validate=ma.validate.Length(max=200))


class FootnoteSchema(Schema):
    """A numbered footnote, referred to as [n] in the text."""

    number = Integer(required=True, validate=ma.validate.Range(min=1, max=999))
    text = ma.fields.String(required=True, validate=_TEXT)


class ReferenceSchema(Schema):
    """An external framework or text the declaration refers to."""

    id = ma.fields.String(required=True, validate=SLUG, metadata={
        "description": "Identifier that recommendations use in their references."})
    name = ma.fields.String(required=True, validate=_TITLE)


class DeclarationContent(WithdrawableContent):
    """The declaration itself: its context, preamble, sections and call to action."""

    title = ma.fields.String(required=True, validate=_TITLE)
    summit = ma.fields.String(required=True, validate=_TITLE,
                              metadata={"description": "The event the declaration addresses."})
    members_intro = ma.fields.String(required=True, validate=_TEXT, metadata={
        "description": "The sentence that introduces the member associations."})
    preamble = _PARAGRAPHS
    sections = ma.fields.List(ma.fields.Nested(SectionSchema), required=True,
                              validate=ma.validate.Length(max=100))
    call_to_action = ma.fields.Nested(SectionSchema, required=True)
    footnotes = ma.fields.List(ma.fields.Nested(FootnoteSchema), load_default=list)
    references = ma.fields.List(ma.fields.Nested(ReferenceSchema), load_default=list)


class PriorityContent(WithdrawableContent):
    """One of the seven key priorities."""

    title = ma.fields.String(required=True, validate=_TITLE,
                             metadata={"description": "As listed under KEY PRIORITIES."})
    heading = ma.fields.String(required=True, validate=_TITLE, metadata={
        "description": "As headed in OUR RECOMMENDATIONS TO POLICYMAKERS."})
    text = text_field(required=False)


class RecommendationContent(WithdrawableContent):
    """A recommendation to policymakers under one priority."""

    title = ma.fields.String(required=True, validate=_TITLE)
    headed = ma.fields.Boolean(load_default=True, metadata={
        "description": "False when the title is editorial because the text has no heading."})
    priority = Integer(required=True, validate=ma.validate.Range(min=1, max=7),
                       metadata={"description": "Number of the priority it serves."})
    text = text_field(required=True)
    tags = ma.fields.List(ma.fields.String(validate=SLUG), load_default=list,
                          validate=ma.validate.Length(max=20),
                          metadata={"description": "Topic tags; filter with ?tag=."})
    references = ma.fields.List(ma.fields.String(validate=SLUG), load_default=list,
                                validate=ma.validate.Length(max=50), metadata={
        "description": "Ids of the declaration's references this recommendation cites."})


class AssociationContent(WithdrawableContent):
    """A TECH7 member association."""

    name = ma.fields.String(required=True, validate=_TITLE)
    country = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100),
                               metadata={"description": "The G7 country it represents."})
