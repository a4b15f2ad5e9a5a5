"""Own-key publishing: an association's CA certificates, and the versions it signs itself."""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, request
from tech7_audit.times import isoformat

from app.access.scopes import Permission
from app.core.fields import Integer, Schema
from app.http.api import Blueprint
from app.http.idempotency import idempotent
from app.http.pagination import LINK_HEADER, PageQuerySchema, page_of
from app.http.permissions import current_principal, requires
from app.http.schemas import version_schema
from app.http.views.documents import version_response
from app.http.views.trust import CertificatePathSchema, CertificateSchema, describe_certificate
from app.statements.kinds import STATEMENT
from app.statements.own_key_cas import APPROVED, PENDING, CARecord, InvalidCACertificate, OwnKeyCAs
from app.statements.own_key_intake import OwnKeyIntake

blp = Blueprint("own-key", __name__, url_prefix="/v1/associations/<string:association>",
                description="Statements an association signs with its own key: the CA "
                            "certificates it brings, and the own-key versions it uploads.")

PEM_MEDIA_TYPE = "application/x-pem-file"


def own_key_cas() -> OwnKeyCAs:
    """This application's registry of association CA certificates."""
    return current_app.extensions["tech7.own_key_cas"]


def own_key_intake() -> OwnKeyIntake:
    """This application's intake of own-key versions."""
    return current_app.extensions["tech7.own_key_intake"]


class CASchema(CertificateSchema):
    association = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf((PENDING, APPROVED)),
                              metadata={"description": "pending until an operator approves "
                                                       "it; only approved CAs vouch for uploads."})
    registered_at = ma.fields.String(required=True, metadata={"description": "RFC 3339 UTC."})
    approved_at = ma.fields.String(required=True, allow_none=True)
    log_index = Integer(required=True, allow_none=True, metadata={
        "description": "Index of the ca-approval entry in the transparency log."})
    href = ma.fields.String(required=True, metadata={"description": "This CA record's URL."})
    pem = ma.fields.String(required=True, metadata={"description": "The CA certificate, PEM."})


class CAListSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(CASchema), required=True)
    total = Integer(required=True, metadata={"description": "Items on all pages together."})


_SLUG = ma.validate.Regexp(STATEMENT.slug_pattern, error="Use lowercase kebab-case.")


class CAPathSchema(CertificatePathSchema):
    association = ma.fields.String(required=True)


class StatementPathSchema(Schema):
    association = ma.fields.String(required=True)
    slug = ma.fields.String(required=True, validate=[_SLUG, ma.validate.Length(max=64)])


class OwnKeyVersionUploadSchema(Schema):
    document = ma.fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "The version's exact RFC 8785 bytes, as the registry will serve them."})
    manifest = ma.fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "The C2PA sidecar manifest (application/c2pa) signed with the "
                       "association's own key, hard-bound to document."})


def _ca_json(record: CARecord) -> dict:
    return {**describe_certificate(record.certificate()), "association": record.association,
            "status": record.status, "registered_at": isoformat(record.registered_at),
            "approved_at": isoformat(record.approved_at) if record.approved_at else None,
            "log_index": record.log_index, "href": record.path, "pem": record.pem}


@blp.route("/ca", endpoint="cas")
@blp.arguments(PageQuerySchema, location="query", as_kwargs=False)
@blp.response(200, CAListSchema, headers=LINK_HEADER)
def cas(args, association):
    """List the association's own CA certificates, pending and approved"""
    records, page = page_of(own_key_cas().cas(association), args)
    return {"items": [_ca_json(record) for record in records], "total": page.total}, 200, {
        "Link": page.link_header()}


@blp.route("/ca", endpoint="register_ca", methods=["POST"])
@requires(Permission.PUBLISH)
@idempotent()
@blp.accepts(PEM_MEDIA_TYPE, "application/json")
@blp.response(201, CASchema, headers={"Location": {
    "description": "The CA certificate's record.", "schema": {"type": "string"}}})
def register_ca(association):
    """Register one of the association's own CA certificates (PEM, or JSON {"pem": …})

    It stays pending until an operator approves it.
    """
    if request.mimetype == PEM_MEDIA_TYPE:
        pem = request.get_data()
    else:
        body = request.get_json()
        if not isinstance(body, dict) or not isinstance(body.get("pem"), str):
            raise InvalidCACertificate('Send {"pem": "-----BEGIN CERTIFICATE-----…"}.')
        pem = body["pem"].encode()
    record = own_key_cas().register_ca(association, pem, registrant=current_principal())
    return _ca_json(record), 201, {"Location": record.path}


@blp.route("/ca/<string:sha256>", endpoint="ca")
@blp.arguments(CAPathSchema, location="path", as_kwargs=False)
@blp.response(200, CASchema)
def ca(args, association, sha256):
    """One of the association's CA certificates"""
    return _ca_json(own_key_cas().ca(association, args["sha256"]))


@blp.route("/ca/<string:sha256>/approve", endpoint="approve_ca", methods=["POST"])
@requires(Permission.PUBLISH)
@idempotent()
@blp.arguments(CAPathSchema, location="path", as_kwargs=False)
@blp.response(200, CASchema)
def approve_ca(args, association, sha256):
    """Approve a CA certificate (operators only); the approval is logged"""
    return _ca_json(own_key_cas().approve_ca(association, args["sha256"],
                                             approver=current_principal()))


@blp.route(f"/{STATEMENT.collection}/<string:slug>/own-key-versions", endpoint="own_key_version",
           methods=["POST"])
@requires(Permission.PUBLISH)
@idempotent()
@blp.accepts("multipart/form-data")
@blp.arguments(StatementPathSchema, location="path", as_kwargs=False)
@blp.arguments(OwnKeyVersionUploadSchema, location="files", as_kwargs=False)
@blp.response(201, version_schema(STATEMENT), headers={"Location": {
    "description": "The new version's immutable URL.", "schema": {"type": "string"}}})
def own_key_version(path, files, association, slug):
    """Publish the next version, signed with the association's own key

    The registry checks the bytes, the manifest's binding to them, its chain to an approved CA of
    the association, its timestamp and its identity assertion; a refusal names the failed check.
    """
    version = own_key_intake().publish_own_key_version(
        association, path["slug"], files["document"].read(), files["manifest"].read(),
        publisher=current_principal())
    response = version_response(version, STATEMENT, status=201)
    response.headers["Location"] = STATEMENT.version_path(version.slug, version.number)
    return response
