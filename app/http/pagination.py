"""Bounded page-number pagination with RFC 8288 ``Link`` headers and a total count in the body."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import marshmallow as ma
from flask import current_app, request

from app.http.api import Integer

MAX_PAGE = 1_000_000


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
