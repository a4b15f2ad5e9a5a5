"""Trust anchors for verifiers, and the built-in RFC 3161 timestamp authority."""

from __future__ import annotations

import hashlib

import marshmallow as ma
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import Response, current_app, request

from app.http.api import Blueprint, Schema
from app.provenance.service import ProvenanceService

blp = Blueprint("trust", __name__, url_prefix="/v1",
                description="What verifiers need: trust anchors, log key, timestamps.")

TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"


def provenance() -> ProvenanceService:
    return current_app.extensions["tech7.provenance"]


class CertificateSchema(Schema):
    subject = ma.fields.String(required=True)
    issuer = ma.fields.String(required=True)
    serial_number = ma.fields.String(required=True)
    not_before = ma.fields.String(required=True)
    not_after = ma.fields.String(required=True)
    sha256 = ma.fields.String(required=True, metadata={"description": "SHA-256 of the DER."})


class SignerSchema(CertificateSchema):
    name = ma.fields.String(required=True, metadata={
        "description": "registry, or the slug of the association whose statements it signs."})


class LogKeySchema(Schema):
    origin = ma.fields.String(required=True)
    verifier_key = ma.fields.String(required=True, metadata={
        "description": "C2SP signed-note verifier key of the log's checkpoints."})


class TrustSchema(Schema):
    anchors = ma.fields.List(ma.fields.Nested(CertificateSchema), required=True)
    anchors_pem = ma.fields.String(required=True, metadata={"description": "URL of the PEM bundle."})
    timestamp_authority = ma.fields.Nested(CertificateSchema, required=True)
    signers = ma.fields.List(ma.fields.Nested(SignerSchema), required=True)
    log = ma.fields.Nested(LogKeySchema, required=True)


def _describe(certificate: x509.Certificate) -> dict:
    return {"subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
            "serial_number": format(certificate.serial_number, "x"),
            "not_before": certificate.not_valid_before_utc.isoformat().replace("+00:00", "Z"),
            "not_after": certificate.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
            "sha256": hashlib.sha256(
                certificate.public_bytes(serialization.Encoding.DER)).hexdigest()}


@blp.route("/trust")
@blp.response(200, TrustSchema)
def trust():
    """Describe the trust anchors, the timestamp authority, the signers and the log key"""
    keys = provenance().keyring.store
    log = current_app.extensions["tech7.log"]
    return {"anchors": [_describe(keys.root_ca_certificate)],
            "anchors_pem": "/v1/trust/anchors.pem",
            "timestamp_authority": _describe(keys.tsa_certificate),
            "signers": [{"name": name, **_describe(keys.signer_certificate(name))}
                        for name in keys.signer_names()],
            "log": {"origin": log.origin, "verifier_key": log.verifier_key}}


@blp.route("/trust/anchors.pem")
@blp.response(200, content_type="application/x-pem-file")
def anchors_pem():
    """The trust anchors as one PEM bundle (what a C2PA verifier configures)"""
    return Response(provenance().trust_anchors_pem, mimetype="application/x-pem-file")


@blp.route("/timestamp", methods=["POST"])
@blp.response(200, content_type=TIMESTAMP_REPLY)
@blp.public_write
@blp.accepts(TIMESTAMP_QUERY)
def timestamp():
    """RFC 3161 time-stamping: POST a TimeStampReq, get a TimeStampResp"""
    reply = provenance().timestamp_authority().respond(request.get_data())
    return Response(reply, mimetype=TIMESTAMP_REPLY)
