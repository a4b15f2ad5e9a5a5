"""``POST /v1/verify``: upload a document (and its sidecar manifest) and learn what it is.

A public, read-only protocol endpoint: it writes nothing, so it needs no token, and it never
fetches anything over the network. Uploads are bounded by ``VERIFY_MAX_BYTES`` (413 beyond).
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, request
from tech7_audit.manifests import INVALID, TRUSTED, VALID

from app.core.fields import Integer, Schema
from app.http.api import Blueprint
from app.http.bodies import json_response
from app.verifier.service import REVOKED, VerificationService

blp = Blueprint("verify", __name__, url_prefix="/v1",
                description="Verify a document: its C2PA manifest, its log entry, its signer.")

MULTIPART = "multipart/form-data"
VERIFY_MAX_BYTES = 5 * 1024 * 1024
"""Default bound of an upload to ``POST /v1/verify`` (``TECH7_VERIFY_MAX_BYTES``)."""

_BINARY = {"type": "string", "format": "binary"}


def verification() -> VerificationService:
    """The verification service of this process."""
    return current_app.extensions["tech7.verification"]


@blp.before_request
def _bound_upload() -> None:
    # Uploads here may be larger than the registry's other bodies (a PDF export), but bounded:
    # werkzeug answers 413 while parsing the form when the body exceeds this.
    request.max_content_length = int(current_app.config.get("VERIFY_MAX_BYTES",
                                                            VERIFY_MAX_BYTES))


class VerifyUploadSchema(Schema):
    file = ma.fields.Raw(required=True, metadata={
        **_BINARY, "description": "The document: a version's JSON, an export (PDF with its "
                                  "manifest embedded, JSON or CSV)."})
    manifest = ma.fields.Raw(metadata={
        **_BINARY, "description": "The C2PA sidecar manifest (application/c2pa) of a JSON or "
                                  "CSV file; omit it for a PDF."})


class VerifyQuerySchema(Schema):
    media_type = ma.fields.String(validate=ma.validate.Regexp(
        r"^[a-z]+/[a-z0-9.+-]+$", error="media_type is a type/subtype such as text/csv."),
        metadata={"description": "Read the file as this media type. Default: what its log "
                                 "record says (versions are JSON), else sniffed from its bytes "
                                 "and file name."})


class VerifiedSignerSchema(Schema):
    common_name = ma.fields.String(allow_none=True)
    organization = ma.fields.String(allow_none=True)
    certificate_sha256 = ma.fields.String(allow_none=True, metadata={
        "description": "SHA-256 of the signing certificate's DER."})
    association = ma.fields.String(allow_none=True)


class VerifiedIngredientSchema(Schema):
    title = ma.fields.String(allow_none=True)
    relationship = ma.fields.String(allow_none=True)
    state = ma.fields.String(allow_none=True)


class VerifiedVersionSchema(Schema):
    href = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    slug = ma.fields.String(required=True)
    number = Integer(required=True)


class VerifiedLogEntrySchema(Schema):
    index = Integer(required=True)
    leaf_hash = ma.fields.String(required=True, metadata={
        "description": "Base64 RFC 9162 leaf hash."})
    type = ma.fields.String(required=True)
    subject = ma.fields.String(required=True)


class VerifiedRevocationSchema(Schema):
    revoked_at = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)


class VerifiedWitnessesSchema(Schema):
    tree_size = Integer(required=True, metadata={
        "description": "The size of the checkpoint a receipt of the entry carries: the newest "
                       "quorate one holding it, or the newest where none is yet."})
    quorate = ma.fields.Boolean(required=True, metadata={
        "description": "Whether its cosignatures make the witness policy's quorum."})
    quorum = ma.fields.String(required=True, metadata={
        "description": "The policy's quorum in words, e.g. 2 of (assoc-a, assoc-b, assoc-c)."})
    cosigned = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "The policy witnesses whose cosignatures on it verify, in policy order."})
    missing = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "The policy witnesses that have not cosigned it."})


class VerificationStepSchema(Schema):
    name = ma.fields.String(required=True)
    ok = ma.fields.Boolean(required=True)
    detail = ma.fields.String(required=True)


class VerificationReportSchema(Schema):
    state = ma.fields.String(required=True, validate=ma.validate.OneOf(
        [TRUSTED, VALID, INVALID, REVOKED]), metadata={"description": (
            "Trusted: every check passed. Revoked: as Trusted, but the signing certificate was "
            "revoked before it signed. Valid: the manifest is intact and Trusted but the "
            "registry did not publish this file (or it has no trusted timestamp). Invalid: "
            "anything else; steps and codes say what failed.")})
    codes = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "C2PA validation failure codes (C2PA 2.2 §15.2)."})
    summary = ma.fields.String(required=True)
    signer = ma.fields.Nested(VerifiedSignerSchema, required=True, allow_none=True)
    signed_at = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "The manifest's RFC 3161 timestamp."})
    timestamp_trusted = ma.fields.Boolean(required=True)
    ingredients = ma.fields.List(ma.fields.Nested(VerifiedIngredientSchema), required=True)
    identity = ma.fields.Dict(required=True, allow_none=True, metadata={
        "description": "The manifest's org.tech7.document assertion."})
    version = ma.fields.Nested(VerifiedVersionSchema, required=True, allow_none=True)
    log_entry = ma.fields.Nested(VerifiedLogEntrySchema, required=True, allow_none=True)
    inclusion_verified = ma.fields.Boolean(required=True, metadata={
        "description": "The entry's inclusion in the log's current checkpoint was verified, "
                       "and the checkpoint's signature with the log key."})
    checkpoint_size = Integer(required=True, allow_none=True)
    revoked = ma.fields.Nested(VerifiedRevocationSchema, required=True, allow_none=True)
    witnesses = ma.fields.Nested(VerifiedWitnessesSchema, required=True, allow_none=True, metadata={
        "description": "The witnesses that cosigned the log's checkpoint holding the entry; null "
                       "when the log has no witnesses or the entry is not verified."})
    steps = ma.fields.List(ma.fields.Nested(VerificationStepSchema), required=True, metadata={
        "description": "The checks run, in order, up to the first that failed."})


# Schema instances, not classes: webargs instantiates a class on every request, and this endpoint
# is meant to cost little more than the C2PA validation itself (bench/verify.py).
@blp.route("/verify", methods=["POST"])
@blp.response(200, VerificationReportSchema)
@blp.public_write
@blp.accepts(MULTIPART)
@blp.arguments(VerifyQuerySchema(), location="query", as_kwargs=False)
@blp.arguments(VerifyUploadSchema(), location="files", as_kwargs=False)
def verify(query, upload):
    """Verify a document and its manifest; say who signed it, when, and which version it is"""
    manifest = upload.get("manifest")
    result = verification().verify(
        upload["file"].read(), manifest.read() if manifest is not None else None,
        media_type=query.get("media_type"), filename=upload["file"].filename)
    # Already plain JSON: serialised directly rather than through the schema, which documents it.
    return json_response(result.as_json(), headers={"Cache-Control": "no-store"})
