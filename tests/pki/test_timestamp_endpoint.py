"""The public trust endpoints: ``POST /v1/timestamp`` (RFC 3161 over HTTP, §3.4), ``GET /v1/trust``
and ``GET /v1/trust/anchors.pem``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tech7_tlog.note import open_note, parse_checkpoint, parse_verifier_key

from app.pki.timestamping import QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE, parse_response

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl is not installed")


def _openssl(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *arguments], capture_output=True, text=True, timeout=60)


def _fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


@needs_openssl
def test_openssl_verifies_a_token_from_the_endpoint(app, client, tmp_path):
    document = tmp_path / "declaration.json"
    document.write_bytes(client.get("/v1/declaration/versions/1").get_data())
    query = tmp_path / "request.tsq"
    made = _openssl("ts", "-query", "-data", str(document), "-sha256", "-cert",
                    "-out", str(query))
    assert made.returncode == 0, made.stderr

    response = client.post("/v1/timestamp", data=query.read_bytes(),
                           content_type=QUERY_MEDIA_TYPE)

    assert response.status_code == 200
    assert response.mimetype == REPLY_MEDIA_TYPE
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(response.get_data())
    keys = app.extensions["tech7.keys"].store
    chain = tmp_path / "ca.pem"
    chain.write_bytes(client.get("/v1/trust/anchors.pem").get_data()
                      + keys.issuing_ca_certificate.public_bytes(serialization.Encoding.PEM))
    verified = _openssl("ts", "-verify", "-data", str(document), "-in", str(reply),
                        "-CAfile", str(chain))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Verification: OK" in verified.stdout

    document.write_bytes(document.read_bytes() + b" ")
    assert _openssl("ts", "-verify", "-data", str(document), "-in", str(reply),
                    "-CAfile", str(chain)).returncode != 0


@pytest.mark.parametrize("body", [b"not a TimeStampReq", b""], ids=["garbage", "empty"])
def test_a_malformed_query_gets_a_rejection_reply_not_an_error(client, body):
    response = client.post("/v1/timestamp", data=body, content_type=QUERY_MEDIA_TYPE)

    assert response.status_code == 200
    assert response.mimetype == REPLY_MEDIA_TYPE
    reply = parse_response(response.get_data())
    assert reply.status == "rejection"
    assert reply.token is None
    assert "bad_data_format" in reply.failure


def test_the_endpoint_only_accepts_timestamp_queries(client):
    wrong = client.post("/v1/timestamp", data=b"{}", content_type="application/json")
    assert wrong.status_code == 415
    assert wrong.mimetype == "application/problem+json"
    assert client.get("/v1/timestamp").status_code == 405


def test_trust_anchors_pem_is_the_registry_root_alone(app, client):
    response = client.get("/v1/trust/anchors.pem")

    assert response.status_code == 200
    assert response.mimetype == "application/x-pem-file"
    anchors = x509.load_pem_x509_certificates(response.get_data())
    root = app.extensions["tech7.keys"].store.root_ca_certificate
    assert anchors == [root]
    assert root.subject == root.issuer
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_trust_describes_the_anchors_the_timestamp_authority_and_the_log_key(app, client):
    trust = client.get("/v1/trust")
    assert trust.status_code == 200
    description = trust.json
    keys = app.extensions["tech7.keys"].store
    root = x509.load_pem_x509_certificate(
        client.get(description["anchors_pem"]).get_data())

    assert description["anchors_pem"] == "/v1/trust/anchors.pem"
    assert [a["sha256"] for a in description["anchors"]] == [_fingerprint(root)]
    assert description["anchors"][0]["subject"] == root.subject.rfc4514_string()

    authority = description["timestamp_authority"]
    assert authority["sha256"] == _fingerprint(keys.tsa_certificate)
    assert authority["issuer"] == keys.issuing_ca_certificate.subject.rfc4514_string()
    # The TSA chains to the served root through the issuing CA.
    keys.tsa_certificate.verify_directly_issued_by(keys.issuing_ca_certificate)
    keys.issuing_ca_certificate.verify_directly_issued_by(root)

    log = description["log"]
    assert log["origin"] == app.config["LOG_ORIGIN"]
    checkpoint = client.get("/v1/log/checkpoint").get_data(as_text=True)
    opened = parse_checkpoint(open_note(checkpoint, [parse_verifier_key(log["verifier_key"])]))
    assert opened.origin == log["origin"]
    assert opened.tree_size > 0
