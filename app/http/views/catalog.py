"""The API's entry point: links to every collection, feed and tool, and the interactive
documentation."""

from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask_swagger_ui import get_swaggerui_blueprint

from app.core.fields import Schema
from app.http.api import Blueprint

blp = Blueprint("index", __name__, url_prefix="/v1", description="Where to start.")

docs_blp = get_swaggerui_blueprint("/docs", "/openapi.json",
                                   config={"app_name": "tech7-registry"}, blueprint_name="docs")


class LinkSchema(Schema):
    href = ma.fields.String(required=True)
    method = ma.fields.String(required=True, validate=ma.validate.OneOf(["GET", "POST"]),
                              metadata={"description": "How the entry point is used."})
    title = ma.fields.String(required=True)


class IndexSchema(Schema):
    links = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(LinkSchema),
                           required=True, metadata={"description": "Every entry point, by name."})


#: The entry points besides the document collections: (name, path, method, title).
_ENTRY_POINTS = (
    ("changes", "/v1/changes", "GET", "Every publication, oldest first, by cursor"),
    ("activity", "/v1/activity", "GET", "The activity trail of writes (operators)"),
    ("tokens", "/v1/tokens", "GET", "Access tokens"),
    ("trust", "/v1/trust", "GET", "Trust anchors, signing certificates, revocations, log key"),
    ("log", "/v1/log/checkpoint", "GET", "The transparency log's signed checkpoint"),
    ("exports", "/v1/exports", "POST", "Make a signed export"),
    ("verify", "/v1/verify", "POST", "Verify a document and its manifest"),
    ("timestamp", "/v1/timestamp", "POST", "RFC 3161 time-stamping"),
    ("openapi", "/openapi.json", "GET", "The OpenAPI 3.1 document"),
    ("docs", "/docs/", "GET", "Interactive API documentation"),
)


@blp.route("")
@blp.response(200, IndexSchema)
def index():
    """Link every entry point: the document collections, feeds, trust, log and tools"""
    links = {kind.collection: {"href": kind.concept_path(kind.singleton_slug) if
                               kind.singleton_slug else f"/v1/{kind.collection}",
                               "method": "GET", "title": kind.description}
             for kind in current_app.extensions["tech7.publishing"].kinds.values()}
    links.update({name: {"href": href, "method": method, "title": title}
                  for name, href, method, title in _ENTRY_POINTS})
    return {"links": links}
