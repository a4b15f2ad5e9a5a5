"""Associations publish statements signed with their own key; the registry verifies and logs them.

The association's PKI is made here at run time (:mod:`tests.support.own_pki`); timestamps come from the
registry's own authority, on loopback (the Flask test client has no HTTP server for
``/v1/timestamp``) or, in the end-to-end test, from ``/v1/timestamp`` of a real server.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rfc8785
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tech7_audit.manifests import read_manifest
from tech7_audit.pipeline import audit_document
from werkzeug.serving import make_server

from app.provenance.signing import CREATED, ManifestSigner
from app.publishing.kinds import DocumentKind
from tests.support.own_pki import OwnPKI, leaf_only, make_own_pki

ROOT = Path(__file__).resolve().parents[2]
BITKOM = "/v1/associations/bitkom"
SLUG = "ai-act-position"
STATEMENT = f"{BITKOM}/statements/{SLUG}"
CONTENT = {"statement_type": "position", "title": "Bitkom on SME participation",
           "text": ["Bitkom supports the TECH7 recommendation on SME participation."],
           "addresses": [{"slug": "sme-participation", "version": 1}]}


def _load_example():
    spec = importlib.util.spec_from_file_location("sign_statement",
                                                  ROOT / "examples" / "sign_statement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()




@pytest.fixture
def bitkom(token_of) -> dict[str, str]:
    return token_of("bitkom")


@pytest.fixture(scope="module")
def pki() -> OwnPKI:
    """Bitkom's own CA and signing certificate."""
    return make_own_pki("Bitkom")


@pytest.fixture
def tsa_url(app) -> Iterator[str]:
    """The registry's own timestamp authority, on a loopback listener of its own."""
    with app.extensions["tech7.provenance"].timestamp_authority().serve_loopback() as tsa:
        yield tsa.url


@pytest.fixture
def approved(client, operator, bitkom, pki) -> str:
    """Bitkom's CA, registered and approved; returns its SHA-256."""
    registered = client.post(f"{BITKOM}/ca", data=pki.ca_pem, headers=bitkom,
                             content_type="application/x-pem-file")
    assert registered.status_code == 201, registered.json
    sha256 = registered.json["sha256"]
    approval = client.post(f"{BITKOM}/ca/{sha256}/approve", headers=operator)
    assert approval.status_code == 200, approval.json
    return sha256


def _state(client) -> tuple[bytes, ...]:
    """What a refused request must leave unchanged."""
    return (client.get("/v1/changes", query_string={"limit": 500}).get_data(),
            client.get("/v1/log/checkpoint").get_data(),
            client.get(f"{BITKOM}/ca").get_data())


def _sign(pki: OwnPKI, body: bytes, tsa_url: str | None, **kwargs) -> bytes:
    return example.sign(body, certificate_chain_pem=pki.chain_pem, private_key_pem=pki.key_pem,
                        tsa_url=tsa_url, **kwargs)


def _upload(client, headers, body: bytes, manifest: bytes, slug: str = SLUG):
    return client.post(f"{BITKOM}/statements/{slug}/own-key-versions", headers=headers,
                       content_type="multipart/form-data",
                       data={"document": (io.BytesIO(body), "version.json", "application/json"),
                             "manifest": (io.BytesIO(manifest), "version.c2pa",
                                          "application/c2pa")})


def _fingerprint(certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _own_key_signer(app, pki: OwnPKI, tsa_url: str | None) -> ManifestSigner:
    """The registry's own signing code, driven with Bitkom's key through a callback, to make
    manifests the example never would (a wrong identity assertion)."""
    return ManifestSigner(
        app.extensions["tech7.keys"].store, tsa_url=tsa_url, verify_after_sign=False,
        sign_callbacks={"bitkom-own": lambda data: pki.signer_key.sign(
            data, ec.ECDSA(hashes.SHA256()))},
        callback_chains_pem={"bitkom-own": pki.chain_pem})


# --- the whole flow ------------------------------------------------------------------------------


def test_register_approve_then_publish_with_own_key(app, client, operator, bitkom, pki, tsa_url):
    registered = client.post(f"{BITKOM}/ca", json={"pem": pki.ca_pem.decode()}, headers=bitkom)
    assert registered.status_code == 201, registered.json
    ca_sha256 = _fingerprint(pki.ca_certificate)
    assert registered.headers["Location"] == f"{BITKOM}/ca/{ca_sha256}"
    assert registered.json["status"] == "pending" and registered.json["log_index"] is None
    listed = client.get(f"{BITKOM}/ca").json
    assert [(c["sha256"], c["status"]) for c in listed["items"]] == [(ca_sha256, "pending")]

    body = example.build_body("bitkom", SLUG, 1, CONTENT)
    manifest = _sign(pki, body, tsa_url)
    before = _state(client)
    refused = _upload(client, bitkom, body, manifest)
    assert refused.status_code == 422 and refused.json["check"] == "signer", refused.json
    assert "no approved CA" in refused.json["detail"]
    assert _state(client) == before

    assert client.post(f"{BITKOM}/ca/{ca_sha256}/approve", headers=bitkom).status_code == 403
    approval = client.post(f"{BITKOM}/ca/{ca_sha256}/approve", headers=operator)
    assert approval.status_code == 200, approval.json
    assert approval.json["status"] == "approved"
    logged = client.get(f"/v1/log/entries/{approval.json['log_index']}").json["record"]
    assert {k: logged[k] for k in ("type", "subject", "association",
                                   "signer_certificate_sha256")} == {
        "type": "ca-approval", "subject": f"{BITKOM}/ca/{ca_sha256}", "association": "bitkom",
        "signer_certificate_sha256": ca_sha256}
    assert client.get(f"{BITKOM}/ca/{ca_sha256}").json["log_index"] == approval.json["log_index"]
    again = client.post(f"{BITKOM}/ca/{ca_sha256}/approve", headers=operator)
    assert again.status_code == 409

    published = _upload(client, bitkom, body, manifest)
    assert published.status_code == 201, published.json
    assert published.headers["Location"] == f"{STATEMENT}/versions/1"
    assert published.get_data() == body
    served = client.get(f"{STATEMENT}/versions/1")
    assert served.get_data() == body
    assert client.get(f"{STATEMENT}/versions/1/manifest").get_data() == manifest

    registry_anchors = client.get("/v1/trust/anchors.pem").get_data()
    report = read_manifest(body, "application/json", manifest,
                           trust_anchors_pem=pki.ca_pem + registry_anchors)
    assert report.trusted and report.timestamp_trusted
    own_certificate = _fingerprint(pki.signer_certificate)
    assert report.signer_certificate_sha256 == own_certificate
    entries = client.get("/v1/log/entries", query_string={
        "sha256": hashlib.sha256(body).hexdigest()}).json["items"]
    assert [(e["record"]["type"], e["record"]["association"], e["record"]["signer"],
             e["record"]["signer_certificate_sha256"], e["record"]["subject"])
            for e in entries] == [("publication", "bitkom", "bitkom", own_certificate,
                                   f"{STATEMENT}/versions/1")]
    assert client.get("/v1/changes", query_string={"limit": 500}).json["items"][-1]["href"] \
        == f"{STATEMENT}/versions/1"

    # An auditor proves it offline from the receipt, with Bitkom's CA among the anchors.
    receipt = client.get(f"{STATEMENT}/versions/1/receipt")
    assert receipt.status_code == 200
    verifier_key = client.get("/v1/trust").json["log"]["verifier_key"]
    audit = audit_document(body, manifest, receipt.get_data(), verifier_key=verifier_key,
                           trust_anchors_pem=pki.ca_pem + registry_anchors)
    assert audit.ok, audit.steps
    without_ca = audit_document(body, manifest, receipt.get_data(), verifier_key=verifier_key,
                                trust_anchors_pem=registry_anchors)
    assert not without_ca.ok and without_ca.steps[-1].name == "manifest"


def test_custodial_v1_then_own_key_versions_chained_through_the_example(
        app, client, bitkom, approved, pki, tmp_path):
    """The example script, over HTTP against a real server, timestamped by its /v1/timestamp."""
    created = client.post(f"{BITKOM}/statements", json={"slug": SLUG, **CONTENT}, headers=bitkom)
    v1 = client.post(f"{STATEMENT}/draft/publish",
                     headers={**bitkom, "If-Match": created.headers["ETag"]})
    assert v1.status_code == 201
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    registry = f"http://127.0.0.1:{server.server_port}"
    try:
        chain, key, content = (tmp_path / "chain.pem", tmp_path / "key.pem",
                               tmp_path / "statement.json")
        chain.write_bytes(pki.chain_pem)
        key.write_bytes(pki.key_pem)
        for text in ("Corrected with our own key.", "Corrected again, still our own key."):
            content.write_text(json.dumps({**CONTENT, "text": [text]}))
            assert example.main(["--registry", registry, "--association", "bitkom",
                                 "--slug", SLUG, "--content", str(content),
                                 "--certificate-chain", str(chain), "--private-key", str(key),
                                 "--token", bitkom["Authorization"].removeprefix("Bearer ")]) == 0
    finally:
        server.shutdown()

    anchors = client.get("/v1/trust/anchors.pem").get_data() + pki.ca_pem
    labels = []
    for number, signer in ((1, _fingerprint(app.extensions["tech7.keys"].store
                                            .signer_certificate("bitkom"))),
                           (2, _fingerprint(pki.signer_certificate)),
                           (3, _fingerprint(pki.signer_certificate))):
        body = client.get(f"{STATEMENT}/versions/{number}").get_data()
        report = read_manifest(body, "application/json",
                               client.get(f"{STATEMENT}/versions/{number}/manifest").get_data(),
                               trust_anchors_pem=anchors)
        assert report.trusted and report.timestamp_trusted
        assert report.signer_certificate_sha256 == signer
        assert json.loads(body)["version"] == number
        # Each names its parent in the bounded form: by hash and log proof, not embedded.
        parents = [i for i in report.ingredients if i.relationship == "parentOf"]
        assert [(p.active_manifest, p.state) for p in parents] == \
            [(None, "Trusted") for _ in labels[-1:]]
        assert [report.parent_proof["manifest_label"]] == labels[-1:] if labels \
            else report.parent_proof is None
        labels.append(report.label)
    assert client.get(STATEMENT).json["text"] == ["Corrected again, still our own key."]


def test_an_upload_reads_the_previous_version_once_and_validates_its_content_once(
        app, client, bitkom, approved, pki, tsa_url, monkeypatch):
    """The intake goes through publishing's own path: one read of the statement's latest
    version, under the writer lock, and one validation of its content."""
    created = client.post(f"{BITKOM}/statements", json={"slug": SLUG, **CONTENT}, headers=bitkom)
    assert created.status_code == 201, created.json  # the statement exists, with no version yet
    body = example.build_body("bitkom", SLUG, 1, CONTENT)
    manifest = _sign(pki, body, tsa_url)
    validated = []
    load_content = DocumentKind.load_content

    def counted(kind, content):
        validated.append(kind.name)
        return load_content(kind, content)

    latest_reads = []

    def seen(connection, cursor, statement, parameters, context, executemany):
        if re.search(r"\bFROM versions\b.*\bORDER BY versions\.number DESC\b", statement, re.S):
            latest_reads.append(statement)

    monkeypatch.setattr(DocumentKind, "load_content", counted)
    engine = app.extensions["tech7.db"].engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        published = _upload(client, bitkom, body, manifest)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert published.status_code == 201, published.json
    assert validated == ["statement"]
    assert len(latest_reads) == 1, latest_reads


# --- refusals ------------------------------------------------------------------------------------


def _published_v1_own_key(client, bitkom, pki, tsa_url) -> tuple[bytes, bytes, bytes]:
    """Version 1, signed with Bitkom's own key: (bytes, manifest, receipt)."""
    body = example.build_body("bitkom", SLUG, 1, CONTENT)
    manifest = _sign(pki, body, tsa_url)
    assert _upload(client, bitkom, body, manifest).status_code == 201
    return body, manifest, client.get(f"{STATEMENT}/versions/1/receipt").get_data()


def _declaration_v1(client) -> tuple[bytes, bytes, bytes]:
    return tuple(client.get(f"/v1/declaration/versions/1{part}").get_data()
                 for part in ("", "/manifest", "/receipt"))


def _next(**changes) -> bytes:
    return example.build_body("bitkom", SLUG, 2, {**CONTENT, "text": ["v2"]} | changes)


def _refusal_cases(app, client, pki, tsa_url):
    """(name, body, manifest, expected check) of uploads of version 2 that must be refused."""
    keys = app.extensions["tech7.keys"].store
    good = _next()
    pretty = json.dumps(json.loads(good), indent=1).encode()
    wrong_version = example.build_body("bitkom", SLUG, 3, CONTENT)
    numeum_body = json.loads(good) | {"association": "numeum"}
    numeum_bytes = rfc8785.dumps(numeum_body)
    stale = example.build_body("bitkom", SLUG, 2, CONTENT,
                               published_at=datetime.now(UTC) - timedelta(hours=1))
    bad_content = _next(statement_type="rant")
    lacking = json.loads(good)
    del lacking["withdrawal_reason"]
    lacking = rfc8785.dumps(lacking)
    foreign = make_own_pki("Not Bitkom")
    custodial = ManifestSigner(keys, tsa_url=tsa_url).sign_sidecar(
        good, "application/json", signer_name="bitkom", title="custodial key", action=CREATED,
        identity={"kind": "statement", "slug": f"bitkom/{SLUG}", "version": 2,
                  "sha256": hashlib.sha256(good).hexdigest(), "association": "bitkom"})
    own_key = _own_key_signer(app, pki, tsa_url)

    def crafted(body: bytes, identity: dict) -> bytes:
        return own_key.sign_sidecar(body, "application/json", signer_name="bitkom-own",
                                    title="crafted", action=CREATED, identity=identity)

    wrong_identity = crafted(good, {"kind": "statement", "slug": f"bitkom/{SLUG}", "version": 1,
                                    "sha256": hashlib.sha256(good).hexdigest(),
                                    "association": "bitkom"})
    declaration = _declaration_v1(client)
    v1 = tuple(client.get(f"{STATEMENT}/versions/1{part}").get_data()
               for part in ("", "/manifest"))
    anchors = client.get("/v1/trust/anchors.pem").get_data() + pki.ca_pem
    return [
        ("not canonical", pretty, _sign(pki, pretty, tsa_url), "canonical"),
        ("not JSON", b"\xff\xfe", crafted(b"\xff\xfe", {}), "canonical"),
        ("wrong version number", wrong_version, _sign(pki, wrong_version, tsa_url), "version"),
        ("another association in the body", numeum_bytes, _sign(pki, numeum_bytes, tsa_url),
         "body"),
        ("published an hour ago", stale, _sign(pki, stale, tsa_url), "published_at"),
        ("invalid content", bad_content, _sign(pki, bad_content, tsa_url), "body"),
        ("a field left out", lacking, _sign(pki, lacking, tsa_url), "body"),
        ("manifest for other bytes", good, _sign(pki, _next(text=["other"]), tsa_url), "binding"),
        ("garbage manifest", good, b"not a manifest", "binding"),
        ("registry-issued (custodial) key", good, custodial, "signer"),
        ("foreign, unregistered CA", good,
         example.sign(good, certificate_chain_pem=foreign.chain_pem,
                      private_key_pem=foreign.key_pem, tsa_url=tsa_url), "signer"),
        ("no timestamp", good, _sign(pki, good, None), "timestamp"),
        ("identity names another version", good, wrong_identity, "identity"),
        ("version 2 names no parent", good, _sign(pki, good, tsa_url, trust_anchors_pem=anchors),
         "parent"),
        ("parentOf is not version 1", good,
         _sign(pki, good, tsa_url, parent=declaration, trust_anchors_pem=anchors), "parent"),
        ("the parent proof is another entry's", good,
         _sign(pki, good, tsa_url, parent=(*v1, declaration[2]), trust_anchors_pem=anchors),
         "parent"),
    ]


def test_refused_uploads_write_nothing(app, client, bitkom, approved, pki, tsa_url):
    v1 = _published_v1_own_key(client, bitkom, pki, tsa_url)
    cases = _refusal_cases(app, client, pki, tsa_url)
    before = _state(client)
    for name, body, manifest, check in cases:
        response = _upload(client, bitkom, body, manifest)
        assert response.status_code == 422, (name, response.get_data(as_text=True))
        assert response.mimetype == "application/problem+json"
        assert response.json["type"] == "/problems/own-key-version-refused"
        assert response.json["check"] == check, (name, response.json)
    assert _state(client) == before
    # The same version, made properly, is accepted afterwards.
    good = _next()
    anchors = client.get("/v1/trust/anchors.pem").get_data() + pki.ca_pem
    accepted = _upload(client, bitkom, good, _sign(pki, good, tsa_url, parent=v1,
                                                   trust_anchors_pem=anchors))
    assert accepted.status_code == 201, accepted.json


def test_version_1_may_not_name_a_parent(client, bitkom, approved, pki, tsa_url):
    body = example.build_body("bitkom", SLUG, 1, CONTENT)
    manifest = _sign(pki, body, tsa_url, parent=_declaration_v1(client),
                     trust_anchors_pem=client.get("/v1/trust/anchors.pem").get_data())
    before = _state(client)
    response = _upload(client, bitkom, body, manifest)
    assert response.status_code == 422 and response.json["check"] == "parent"
    assert _state(client) == before


def test_only_the_association_itself_uploads(client, operator, token_of, approved, pki, tsa_url):
    body = example.build_body("bitkom", SLUG, 1, CONTENT)
    manifest = _sign(pki, body, tsa_url)
    before = _state(client)
    for headers in (token_of("numeum"), operator):
        response = _upload(client, headers, body, manifest)
        assert response.status_code == 403, response.get_data(as_text=True)
    assert _upload(client, {}, body, manifest).status_code == 401
    missing = client.post(f"{STATEMENT}/own-key-versions", headers=token_of("bitkom"),
                          content_type="multipart/form-data",
                          data={"document": (io.BytesIO(body), "version.json")})
    assert missing.status_code == 422 and "manifest" in missing.json["errors"]["files"]
    assert client.post(f"{STATEMENT}/own-key-versions", headers=token_of("bitkom"),
                       json={"document": "x"}).status_code == 415
    assert _state(client) == before


def test_another_associations_approved_ca_does_not_vouch(client, operator, token_of, approved,
                                                        tsa_url):
    numeum_pki = make_own_pki("Numeum")
    numeum = token_of("numeum")
    registered = client.post("/v1/associations/numeum/ca", data=numeum_pki.ca_pem,
                             headers=numeum, content_type="application/x-pem-file")
    assert client.post(f"/v1/associations/numeum/ca/{registered.json['sha256']}/approve",
                       headers=operator).status_code == 200
    body = example.build_body("bitkom", SLUG, 1, CONTENT)
    manifest = _sign(numeum_pki, body, tsa_url)
    before = _state(client)
    response = _upload(client, token_of("bitkom"), body, manifest)
    assert response.status_code == 422 and response.json["check"] == "signer"
    assert _state(client) == before


# --- registering CA certificates -----------------------------------------------------------------


def test_unusable_ca_certificates_are_refused(app, client, bitkom, token_of, operator, pki):
    keys = app.extensions["tech7.keys"].store
    registry_root = keys.root_ca_certificate.public_bytes(serialization.Encoding.PEM)
    expired = make_own_pki("Bitkom", now=datetime.now(UTC) - timedelta(days=30),
                           ca_validity=timedelta(days=7))
    before = _state(client)
    for name, pem in (("a leaf", leaf_only("Bitkom")), ("garbage", b"not a certificate"),
                      ("the signing certificate", pki.chain_pem[:pki.chain_pem.index(b"-----END")
                                                                + 25]),
                      ("two certificates", pki.ca_pem + expired.ca_pem),
                      ("expired", expired.ca_pem), ("the registry's root", registry_root)):
        response = client.post(f"{BITKOM}/ca", data=pem, headers=bitkom,
                               content_type="application/x-pem-file")
        assert response.status_code == 422, (name, response.get_data(as_text=True))
        assert response.json["type"] == "/problems/invalid-ca-certificate"
    assert client.post(f"{BITKOM}/ca", json={"certificate": "x"}, headers=bitkom).status_code == 422
    assert client.post(f"{BITKOM}/ca", data=pki.ca_pem, headers=bitkom,
                       content_type="text/plain").status_code == 415
    for headers in (token_of("numeum"), operator):
        assert client.post(f"{BITKOM}/ca", data=pki.ca_pem, headers=headers,
                           content_type="application/x-pem-file").status_code == 403
    assert client.get("/v1/associations/nobody/ca").status_code == 404
    assert _state(client) == before


def test_a_ca_is_registered_once_and_approved_under_its_own_association(
        client, bitkom, token_of, operator, pki, approved):
    again = client.post(f"{BITKOM}/ca", data=pki.ca_pem, headers=bitkom,
                        content_type="application/x-pem-file")
    assert again.status_code == 409
    elsewhere = client.post(f"/v1/associations/numeum/ca/{approved}/approve", headers=operator)
    assert elsewhere.status_code == 404
    unknown = client.post(f"{BITKOM}/ca/{'0' * 64}/approve", headers=operator)
    assert unknown.status_code == 404
    assert client.get(f"{BITKOM}/ca/not-a-digest").status_code == 422
    record = client.get(f"{BITKOM}/ca/{approved}").json
    assert record["status"] == "approved" and record["pem"] == pki.ca_pem.decode()
    assert record["association"] == "bitkom"


# --- mixed custodial and own-key histories -------------------------------------------------------


def test_a_custodial_version_builds_on_an_own_key_version(client, bitkom, approved, pki, tsa_url):
    """The registry accepted version 1 against Bitkom's approved CA; building version 2 on it
    trusts the same CA."""
    _published_v1_own_key(client, bitkom, pki, tsa_url)
    put = client.put(f"{STATEMENT}/draft", json={**CONTENT, "text": ["Now signed custodially."]},
                     headers={**bitkom, "If-None-Match": "*"})
    assert put.status_code == 201, put.json
    published = client.post(f"{STATEMENT}/draft/publish",
                            headers={**bitkom, "If-Match": put.headers["ETag"]})
    assert published.status_code == 201, published.json

    anchors = client.get("/v1/trust/anchors.pem").get_data() + pki.ca_pem
    body = client.get(f"{STATEMENT}/versions/2").get_data()
    report = read_manifest(body, "application/json",
                           client.get(f"{STATEMENT}/versions/2/manifest").get_data(),
                           trust_anchors_pem=anchors)
    assert report.trusted
    (parent,) = [i for i in report.ingredients if i.relationship == "parentOf"]
    assert parent.state == "Trusted"


def test_an_export_includes_an_own_key_version(app, client, operator, bitkom, approved, pki,
                                               tsa_url):
    _published_v1_own_key(client, bitkom, pki, tsa_url)
    made = client.post("/v1/exports", headers=operator,
                       json={"format": "json", "scope": {"versions": [f"{STATEMENT}/versions/1"]}})
    assert made.status_code == 201, made.json
    export = made.headers["Location"]
    anchors = client.get("/v1/trust/anchors.pem").get_data() + pki.ca_pem
    report = read_manifest(client.get(export).get_data(), "application/json",
                           client.get(export + "/manifest").get_data(), trust_anchors_pem=anchors)
    assert report.trusted
    assert [(i.relationship, i.state) for i in report.ingredients] == [("componentOf", "Trusted")]


def test_an_unapproved_ca_still_vouches_for_nothing(app, client, operator, bitkom, approved, pki,
                                                   tsa_url):
    """Trusting an association's approved CAs for its own versions trusts nothing more: a
    stored version whose manifest chains to a CA that is not approved is refused as a parent and
    as an export's ingredient."""
    _published_v1_own_key(client, bitkom, pki, tsa_url)
    db = app.extensions["tech7.db"]
    with db.engine.begin() as connection:
        # The CA table is not append-only; forgetting the approval stands for a CA the
        # registry never approved.
        connection.exec_driver_sql("UPDATE association_cas SET approved_at = NULL, "
                                   "approved_by = NULL")
    put = client.put(f"{STATEMENT}/draft", json={**CONTENT, "text": ["v2"]},
                     headers={**bitkom, "If-None-Match": "*"})
    refused = client.post(f"{STATEMENT}/draft/publish",
                          headers={**bitkom, "If-Match": put.headers["ETag"]})
    assert refused.status_code == 409 and refused.json["type"].endswith("parent-not-trusted")
    made = client.post("/v1/exports", headers=operator,
                       json={"format": "json", "scope": {"versions": [f"{STATEMENT}/versions/1"]}})
    assert made.status_code == 409, made.json
