"""What publishing guarantees about provenance, checked through the HTTP API of a fresh install.

Every published version has a C2PA sidecar that reads Trusted with only the served trust anchors,
carries a trusted timestamp and names the version it signs; version N+1 chains to version N; a
version whose parent no longer verifies, or whose timestamp cannot be had, is never written.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from tech7_audit.history import check_parent_link
from tech7_audit.manifests import read_manifest
from tech7_audit.verification import VerificationFailure

from app.auth.service import OPERATOR, create_token
from app.pki.authority import KeyStore, init_keys
from app.pki.timestamping import TimestampAuthority
from app.provenance.signing import CREATED, EDITED, SelfCheckError

JSON = "application/json"
C2PA = "application/c2pa"
CATALOGUE_KINDS = ("declaration", "priority", "recommendation", "association")
DRAFT = "/v1/recommendations/key-risks/draft"
PUBLISH = DRAFT + "/publish"


@pytest.fixture
def anchors(client) -> bytes:
    """The trust anchors exactly as a verifier downloads them: nothing else is trusted."""
    response = client.get("/v1/trust/anchors.pem")
    assert response.status_code == 200
    return response.get_data()


def _changes(client) -> list[dict[str, Any]]:
    """Every entry of the change feed, following its cursor to the end."""
    items: list[dict[str, Any]] = []
    since = "0"
    while True:
        page = client.get("/v1/changes", query_string={"since": since, "limit": 500})
        assert page.status_code == 200
        items += page.json["items"]
        if len(page.json["items"]) < 500:  # a short page is the feed's end for now
            return items
        since = page.json["next_cursor"]


def _fingerprint(certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _one_byte_changed(body: bytes) -> bytes:
    changed = bytearray(body)
    changed[len(changed) // 2] ^= 0x01
    return bytes(changed)


def _expected_association(kind: str, slug: str) -> str | None:
    # An association's own document is filed under the association; the declaration, its
    # priorities and recommendations belong to no association.
    return slug if kind == "association" else None


# --- every published version ---------------------------------------------------------------------


def test_every_published_version_has_a_trusted_timestamped_manifest(app, client, anchors):
    registry = _fingerprint(app.extensions["tech7.keys"].store.signer_certificate("registry"))
    changes = _changes(client)
    assert len(changes) > 30, "the fresh install should hold the whole declaration"

    for change in changes:
        href = change["href"]
        version = client.get(href)
        assert version.status_code == 200, href
        assert f'<{href}/manifest>; rel="c2pa-manifest"' in version.headers["Link"]
        body = version.get_data()

        manifest = client.get(href + "/manifest")
        assert manifest.status_code == 200, href
        assert manifest.mimetype == C2PA
        etag = manifest.headers["ETag"]
        assert etag == f'"{hashlib.sha256(manifest.get_data()).hexdigest()}"', "strong ETag"
        revalidated = client.get(href + "/manifest", headers={"If-None-Match": etag})
        assert revalidated.status_code == 304 and revalidated.headers["ETag"] == etag

        report = read_manifest(body, JSON, manifest.get_data(), trust_anchors_pem=anchors)
        assert report.state == "Trusted", (href, report.codes, report.error)
        assert report.codes == ()
        assert report.timestamped and report.timestamp_trusted, href
        assert report.identity == {
            "kind": change["kind"], "slug": change["slug"], "version": change["version"],
            "sha256": hashlib.sha256(body).hexdigest(),
            "association": _expected_association(change["kind"], change["slug"]),
        }, href
        if change["kind"] in CATALOGUE_KINDS:
            assert report.signer_certificate_sha256 == registry, href
        if change["version"] == 1:
            assert [a["action"] for a in report.actions] == [CREATED], href

        tampered = read_manifest(_one_byte_changed(body), JSON, manifest.get_data(),
                                 trust_anchors_pem=anchors)
        assert tampered.state == "Invalid", href
        assert "assertion.dataHash.mismatch" in tampered.codes, href


# --- chaining ------------------------------------------------------------------------------------


def _create_draft(client, headers: dict[str, str], **changes: Any) -> str:
    """PUT the latest version back as a draft with ``changes`` (by default a revised title, as
    content equal to the latest version's is not publishable); return the draft's ETag."""
    body = client.get("/v1/recommendations/key-risks").json
    body.update(changes or {"title": body["title"] + " (revised)"})
    response = client.put(DRAFT, json=body, headers={**headers, "If-None-Match": "*"})
    assert response.status_code == 201, response.json
    return response.headers["ETag"]


def test_version_2_names_version_1_as_its_trusted_parent(client, operator, anchors):
    etag = _create_draft(client, operator, tags=["risk", "governance"])
    published = client.post(PUBLISH, headers={**operator, "If-Match": etag})
    assert published.status_code == 201, published.json

    base = "/v1/recommendations/key-risks/versions/"
    reports, stored = {}, {}
    for number in (1, 2):
        body = client.get(f"{base}{number}").get_data()
        manifest = client.get(f"{base}{number}/manifest").get_data()
        stored[number] = (body, manifest)
        reports[number] = read_manifest(body, JSON, manifest, trust_anchors_pem=anchors)
    first, second = reports[1], reports[2]

    assert first.trusted and second.trusted and second.timestamp_trusted
    assert second.identity["version"] == 2
    assert [a["action"] for a in first.actions] == [CREATED]
    assert EDITED in [a["action"] for a in second.actions]
    assert CREATED not in [a["action"] for a in second.actions]
    # The bounded form: the parent is named by hash and log proof, its manifest not embedded.
    parents = [i for i in second.ingredients if i.relationship == "parentOf"]
    assert len(parents) == 1
    assert parents[0].state == "Trusted" and parents[0].active_manifest is None
    assert len(stored[2][1]) < 1.5 * len(stored[1][1])
    body, manifest = stored[1]
    link = check_parent_link(second, number=1, sha256=hashlib.sha256(body).hexdigest(),
                             manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                             manifest_label=first.label,
                             verifier_key=client.get("/v1/trust").json["log"]["verifier_key"])
    assert link.checkpoint is not None and link.checkpoint.tree_size >= 1
    with pytest.raises(VerificationFailure, match="manifest_sha256"):
        check_parent_link(second, number=1, sha256=hashlib.sha256(body).hexdigest(),
                          manifest_sha256=hashlib.sha256(manifest + b" ").hexdigest(),
                          manifest_label=first.label,
                          verifier_key=client.get("/v1/trust").json["log"]["verifier_key"])


# --- nothing is written when provenance cannot be established -------------------------------------


def _written_state(app, client, headers: dict[str, str]) -> dict[str, Any]:
    """What a refused publish must leave untouched: versions, log, change feed and the draft."""
    with app.extensions["tech7.db"].engine.connect() as connection:
        versions = connection.scalar(sa.text("SELECT count(*) FROM versions"))
    checkpoint = client.get("/v1/log/checkpoint")
    assert checkpoint.status_code == 200
    draft = client.get(DRAFT, headers=headers)
    return {"versions": versions,
            # C2SP tlog-checkpoint: origin, then the tree size, then the root hash.
            "log_size": int(checkpoint.get_data(as_text=True).splitlines()[1]),
            "changes": _changes(client),
            "draft": (draft.status_code, draft.headers.get("ETag"))}


def _rewrite_manifest(app, kind: str, slug: str, number: int, manifest: bytes) -> None:
    """Overwrite a stored manifest as an attacker with database access would: the immutability
    trigger is switched off first (test-only; the test database is thrown away)."""
    engine = app.extensions["tech7.db"].engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER versions_no_update")
        else:
            connection.exec_driver_sql("ALTER TABLE versions DISABLE TRIGGER versions_no_change")
        updated = connection.execute(sa.text(
            "UPDATE versions SET manifest = :manifest WHERE number = :number AND document_id = "
            "(SELECT id FROM documents WHERE kind = :kind AND slug = :slug)"),
            {"manifest": manifest, "number": number, "kind": kind, "slug": slug})
        assert updated.rowcount == 1


@pytest.mark.parametrize("damage", ["another version's manifest", "truncated"])
def test_a_parent_that_no_longer_verifies_blocks_the_next_version(app, client, operator, damage):
    etag = _create_draft(client, operator)
    own = client.get("/v1/recommendations/key-risks/versions/1/manifest").get_data()
    if damage == "truncated":
        replacement = own[: len(own) // 2]
    else:
        replacement = client.get(
            "/v1/recommendations/sme-participation/versions/1/manifest").get_data()
    _rewrite_manifest(app, "recommendation", "key-risks", 1, replacement)
    before = _written_state(app, client, operator)

    refused = client.post(PUBLISH, headers={**operator, "If-Match": etag})

    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "/problems/parent-not-trusted"
    if damage != "truncated":
        assert "assertion.dataHash.mismatch" in refused.json["codes"]
    assert _written_state(app, client, operator) == before
    assert before["draft"] == (200, etag)


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _operator_of(app) -> dict[str, str]:
    token = create_token(app.extensions["tech7.db"], role=OPERATOR, label="test operator")
    return {"Authorization": f"Bearer {token}"}


def _within(seconds: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call`` in a thread; fail (instead of hanging) unless it returns within ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], time.monotonic() - started


def _assert_signing_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "/problems/signing-unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_an_unreachable_tsa_refuses_the_publish_and_writes_nothing(make_app, databases, tmp_path):
    app = make_app(databases.clone_template(), tmp_path, TSA_URL=_closed_port_url(),
                   STARTUP_CHECKS=False)
    try:
        client = app.test_client()
        headers = _operator_of(app)
        etag = _create_draft(client, headers)
        before = _written_state(app, client, headers)

        response, _ = _within(20, lambda: client.post(PUBLISH, headers={**headers,
                                                                          "If-Match": etag}))

        _assert_signing_unavailable(response)
        assert _written_state(app, client, headers) == before
    finally:
        app.extensions["tech7.db"].engine.dispose()


def test_an_external_tsa_timestamps_every_version(make_app, databases, tmp_path, keys_dir):
    # Any RFC 3161 authority will do; this one happens to run the registry's own TSA code.
    keys = KeyStore.load(keys_dir)
    with TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                            chain=keys.tsa_chain).serve_loopback() as external:
        app = make_app(databases.clone_template(), tmp_path, TSA_URL=external.url)
        try:
            client = app.test_client()
            headers = _operator_of(app)
            etag = _create_draft(client, headers)
            published = client.post(PUBLISH, headers={**headers, "If-Match": etag})
            assert published.status_code == 201, published.json
            manifest = client.get(published.headers["Location"] + "/manifest").get_data()
        finally:
            app.extensions["tech7.db"].engine.dispose()

    report = read_manifest(published.get_data(), JSON, manifest,
                           trust_anchors_pem=keys.trust_anchors_pem)
    assert report.trusted and report.timestamp_trusted


def test_the_service_refuses_to_start_without_its_tsa(make_app, databases, tmp_path):
    with pytest.raises(SelfCheckError, match="cannot sign"):
        make_app(databases.clone_template(), tmp_path, TSA_URL=_closed_port_url())


class _SlowTSA:
    """A loopback "TSA" that answers nothing until released (at most ``hold`` seconds)."""

    def __init__(self, hold: float = 30.0):
        self.requests = 0
        self.release = threading.Event()
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tsa.requests += 1
                tsa.release.wait(hold)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def slow_tsa() -> Iterator[_SlowTSA]:
    tsa = _SlowTSA()
    yield tsa
    tsa.close()


def test_a_slow_tsa_gets_503_within_the_configured_timeout(make_app, databases, tmp_path, slow_tsa):
    # c2pa's own HTTP client would wait 30 s; TSA_TIMEOUT bounds the wait (the publish holds the
    # registry's writer lock meanwhile).
    timeout = 0.5
    app = make_app(databases.clone_template(), tmp_path, TSA_URL=slow_tsa.url,
                   TSA_TIMEOUT=timeout, STARTUP_CHECKS=False)
    try:
        client = app.test_client()
        headers = _operator_of(app)
        etag = _create_draft(client, headers)
        before = _written_state(app, client, headers)

        response, elapsed = _within(20, lambda: client.post(PUBLISH, headers={**headers,
                                                                                "If-Match": etag}))

        _assert_signing_unavailable(response)
        assert slow_tsa.requests >= 1, "the configured TSA was never asked"
        assert elapsed < timeout + 4, f"the publish took {elapsed:.1f} s"
        assert _written_state(app, client, headers) == before
    finally:
        app.extensions["tech7.db"].engine.dispose()


# --- start-up ------------------------------------------------------------------------------------


def test_the_service_refuses_to_start_when_its_manifests_would_not_read_trusted(make_app,
        databases, tmp_path, monkeypatch):
    init_keys(tmp_path / "foreign", [])
    foreign_root = KeyStore.load(tmp_path / "foreign").trust_anchors_pem
    monkeypatch.setattr(KeyStore, "trust_anchors_pem", property(lambda self: foreign_root))

    with pytest.raises(SelfCheckError, match="reads Valid"):
        make_app(databases.clone_template(), tmp_path)
