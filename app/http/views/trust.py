"""Trust anchors for verifiers, the trust list of signing certificates and revocations, and the
built-in RFC 3161 timestamp authority."""

from __future__ import annotations

from datetime import datetime

import marshmallow as ma
from cryptography import x509
from flask import Response, current_app, request
from tech7_audit.manifests import MANIFEST_TRUST, TSA_TRUST, certificate_sha256, trust_settings, verifier_settings
from tech7_audit.times import isoformat

from app.certificates.service import CertificateRecord, CertificateService
from app.core.db import utcnow
from app.core.fields import Integer, Schema
from app.http.api import Blueprint
from app.http.bodies import json_response
from app.provenance.service import ProvenanceService

blp = Blueprint("trust", __name__, url_prefix="/v1",
                description="What verifiers need: trust anchors, signing certificates and their "
                            "revocations, log key, timestamps.")

TIMESTAMP_QUERY = "application/timestamp-query"
#: The trust list and certificate records change with every rotation and revocation.
REVALIDATE = "no-cache"
TIMESTAMP_REPLY = "application/timestamp-reply"
CERTIFICATE_STATUSES = ("valid", "expired", "revoked")


def provenance() -> ProvenanceService:
    return current_app.extensions["tech7.provenance"]


def certificates() -> CertificateService:
    """The certificate service of this process."""
    return current_app.extensions["tech7.certificates"]


class CertificateSchema(Schema):
    subject = ma.fields.String(required=True)
    issuer = ma.fields.String(required=True)
    serial_number = ma.fields.String(required=True, metadata={"description": "Lowercase hex."})
    not_before = ma.fields.String(required=True, metadata={"description": "RFC 3339 UTC."})
    not_after = ma.fields.String(required=True, metadata={"description": "RFC 3339 UTC."})
    sha256 = ma.fields.String(required=True, metadata={"description": "SHA-256 of the DER."})


class CurrentSignerSchema(CertificateSchema):
    name = ma.fields.String(required=True, metadata={
        "description": "registry, or the slug of the association whose statements it signs."})


class RevocationSchema(Schema):
    certificate_sha256 = ma.fields.String(required=True)
    signer = ma.fields.String(required=True)
    revoked_at = ma.fields.String(required=True, metadata={
        "description": "RFC 3339 UTC. A manifest whose trusted (RFC 3161) signing time is at or "
                       "after this instant is revoked; one signed before it stays good."})
    reason = ma.fields.String(required=True, metadata={
        "description": "RFC 5280 §5.3.1 CRLReason name, e.g. keyCompromise or superseded."})
    log_index = Integer(required=True, metadata={
        "description": "Index of the revocation's entry in the transparency log."})


class IssuedCertificateSchema(CertificateSchema):
    signer = ma.fields.String(required=True, metadata={
        "description": "registry, or the slug of the association whose statements it signs."})
    association = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "The association it signs for; null for the registry's own signer."})
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(CERTIFICATE_STATUSES),
                              metadata={"description": (
                                  "At generated_at: revoked (listed in revocations; manifests "
                                  "signed before revoked_at stay good), expired (after "
                                  "not_after; timestamped manifests signed while it was valid "
                                  "stay good) or valid.")})
    log_index = Integer(required=True, metadata={
        "description": "Index of the certificate-issue entry in the transparency log."})
    href = ma.fields.String(required=True, metadata={
        "description": "URL of this certificate's record (with its PEM); also the subject of "
                       "its log entries."})


class CertificateDetailSchema(IssuedCertificateSchema):
    pem = ma.fields.String(required=True, metadata={"description": "The certificate, PEM."})
    recorded_at = ma.fields.String(required=True, metadata={
        "description": "When the registry recorded and logged it (RFC 3339 UTC)."})
    revocation = ma.fields.Nested(RevocationSchema, required=True, allow_none=True)


class CertificatePathSchema(Schema):
    sha256 = ma.fields.String(required=True, validate=ma.validate.Regexp(
        r"^[0-9a-f]{64}$", error="sha256 is 64 lowercase hex digits."))


class LogKeySchema(Schema):
    origin = ma.fields.String(required=True)
    verifier_key = ma.fields.String(required=True, metadata={
        "description": "C2SP signed-note verifier key of the log's checkpoints."})
    witness_policy = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "The C2SP tlog-policy of the witnesses that cosign the log's checkpoints "
                       "and the quorum they make; null when the log has no witnesses. An "
                       "auditor pins it out of band: a compromised registry could serve another."})


class AnchorsByKindSchema(Schema):
    manifest = ma.fields.List(ma.fields.Nested(CertificateSchema), required=True, metadata={
        "description": "Roots of the certificates that sign manifests: trust_kind \"manifest\"."})
    tsa = ma.fields.List(ma.fields.Nested(CertificateSchema), required=True, metadata={
        "description": "Roots of the RFC 3161 timestamp authorities: trust_kind \"tsa\"."})


class TrustSchema(Schema):
    generated_at = ma.fields.String(required=True, metadata={
        "description": "When this trust list was made (RFC 3339 UTC); statuses are as of then."})
    anchors = ma.fields.List(ma.fields.Nested(CertificateSchema), required=True, metadata={
        "description": "Every trust anchor, for signers and timestamp authorities alike: the "
                       "older single trust.trust_anchors setting of c2pa."})
    anchors_pem = ma.fields.String(required=True, metadata={"description": "URL of the PEM bundle."})
    anchors_by_kind = ma.fields.Nested(AnchorsByKindSchema, required=True, metadata={
        "description": "The anchors of each trust_kind of c2pa's split trust.anchors setting "
                       "(c2pa-rs 0.91.3 and later; from 0.92 a timestamp is trusted only "
                       "through a \"tsa\" entry)."})
    c2pa_settings = ma.fields.String(required=True, metadata={
        "description": "URL of ready c2pa settings (JSON) in the split form, for an offline "
                       "verifier."})
    timestamp_authority = ma.fields.Nested(CertificateSchema, required=True)
    signers = ma.fields.List(ma.fields.Nested(CurrentSignerSchema), required=True, metadata={
        "description": "The certificate each signer signs new manifests with. Older (rotated) "
                       "certificates are not here but in certificates, with every other one "
                       "the registry ever issued: judge a manifest by its certificate's entry "
                       "there and by revocations."})
    certificates = ma.fields.List(ma.fields.Nested(IssuedCertificateSchema), required=True,
                                  metadata={"description": "Every signing certificate the "
                                            "registry issued, current, retired, expired or "
                                            "revoked, in log order."})
    revocations = ma.fields.List(ma.fields.Nested(RevocationSchema), required=True, metadata={
        "description": "Every revocation, in log order. Revocations are final."})
    log = ma.fields.Nested(LogKeySchema, required=True)


def describe_certificate(certificate: x509.Certificate) -> dict:
    """A certificate as the trust list shows it: names, serial, validity and DER fingerprint."""
    return {"subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
            "serial_number": format(certificate.serial_number, "x"),
            "not_before": isoformat(certificate.not_valid_before_utc),
            "not_after": isoformat(certificate.not_valid_after_utc),
            "sha256": certificate_sha256(certificate)}


def _revocation_json(record: CertificateRecord) -> dict | None:
    revocation = record.revocation
    if revocation is None:
        return None
    return {"certificate_sha256": revocation.certificate_sha256, "signer": revocation.signer,
            "revoked_at": isoformat(revocation.revoked_at), "reason": revocation.reason,
            "log_index": revocation.log_index}


def _issued_json(record: CertificateRecord, now: datetime) -> dict:
    return {**describe_certificate(record.certificate()), "signer": record.signer,
            "association": record.association, "status": record.status_at(now),
            "log_index": record.log_index, "href": record.path}


@blp.route("/trust")
@blp.response(200, TrustSchema)
def trust():
    """Describe the trust anchors, signing certificates, revocations and log key

    A self-contained trust list: saved as a file, it is what the offline audit CLI takes as
    --trust-list to check that a manifest's certificate was issued here and not revoked when it
    was signed. It changes with every rotation and revocation, so caches must revalidate it.
    """
    keys = certificates().current_keys()
    log = current_app.extensions["tech7.log"]
    witnessing = current_app.extensions.get("tech7.witnessing")
    now = utcnow()
    records = certificates().certificates()
    revoked = sorted((r for r in records if r.revocation is not None),
                     key=lambda r: r.revocation.log_index if r.revocation is not None else -1)
    trust_list = {
        "generated_at": isoformat(now),
        "anchors": [describe_certificate(keys.root_ca_certificate)],
        "anchors_pem": "/v1/trust/anchors.pem",
        # The registry's root issues the signers' and the timestamp authority's certificates.
        "anchors_by_kind": {MANIFEST_TRUST: [describe_certificate(keys.root_ca_certificate)],
                            TSA_TRUST: [describe_certificate(keys.root_ca_certificate)]},
        "c2pa_settings": "/v1/trust/c2pa-settings.json",
        "timestamp_authority": describe_certificate(keys.tsa_certificate),
        "signers": [{"name": name, **describe_certificate(keys.signer_certificate(name))}
                    for name in keys.signer_names()],
        "certificates": [_issued_json(record, now) for record in records],
        "revocations": [_revocation_json(record) for record in revoked],
        "log": {"origin": log.origin, "verifier_key": log.verifier_key,
                "witness_policy": witnessing.policy_text if witnessing else None}}
    return trust_list, 200, {"Cache-Control": REVALIDATE}


@blp.route("/trust/certificates/<string:sha256>")
@blp.arguments(CertificatePathSchema, location="path", as_kwargs=False)
@blp.response(200, CertificateDetailSchema)
def certificate(args, sha256):
    """One signing certificate the registry issued, with its PEM and revocation"""
    record = certificates().certificate(args["sha256"])
    return {**_issued_json(record, utcnow()), "pem": record.pem,
            "recorded_at": isoformat(record.recorded_at),
            "revocation": _revocation_json(record)}, 200, {"Cache-Control": REVALIDATE}


@blp.route("/trust/anchors.pem")
@blp.response(200, content_type="application/x-pem-file")
def anchors_pem():
    """The trust anchors as one PEM bundle (what a C2PA verifier configures)"""
    return Response(provenance().trust_anchors_pem, mimetype="application/x-pem-file")


@blp.route("/trust/c2pa-settings.json")
@blp.response(200, content_type="application/json")
def c2pa_settings():
    """Ready c2pa settings that trust exactly these anchors, in the split form

    Load them with c2pa.Context.from_dict (c2pa-python), c2patool --settings or any c2pa-rs
    0.91.3 and later: one trust.anchors entry with trust_kind "manifest" and one with
    trust_kind "tsa", both this registry's root, and verification that stays offline. Releases
    before the split form take /v1/trust/anchors.pem as their single trust.trust_anchors.
    """
    uri = request.url_root.rstrip("/") + "/v1/trust/anchors.pem"
    settings = verifier_settings(trust_settings(provenance().trust_anchors_pem, trust_uri=uri))
    return json_response(settings, headers={"Cache-Control": REVALIDATE})


@blp.route("/timestamp", methods=["POST"])
@blp.response(200, content_type=TIMESTAMP_REPLY)
@blp.public_write
@blp.accepts(TIMESTAMP_QUERY)
def timestamp():
    """RFC 3161 time-stamping: POST a TimeStampReq, get a TimeStampResp"""
    reply = provenance().timestamp_authority().respond(request.get_data())
    return Response(reply, mimetype=TIMESTAMP_REPLY)
