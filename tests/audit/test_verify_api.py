"""POST /v1/verify: what an upload is, who signed it, when, which version; never a false Trusted
and never a 500."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tech7_audit.verification import parse_time
from tech7_tlog.note import sign_note

from app.auth.service import ASSOCIATION, create_token
from app.pki.keyring import REGISTRY_SIGNER
from app.verifier import service as audit_service
from tests.support.audit import (
    OTHER_VERSION,
    VERSION,
    multipart,
    one_byte_changed,
    publish_new_version,
    published_versions,
    sign,
    upload,
)


def _verified(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.json


def _invalid(response, *codes: str, step: str = "manifest") -> dict:
    """The report says Invalid, failing at ``step`` (one before inclusion) with ``codes``."""
    report = _verified(response)
    assert report["state"] == "Invalid", report["summary"]
    assert report["inclusion_verified"] is False, "every step before inclusion stops the chain"
    for code in codes:
        assert code in report["codes"], report["codes"]
    failed = report["steps"][-1]
    assert failed["ok"] is False and failed["name"] == step, report["steps"]
    assert report["summary"].startswith(f"Not verified ({step}): ")
    return report


def test_a_published_version_is_trusted_and_named(client, materials):
    version = materials()
    report = _verified(upload(client, version.body, version.manifest))
    assert report["state"] == "Trusted", report["summary"]
    assert report["codes"] == []
    assert report["version"] == {"href": VERSION, "kind": "recommendation",
                                 "slug": "sme-participation", "number": 1}
    assert report["signer"]["organization"] == REGISTRY_SIGNER
    assert report["signer"]["association"] is None
    registry = next(s for s in version.trust["signers"] if s["name"] == REGISTRY_SIGNER)
    assert report["signer"]["certificate_sha256"] == registry["sha256"]
    assert report["timestamp_trusted"] is True and report["signed_at"]
    assert report["identity"]["sha256"] == version.sha256
    entry = client.get("/v1/log/entries", query_string={"sha256": version.sha256}).json["items"][0]
    assert report["log_entry"]["index"] == entry["index"]
    assert report["log_entry"]["leaf_hash"] == entry["leaf_hash"]
    assert report["inclusion_verified"] is True
    assert report["checkpoint_size"] == int(
        client.get("/v1/log/checkpoint").get_data(as_text=True).split("\n")[1])
    assert report["revoked"] is None
    assert VERSION in report["summary"] and report["summary"].startswith("Signed by registry at")
    assert all(step["ok"] for step in report["steps"])


def test_every_published_version_is_trusted_with_its_association(client):
    for href in published_versions(client):
        body = client.get(href).get_data()
        manifest = client.get(href + "/manifest").get_data()
        report = _verified(upload(client, body, manifest))
        assert report["state"] == "Trusted", (href, report["summary"])
        assert report["version"]["href"] == href
        association = json.loads(body).get("slug") if "/associations/" in href else None
        assert report["signer"]["association"] == association


def test_inclusion_is_checked_against_the_current_checkpoint(client, operator, materials):
    version = materials()
    before = _verified(upload(client, version.body, version.manifest))["checkpoint_size"]
    newer = publish_new_version(client, operator)
    report = _verified(upload(client, version.body, version.manifest))
    assert report["state"] == "Trusted" and report["checkpoint_size"] == before + 1
    latest = _verified(upload(client, client.get(newer).get_data(),
                              client.get(newer + "/manifest").get_data()))
    assert latest["state"] == "Trusted" and latest["version"]["number"] == 2
    assert [i["relationship"] for i in latest["ingredients"]] == ["parentOf"]
    assert latest["ingredients"][0]["state"] == "Trusted"


@pytest.mark.parametrize("export_format", ["pdf", "csv"])
def test_a_signed_export_is_trusted_and_named_by_its_log_entry(client, operator, export_format):
    created = client.post("/v1/exports", json={"format": export_format,
                                                "scope": {"association": "bitkom"}},
                          headers=operator)
    assert created.status_code == 201, created.get_data(as_text=True)
    export = created.json
    content = client.get(export["href"]).get_data()
    sidecar = client.get(export["manifest"]).get_data() if export["manifest"] else None
    report = _verified(upload(client, content, sidecar,
                              filename=f"export.{export_format}"))
    assert report["state"] == "Trusted", report["summary"]
    assert report["version"] is None, "an export is logged, but it is no version"
    assert report["log_entry"]["index"] == export["log_index"]
    assert report["log_entry"]["type"] == "export"
    assert report["signer"]["association"] == "bitkom"
    assert f"logged as {export['href']}" in report["summary"]
    tampered = _verified(upload(client, one_byte_changed(content), sidecar,
                                filename=f"export.{export_format}"))
    assert tampered["state"] == "Invalid"


def _sign_statement_example():
    """examples/sign_statement.py, the script an association signs its own statements with."""
    path = Path(__file__).resolve().parents[2] / "examples" / "sign_statement.py"
    spec = importlib.util.spec_from_file_location("sign_statement", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_statement_signed_with_the_associations_own_key_is_trusted(app, client, operator,
                                                                    foreign_keys):
    """Its manifest chains to the association's approved CA, not to the registry's root."""
    bitkom = {"Authorization": "Bearer " + create_token(
        app.extensions["tech7.db"], role=ASSOCIATION, association="bitkom")}
    ca = client.post("/v1/associations/bitkom/ca", headers=bitkom,
                     data=foreign_keys.root_ca_certificate.public_bytes(Encoding.PEM),
                     content_type="application/x-pem-file")
    assert ca.status_code == 201, ca.json
    approval = client.post(f"/v1/associations/bitkom/ca/{ca.json['sha256']}/approve",
                           headers=operator)
    assert approval.status_code == 200, approval.json
    example = _sign_statement_example()
    body = example.build_body("bitkom", "ai-act-position", 1, {
        "statement_type": "position", "title": "Bitkom on SME participation",
        "text": ["Bitkom supports the TECH7 recommendation on SME participation."],
        "addresses": [{"slug": "sme-participation", "version": 1}]})
    with app.extensions["tech7.provenance"].timestamp_authority().serve_loopback() as tsa:
        manifest = example.sign(body, certificate_chain_pem=foreign_keys.signer_chain_pem(
            "registry"), private_key_pem=foreign_keys.signer_key_pem("registry"),
            tsa_url=tsa.url)
    document, content_type = multipart({"document": (body, "v.json"),
                                        "manifest": (manifest, "v.c2pa")})
    published = client.post("/v1/associations/bitkom/statements/ai-act-position/own-key-versions",
                            data=document, content_type=content_type, headers=bitkom)
    assert published.status_code == 201, published.json

    report = _verified(upload(client, body, manifest))
    assert report["state"] == "Trusted", report["summary"]
    assert report["version"]["href"] == \
        "/v1/associations/bitkom/statements/ai-act-position/versions/1"
    assert report["signer"]["association"] == "bitkom"
    assert report["signer"]["certificate_sha256"] == hashlib.sha256(
        foreign_keys.signer_certificate("registry").public_bytes(Encoding.DER)).hexdigest()
    # The same CA does not vouch for a file the association never had the registry publish.
    other = body.replace(b"SME participation.", b"SME participation!")
    unlogged = _verified(upload(client, other, example.sign(
        other, certificate_chain_pem=foreign_keys.signer_chain_pem("registry"),
        private_key_pem=foreign_keys.signer_key_pem("registry"), tsa_url=None)))
    assert unlogged["state"] == "Invalid" and "signingCredential.untrusted" in unlogged["codes"]


def test_the_log_itself_is_checked_not_trusted(app, client, materials, monkeypatch):
    """A log whose proofs or checkpoint do not verify makes nothing Trusted."""
    version = materials()
    log = app.extensions["tech7.log"]
    note = log.checkpoint()
    monkeypatch.setattr(log, "inclusion_proof", lambda index, size: [b"\x00" * 32] * 6)
    report = _verified(upload(client, version.body, version.manifest))
    assert report["state"] == "Invalid" and report["inclusion_verified"] is False
    assert report["steps"][-1]["name"] == "inclusion"

    origin = app.config["LOG_ORIGIN"]
    size, root = note.split("\n")[1:3]
    forged = sign_note(f"{origin}\n{size}\n{root}\n", origin, Ed25519PrivateKey.generate())
    monkeypatch.setattr(log, "checkpoint", lambda: forged)
    # A verification may judge against the checkpoint an earlier one read, for a moment.
    monkeypatch.setattr(audit_service, "CHECKPOINT_MAX_AGE", 0.0)
    report = _verified(upload(client, version.body, version.manifest))
    assert report["state"] == "Invalid" and report["steps"][-1]["name"] == "checkpoint"


def test_the_current_checkpoint_is_read_again_after_an_append(app, client, operator, materials,
                                                               monkeypatch):
    """Verifications in a row share one read of the current checkpoint, until the log grows."""
    log = app.extensions["tech7.log"]
    version = materials()
    newer_href = publish_new_version(client, operator)
    newer = materials(newer_href)
    reads = []
    read = log.checkpoint
    monkeypatch.setattr(log, "checkpoint", lambda *args: reads.append(args) or read(*args))
    for _ in range(3):
        assert _verified(upload(client, version.body, version.manifest))["state"] == "Trusted"
    assert len(reads) == 1
    publish_new_version(client, operator)
    reads.clear()
    report = _verified(upload(client, newer.body, newer.manifest))
    assert report["state"] == "Trusted" and len(reads) == 1
    assert report["checkpoint_size"] == log.size()


# --- bad inputs: Invalid, with what failed -------------------------------------------------------


def test_a_truncated_or_altered_file_is_invalid(client, materials):
    version = materials()
    _invalid(upload(client, version.body[:-1], version.manifest), "assertion.dataHash.mismatch")
    _invalid(upload(client, one_byte_changed(version.body), version.manifest),
             "assertion.dataHash.mismatch")


def test_a_sidecar_of_another_file_is_invalid(client, materials):
    version, other = materials(), materials(OTHER_VERSION)
    report = _invalid(upload(client, version.body, other.manifest), "assertion.dataHash.mismatch")
    assert report["version"]["href"] == VERSION, "the file itself is still recognised"


def test_forged_manifests_are_invalid(client, materials):
    version = materials()
    for position in (len(version.manifest) // 3, len(version.manifest) - 200):
        report = _verified(upload(client, version.body,
                                  one_byte_changed(version.manifest, position)))
        assert report["state"] != "Trusted"
    _invalid(upload(client, version.body, version.manifest[:len(version.manifest) // 2]),
             "manifest.unreadable")


def test_a_manifest_from_another_ca_is_invalid(client, materials, foreign_signer):
    version = materials()
    report = _invalid(upload(client, version.body, sign(foreign_signer, version.body)),
                      "signingCredential.untrusted")
    assert report["signer"]["organization"] == REGISTRY_SIGNER, "it claims to be the registry"


def test_garbage_and_missing_sidecars_are_invalid(client, materials):
    version = materials()
    _invalid(upload(client, b"\x00\xffgarbage", b"garbage"), "manifest.unreadable")
    _invalid(upload(client, b"%PDF-1.7\ngarbage"), "manifest.unreadable")
    report = _invalid(upload(client, version.body), "manifest.unreadable")
    assert "sidecar" in report["steps"][-1]["detail"]
    _invalid(upload(client, b"", b""), "manifest.unreadable")


def test_a_trusted_manifest_the_registry_never_published_is_only_valid(client, materials,
                                                                      registry_signer):
    probe = b'{"probe":"not a publication"}'
    report = _verified(upload(client, probe, sign(registry_signer, probe)))
    assert report["state"] == "Valid"
    assert report["steps"][-1]["name"] == "record" and report["version"] is None
    assert "did not publish this file" in report["summary"]


def test_an_untimestamped_manifest_is_not_trusted(client, materials, untimestamped_signer):
    version = materials()
    report = _verified(upload(client, version.body, sign(untimestamped_signer, version.body)))
    assert report["state"] == "Valid" and report["timestamp_trusted"] is False
    assert "timestamp" in report["summary"]


def test_a_re_signed_manifest_is_not_the_logged_one(client, materials, registry_signer):
    version = materials()
    _invalid(upload(client, version.body, sign(registry_signer, version.body)), step="hashes")


# --- revocation ----------------------------------------------------------------------------------


def test_a_certificate_revoked_before_it_signed_reads_revoked(app, client, materials):
    version = materials()
    signed_at = _verified(upload(client, version.body, version.manifest))["signed_at"]
    app.extensions["tech7.certificates"].revoke(
        REGISTRY_SIGNER, "keyCompromise", at=parse_time(signed_at) - timedelta(seconds=1))
    report = _verified(upload(client, version.body, version.manifest))
    assert report["state"] == "Revoked"
    assert report["revoked"]["reason"] == "keyCompromise"
    assert parse_time(report["revoked"]["revoked_at"]) < parse_time(signed_at)
    assert report["inclusion_verified"] is True
    assert "revoked" in report["summary"]


def test_a_certificate_revoked_after_it_signed_still_reads_trusted(app, client, materials):
    version = materials()
    app.extensions["tech7.certificates"].revoke(REGISTRY_SIGNER, "superseded")
    report = _verified(upload(client, version.body, version.manifest))
    assert report["state"] == "Trusted" and report["revoked"] is None


# --- the request itself ----------------------------------------------------------------------------


def test_a_missing_file_is_a_422_problem(client, materials):
    response = upload(client, None, materials().manifest)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "file" in response.json["errors"]["files"]
    text_field = client.post("/v1/verify", data={"file": "not an upload"},
                             content_type="multipart/form-data")
    assert text_field.status_code == 422


def test_an_oversized_upload_is_a_413_problem(make_app, client, databases, tmp_path, materials):
    response = upload(client, b"x" * (5 * 1024 * 1024 + 1))
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert upload(client, b"x" * (2 * 1024 * 1024)).status_code == 200, \
        "uploads may exceed the registry's other body limit"
    small = make_app(databases.clone_template(), tmp_path, VERIFY_MAX_BYTES=4096)
    try:
        version = materials()
        assert upload(small.test_client(), version.body, version.manifest).status_code == 413
    finally:
        small.extensions["tech7.db"].engine.dispose()


def test_other_bodies_are_415_and_bad_media_types_422(client, materials):
    response = client.post("/v1/verify", json={"file": "x"})
    assert response.status_code == 415 and response.mimetype == "application/problem+json"
    version = materials()
    assert upload(client, version.body, version.manifest, media_type="not a type").status_code \
        == 422
    report = _verified(upload(client, version.body, version.manifest, media_type="text/csv"))
    assert report["state"] == "Trusted", "a sidecar's data hash does not depend on the type"


def test_verifying_writes_nothing(client, materials):
    version = materials()
    before = client.get("/v1/log/checkpoint").get_data()
    changes = client.get("/v1/changes", query_string={"since": "0", "limit": 500}).json
    for _ in range(2):
        _verified(upload(client, version.body, version.manifest))
        _verified(upload(client, b"garbage", b"garbage"))
    assert client.get("/v1/log/checkpoint").get_data() == before
    assert client.get("/v1/changes", query_string={"since": "0", "limit": 500}).json == changes


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.binary(max_size=2048), manifest=st.one_of(st.none(), st.binary(max_size=2048)),
       name=st.sampled_from(["a.json", "a.csv", "a.pdf", "a"]))
def test_arbitrary_bytes_never_read_trusted_and_never_fail(client, file, manifest, name):
    report = _verified(upload(client, file, manifest, filename=name))
    assert report["state"] == "Invalid"
    assert report["inclusion_verified"] is False


@pytest.mark.parametrize("flip", [0, 1, 2])
def test_flipped_bytes_across_the_manifest_never_read_trusted_and_logged(client, materials, flip):
    """Bytes in unsigned regions may still read Trusted to c2pa; the log pins the exact bytes."""
    version = materials()
    step = max(1, len(version.manifest) // 40)
    for position in range(flip * step // 3, len(version.manifest), step):
        report = _verified(upload(client, version.body,
                                  one_byte_changed(version.manifest, position)))
        assert report["state"] != "Trusted", position
