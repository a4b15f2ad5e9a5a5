"""The export routes: make a signed export, then download it, its sidecar manifest or its facts.

Making an export needs a token with the ``publish`` permission: the content it packs is public,
but every export is signed by the registry, stored for good and written to the transparency log,
so only those who may add to the registry's record may make one. An operator exports anything; an
association exports only its own record (its ``association`` scope, or versions of its own
statements). Each export costs about a second and a half of signing, so making one also has a
limit of its own (``RATELIMIT_EXPORTS``), on top of the API's. Downloading is public.
"""

from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app, request

from app.access.scopes import Permission
from app.core.etags import none_match
from app.core.fields import Integer, Schema
from app.exports.service import MAX_VERSIONS, MEDIA_TYPES, ExportScope, ExportService
from app.http.api import Blueprint
from app.http.bodies import json_response
from app.http.conditional import not_modified
from app.http.idempotency import idempotent
from app.http.permissions import current_principal, requires
from app.http.ratelimit import limited_by
from app.http.views.documents import C2PA_MEDIA_TYPE, IMMUTABLE
from app.http.views.log import RECEIPT_DOC, receipt_response

blp = Blueprint("exports", __name__, url_prefix="/v1",
                description="Signed exports (PDF with an embedded C2PA manifest; JSON and CSV "
                            "with a sidecar) of the declaration, a priority, an association or "
                            "any set of versions.")

_EXPORT_ID = "<uuid:export_id>"


def exports() -> ExportService:
    """The export service of this process."""
    return current_app.extensions["tech7.exports"]


class ScopeSchema(Schema):
    """Exactly one of: the declaration, a priority, an association, or a list of versions."""

    declaration = ma.fields.Boolean(validate=ma.validate.Equal(True), metadata={
        "description": "The declaration, every priority, recommendation and association "
                       "(latest versions; withdrawn documents left out)."})
    priority = Integer(strict=True, validate=ma.validate.Range(min=1, max=999),
                       metadata={"description": "A priority and its recommendations."})
    association = ma.fields.String(validate=[
        ma.validate.Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$", error="Use the association's slug."),
        ma.validate.Length(max=64)], metadata={
        "description": "An association's own document and its statements."})
    versions = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=300)),
                              validate=ma.validate.Length(min=1, max=MAX_VERSIONS), metadata={
        "description": "Exactly these versions, by path, e.g. "
                       "/v1/recommendations/sme-participation/versions/1."})

    @ma.validates_schema
    def _exactly_one(self, data, **_kwargs):
        if len(data) != 1:
            raise ma.ValidationError("Give exactly one of declaration, priority, association "
                                     "or versions.")

    @ma.post_load
    def _scope(self, data, **_kwargs) -> ExportScope:
        if "versions" in data:
            data["versions"] = tuple(data["versions"])
        return ExportScope(**data)


class ExportRequestSchema(Schema):
    format = ma.fields.String(required=True, validate=ma.validate.OneOf(list(MEDIA_TYPES)))
    scope = ma.fields.Nested(ScopeSchema, required=True)


class ExportSchema(Schema):
    id = ma.fields.String(required=True)
    format = ma.fields.String(required=True)
    media_type = ma.fields.String(required=True)
    sha256 = ma.fields.String(required=True, metadata={
        "description": "SHA-256 of the export's bytes (the signed PDF, or the JSON/CSV)."})
    created_at = ma.fields.String(required=True)
    scope = ma.fields.Dict(required=True)
    versions = ma.fields.List(ma.fields.String(), required=True,
                              metadata={"description": "Paths of the exported versions."})
    manifest = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "URL of the sidecar manifest; null for a PDF (embedded)."})
    href = ma.fields.String(required=True, metadata={"description": "URL of the export's bytes."})
    log_index = Integer(required=True, metadata={
        "description": "The export's entry in the transparency log."})
    receipt = ma.fields.String(required=True, metadata={
        "description": "URL of the export's log receipt (c2sp.org/tlog-proof)."})


def registry_url() -> str:
    """The registry's public base URL, as a PDF export names it: ``PUBLIC_URL`` only.

    Never the request's own ``Host``: a client chooses that, and a signed, logged export would
    then send its readers to whatever host the client named (``serve`` sets ``PUBLIC_URL`` to
    its own address when it is unset and it listens on one host).
    """
    return current_app.config["PUBLIC_URL"]


def _metadata_response(metadata: dict, status: int = 200) -> Response:
    return json_response(metadata, status=status)


@blp.route("/exports", methods=["POST"])
@limited_by("RATELIMIT_EXPORTS")
@requires(Permission.PUBLISH)
@idempotent()
@blp.accepts("application/json")
@blp.arguments(ExportRequestSchema, as_kwargs=False)
@blp.response(201, ExportSchema, headers={"Location": {
    "description": "The export's URL.", "schema": {"type": "string"}}})
def create_export(body):
    """Make a signed, logged export (needs a token with the publish permission)

    An operator exports anything; an association only its own record: the scope
    `{"association": <itself>}`, or versions of its own statements (403 otherwise). Making
    exports has a limit of its own, lower than the API's (429 beyond it).
    """
    principal = current_principal()
    export = exports().create(body["format"], body["scope"], created_by=principal.name,
                              principal=principal, registry_url=registry_url())
    response = _metadata_response(export.metadata(), status=201)
    response.headers["Location"] = export.path
    return response


@blp.route("/exports/" + _EXPORT_ID)
@blp.response(200, description="The export's bytes: application/pdf, application/json or "
                               "text/csv.")
@blp.doc(responses={200: {"content": {media_type: {"schema": {"type": "string",
                                                               "format": "binary"}}
                                      for media_type in MEDIA_TYPES.values()}}})
def export_content(export_id):
    """Download an export: its exact signed bytes"""
    export = exports().get(str(export_id))
    headers = {"ETag": export.etag, "Content-Digest": export.content_digest,
               "Cache-Control": IMMUTABLE,
               "Content-Disposition": f'inline; filename="{export.filename}"'}
    links = [f'<{export.receipt_path}>; rel="receipt"']
    if export.manifest_path is not None:
        # C2PA 2.2 §15.5.3.2: a sidecar manifest is advertised with a Link header.
        links.insert(0, f'<{export.manifest_path}>; rel="c2pa-manifest"')
    headers["Link"] = ", ".join(links)
    if none_match(request.headers.get("If-None-Match"), export.etag):
        return not_modified(export.etag, headers)
    return Response(export.content, mimetype=export.media_type, headers=headers)


@blp.route("/exports/" + _EXPORT_ID + "/manifest")
@blp.response(200, content_type=C2PA_MEDIA_TYPE, description="The C2PA manifest store.")
def export_manifest(export_id):
    """The sidecar C2PA manifest of a JSON or CSV export (a PDF's is embedded)"""
    export = exports().with_sidecar(str(export_id))
    headers = {"ETag": export.manifest_etag, "Cache-Control": IMMUTABLE}
    if none_match(request.headers.get("If-None-Match"), export.manifest_etag):
        return not_modified(export.manifest_etag, headers)
    return Response(export.manifest, mimetype=C2PA_MEDIA_TYPE, headers=headers)


@blp.route("/exports/" + _EXPORT_ID + "/info")
@blp.response(200, ExportSchema)
def export_info(export_id):
    """What an export holds: format, digest, versions, manifest and log entry"""
    response = _metadata_response(exports().get(str(export_id)).metadata())
    response.headers["Cache-Control"] = IMMUTABLE
    return response


@blp.route("/exports/" + _EXPORT_ID + "/receipt")
@blp.response(200, **RECEIPT_DOC)
def export_receipt(export_id):
    """A self-contained log receipt of the export: its entry, inclusion proof and checkpoint

    Built as a version's receipt is: where the log has witnesses, `Tech7-Quorate: ?1` marks a
    checkpoint with the policy's quorum of cosignatures, and `?0` one without it (yet).
    """
    return receipt_response(exports().get(str(export_id)).log_index)
