"""GET /v1/trust (the trust list) and GET /v1/trust/certificates/{sha256}."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tech7_audit.times import isoformat

from app.core import config
from app.pki.keyring import signer_names_from_seed


def revoke(app, signer: str, reason: str = "keyCompromise", at: datetime | None = None):
    return app.extensions["tech7.certificates"].revoke(signer, reason, at)


def test_trust_list_keeps_what_verifiers_already_read(client):
    trust = client.get("/v1/trust").json
    anchor = x509.load_pem_x509_certificate(client.get("/v1/trust/anchors.pem").get_data())
    assert [a["sha256"] for a in trust["anchors"]] == [
        hashlib.sha256(anchor.public_bytes(serialization.Encoding.DER)).hexdigest()]
    assert trust["anchors_pem"] == "/v1/trust/anchors.pem"
    assert trust["timestamp_authority"]["subject"].startswith("CN=TECH7 Registry Timestamp")
    assert trust["log"]["verifier_key"].startswith(trust["log"]["origin"] + "+")
    assert sorted(s["name"] for s in trust["signers"]) == \
        sorted(signer_names_from_seed(config.SEED_FILE))


def test_trust_list_gives_the_anchors_of_each_trust_kind(client):
    trust = client.get("/v1/trust").json
    assert set(trust["anchors_by_kind"]) == {"manifest", "tsa"}
    assert trust["anchors_by_kind"]["manifest"] == trust["anchors_by_kind"]["tsa"] == \
        trust["anchors"]
    assert trust["c2pa_settings"] == "/v1/trust/c2pa-settings.json"


def test_the_ready_c2pa_settings_read_a_published_version_trusted(client):
    response = client.get("/v1/trust/c2pa-settings.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    settings = json.loads(response.get_data())
    pem = client.get("/v1/trust/anchors.pem").get_data().decode()
    assert settings["trust"] == {"anchors": [
        {"trust_anchors": pem, "trust_kind": kind,
         "trust_uri": "http://localhost/v1/trust/anchors.pem"} for kind in ("manifest", "tsa")]}
    assert settings["verify"]["remote_manifest_fetch"] is False

    version = "/v1/recommendations/sme-participation/versions/1"
    reader = c2pa.Reader("application/json", io.BytesIO(client.get(version).get_data()),
                         client.get(version + "/manifest").get_data(),
                         context=c2pa.Context.from_dict(settings))
    codes = {c["code"] for c in
             json.loads(reader.json())["validation_results"]["activeManifest"]["success"]}
    assert reader.get_validation_state() == "Trusted"
    assert {"signingCredential.trusted", "timeStamp.trusted"} <= codes


def test_trust_list_names_every_issued_certificate_with_its_log_entry(client):
    trust = client.get("/v1/trust").json
    certificates = trust["certificates"]
    assert len(certificates) == 11
    assert trust["revocations"] == []
    current = {s["name"]: s["sha256"] for s in trust["signers"]}
    for certificate in certificates:
        assert certificate["status"] == "valid"
        assert current[certificate["signer"]] == certificate["sha256"]
        assert certificate["association"] == (
            None if certificate["signer"] == "registry" else certificate["signer"])
        assert certificate["href"] == f"/v1/trust/certificates/{certificate['sha256']}"
        logged = client.get(f"/v1/log/entries/{certificate['log_index']}").json["record"]
        assert logged["type"] == "certificate-issue"
        assert logged["subject"] == certificate["href"]
        assert (logged["signer_certificate_sha256"], logged["serial_number"],
                logged["not_before"], logged["not_after"]) == (
            certificate["sha256"], certificate["serial_number"], certificate["not_before"],
            certificate["not_after"])


def test_a_revocation_shows_in_the_trust_list_with_its_log_entry(app, client):
    revocation = revoke(app, "bitkom", "keyCompromise",
                        datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC))
    trust = client.get("/v1/trust").json
    assert trust["revocations"] == [{
        "certificate_sha256": revocation.certificate_sha256, "signer": "bitkom",
        "revoked_at": "2026-05-06T07:08:09.000Z", "reason": "keyCompromise",
        "log_index": revocation.log_index}]
    statuses = {c["signer"]: c["status"] for c in trust["certificates"]}
    assert statuses.pop("bitkom") == "revoked"
    assert set(statuses.values()) == {"valid"}
    logged = client.get(f"/v1/log/entries/{revocation.log_index}").json["record"]
    assert (logged["type"], logged["signer_certificate_sha256"], logged["revoked_at"]) == \
        ("revocation", revocation.certificate_sha256, "2026-05-06T07:08:09.000Z")


def test_revocations_are_listed_in_log_order(app, client):
    later = revoke(app, "techuk")
    earlier_in_time = revoke(app, "numeum", "superseded",
                             datetime(2026, 1, 1, tzinfo=UTC))
    listed = client.get("/v1/trust").json["revocations"]
    assert [r["log_index"] for r in listed] == [later.log_index, earlier_in_time.log_index]


def test_one_certificate_with_its_pem(client):
    listed = client.get("/v1/trust").json["certificates"][0]
    response = client.get(listed["href"])
    assert response.status_code == 200
    assert response.headers["ETag"]
    record = response.json
    certificate = x509.load_pem_x509_certificate(record["pem"].encode())
    assert hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest() == \
        listed["sha256"]
    assert record["revocation"] is None
    assert {k: v for k, v in record.items() if k not in ("pem", "recorded_at", "revocation")} \
        == listed
    assert record["recorded_at"] == isoformat(datetime.fromisoformat(record["recorded_at"]))


def test_one_revoked_certificate_carries_its_revocation(app, client):
    revocation = revoke(app, "jeita", "cessationOfOperation")
    record = client.get(f"/v1/trust/certificates/{revocation.certificate_sha256}").json
    assert record["status"] == "revoked"
    assert record["revocation"] == {
        "certificate_sha256": revocation.certificate_sha256, "signer": "jeita",
        "revoked_at": isoformat(revocation.revoked_at), "reason": "cessationOfOperation",
        "log_index": revocation.log_index}


def test_an_unknown_certificate_is_a_404_problem(client):
    response = client.get("/v1/trust/certificates/" + "a" * 64)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "/problems/unknown-certificate"


@pytest.mark.parametrize("sha256", ["a" * 63, "a" * 65, "A" * 64, "g" * 64, "registry"])
def test_a_malformed_sha256_is_a_422_problem(client, sha256):
    response = client.get(f"/v1/trust/certificates/{sha256}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "sha256" in response.json["errors"]["path"]
