"""How every collection pages: ``items`` in the body, RFC 8288 ``Link`` relations in a header, and
a ``total`` (page-number collections) or a ``next_cursor`` (feeds read oldest-first).

A page-number collection takes ``page`` and ``per_page`` and links first/prev/next/last; a feed
takes ``since`` (a cursor: the integer position of the last item read, 0 to start) and
``limit``, answers ``next_cursor`` (the same integer type as the position each item carries) and
links first and next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

import marshmallow as ma
from flask import current_app, request

from app.core.fields import Integer

T = TypeVar("T")

MAX_PAGE = 1_000_000
#: Cursors are positions stored as 32-bit integers on every engine.
MAX_CURSOR = 2**31 - 1

LINK_HEADER = {"Link": {"description": "RFC 8288 first/prev/next/last pages.",
                        "schema": {"type": "string"}}}
CURSOR_LINK_HEADER = {"Link": {"description": "RFC 8288 first and next pages: next continues "
                                              "after this page's next_cursor.",
                               "schema": {"type": "string"}}}


class PageQuerySchema(ma.Schema):
    """``page`` (1-based) and ``per_page`` query parameters, both bounded."""

    page = Integer(load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE),
                   metadata={"description": "1-based page number."})
    per_page = Integer(load_default=None, validate=ma.validate.Range(min=1, max=100),
                       metadata={"description": "Items per page (at most 100)."})


@dataclass(frozen=True)
class Page:
    """One page of a collection: the slice bounds and the link relations to neighbours."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def last(self) -> int:
        return max(1, -(-self.total // self.size))

    def link_header(self) -> str:
        """RFC 8288 ``Link`` with first/prev/next/last, preserving the request's other parameters."""
        relations = {"first": 1, "last": self.last}
        if self.number > 1:
            relations["prev"] = min(self.number - 1, self.last)
        if self.number < self.last:
            relations["next"] = self.number + 1
        return ", ".join(f'<{_page_url(n, self.size)}>; rel="{rel}"'
                         for rel, n in relations.items())


def page_from(args: dict) -> Page:
    """Resolve the page requested in parsed query ``args`` (size defaults from configuration)."""
    size = args.get("per_page") or current_app.config["PAGE_SIZE_DEFAULT"]
    return Page(number=args.get("page", 1), size=size, total=0)


def _page_url(number: int, size: int) -> str:
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "per_page")]
    params += [("page", str(number)), ("per_page", str(size))]
    return f"{request.path}?{urlencode(params)}"


def page_of(items: Sequence[T], args: dict) -> tuple[list[T], Page]:
    """Page a collection that is bounded by nature and read whole (an association's CA
    certificates, the log entries of one document, a policy's witnesses, a caller's tokens)."""
    requested = page_from(args)
    page = Page(number=requested.number, size=requested.size, total=len(items))
    return list(items[page.offset:page.offset + page.size]), page


def since_field(position: str) -> Integer:
    """The ``since`` query parameter of a feed whose items carry ``position``."""
    return Integer(load_default=0, validate=ma.validate.Range(min=0, max=MAX_CURSOR), metadata={
        "description": f"A previous page's next_cursor (the {position} of the last item read); "
                       "0 to start."})


def cursor_link_header(next_cursor: int, limit: int) -> str:
    """RFC 8288 ``Link`` of a feed page: its first page, and the page after ``next_cursor``."""
    return ", ".join(f'<{request.path}?{urlencode({"since": since, "limit": limit})}>; rel="{rel}"'
                     for rel, since in (("first", 0), ("next", next_cursor)))
