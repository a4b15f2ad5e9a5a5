"""The marshmallow building blocks every schema uses, content and HTTP alike.

Strict by default: unknown fields are an error, integers refuse fractions, and date-times refuse
instants the database or Python cannot hold.
"""

from __future__ import annotations

import numbers
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma


class Integer(ma.fields.Integer):
    """An integer that refuses a number with a fractional part (``1.5`` is not truncated to 1).

    A JSON number with a zero fraction (``1.0``) is the integer, as JSON Schema's ``integer``
    has it; digits in a query string parse as always. Every schema uses this field rather than
    marshmallow's, whose default truncates.
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) \
                and not float(value).is_integer():
            raise self.make_error("invalid")
        return super()._validated(value)


class DateTime(ma.fields.AwareDateTime):
    """An RFC 3339 date-time with an offset, loaded as UTC, refused (422) unless the instant lies
    within years 1-9999 in UTC: what Python's ``datetime`` and both database engines hold.

    ``9999-12-31T23:59:59-00:01`` parses, but is past the end of Python's calendar once in UTC;
    refusing it here keeps that arithmetic out of every service.
    """

    default_error_messages = {  # noqa: RUF012 - marshmallow's own per-class attribute
        "range": "The instant must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z."}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("range") from None


class Schema(ma.Schema):
    """Base schema: unknown fields are an error, so typos never pass silently."""

    class Meta:
        unknown = ma.RAISE


#: A slug: lowercase kebab-case, the form of every document's and association's name.
SLUG = ma.validate.Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$", error="Use lowercase kebab-case.")
