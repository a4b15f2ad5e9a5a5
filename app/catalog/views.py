"""The API's entry point: links to every collection, and the interactive documentation."""

from __future__ import annotations

import marshmallow as ma
from flask_swagger_ui import get_swaggerui_blueprint

from app.http.api import Blueprint, Schema
from app.publishing.kinds import KINDS

blp = Blueprint("index", __name__, url_prefix="/v1", description="Where to start.")

docs_blp = get_swaggerui_blueprint("/docs", "/openapi.json",
                                   config={"app_name": "tech7-registry"}, blueprint_name="docs")


class IndexSchema(Schema):
    links = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)


@blp.route("")
@blp.response(200, IndexSchema)
def index():
    """List the registry's collections and feeds"""
    links = {kind.collection: f"/v1/{kind.collection}" for kind in KINDS.values()}
    links.update({"changes": "/v1/changes", "openapi": "/openapi.json", "docs": "/docs/"})
    return {"links": links}
