"""Signed exports: every format and scope, verified with nothing but the served trust anchors."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json

import pytest
import rfc8785
import sqlalchemy as sa
from pypdf import PdfReader
from tech7_audit.manifests import read_manifest

from app.access.scopes import Permission
from app.auth.service import ASSOCIATION, OPERATOR, create_token
from app.catalog.kinds import PRIORITY, RECOMMENDATION
from app.exports.pdf import render_export_pdf
from app.exports.service import CSV_COLUMNS, MAX_VERSIONS
from app.statements.kinds import STATEMENT

DECLARATION_TITLE = "TECH7 Declaration for the AI Action Summit"
SEEDED_VERSIONS = 32  # 1 declaration + 7 priorities + 14 recommendations + 10 associations
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def untouched_app(make_app, databases, tmp_path_factory):
    """One application shared by the tests of refused requests, which must write nothing (each
    checks that it did not), so they need no database of their own."""
    application = make_app(databases.clone_template(), tmp_path_factory.mktemp("untouched"))
    yield application
    application.extensions["tech7.db"].engine.dispose()


@pytest.fixture(scope="module")
def untouched_client(untouched_app):
    return untouched_app.test_client()


@pytest.fixture(scope="module")
def untouched_operator(untouched_app) -> dict[str, str]:
    token = create_token(untouched_app.extensions["tech7.db"], role=OPERATOR, label="exports")
    return {"Authorization": f"Bearer {token}"}


def _export(client, headers, export_format: str, scope: dict) -> dict:
    response = client.post("/v1/exports", json={"format": export_format, "scope": scope},
                           headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Location"] == response.json["href"]
    return response.json


def _anchors(client) -> bytes:
    """The trust anchors exactly as a verifier downloads them, and nothing else."""
    response = client.get("/v1/trust/anchors.pem")
    assert response.status_code == 200
    return response.data


def _log_entries(client, sha256: str) -> list[dict]:
    return client.get("/v1/log/entries", query_string={"sha256": sha256}).json["items"]


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def _state(app):
    """What a refused request must leave untouched: the log size and the stored exports."""
    log = app.extensions["tech7.log"]
    with app.extensions["tech7.db"].sessions() as session:
        exports = session.execute(sa.text("SELECT count(*) FROM exports")).scalar_one()
    return log.size(), exports


def test_a_json_export_of_the_declaration_is_signed_logged_and_served_immutably(client,
                                                                               operator):
    metadata = _export(client, operator, "json", {"declaration": True})
    assert metadata["format"] == "json" and metadata["media_type"] == "application/json"
    assert metadata["manifest"] == metadata["href"] + "/manifest"
    assert metadata["scope"] == {"declaration": True}
    assert len(metadata["versions"]) == SEEDED_VERSIONS
    assert metadata["versions"][0] == "/v1/declaration/versions/1"

    response = client.get(metadata["href"])
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    content = response.data
    sha256 = hashlib.sha256(content).hexdigest()
    assert sha256 == metadata["sha256"]
    assert response.headers["ETag"] == f'"{sha256}"'
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert response.headers["Content-Digest"] == \
        f"sha-256=:{base64.b64encode(hashlib.sha256(content).digest()).decode()}:"
    assert response.headers["Link"] == (f'<{metadata["manifest"]}>; rel="c2pa-manifest", '
                                        f'<{metadata["receipt"]}>; rel="receipt"')

    # The bundle is RFC 8785 canonical JSON holding each version exactly as published.
    bundle = json.loads(content)
    assert rfc8785.dumps(bundle) == content
    assert set(bundle) == {"exported_at", "scope", "versions"}
    assert bundle["scope"] == {"declaration": True}
    assert [item["href"] for item in bundle["versions"]] == metadata["versions"]
    for item in bundle["versions"]:
        assert hashlib.sha256(rfc8785.dumps(item["document"])).hexdigest() == item["sha256"]
        assert client.get(item["href"]).headers["ETag"] == f'"{item["sha256"]}"'

    manifest_response = client.get(metadata["manifest"])
    assert manifest_response.mimetype == "application/c2pa"
    manifest = manifest_response.data
    anchors = _anchors(client)
    report = read_manifest(content, "application/json", manifest, trust_anchors_pem=anchors)
    assert report.state == "Trusted", report.codes
    assert report.timestamp_trusted
    assert report.identity["kind"] == "export" and report.identity["id"] == metadata["id"]
    assert report.identity["versions"] == metadata["versions"]
    assert [i.title for i in report.ingredients] == metadata["versions"]
    assert {i.relationship for i in report.ingredients} == {"componentOf"}
    assert {i.state for i in report.ingredients} == {"Trusted"}

    tampered = read_manifest(_flip(content, len(content) // 2), "application/json", manifest,
                             trust_anchors_pem=anchors)
    assert tampered.state == "Invalid"
    assert "assertion.dataHash.mismatch" in tampered.codes

    [entry] = _log_entries(client, sha256)
    assert entry["record"] == {
        "type": "export", "subject": metadata["href"], "association": None,
        "document_sha256": sha256, "manifest_label": report.label,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(), "signer": "registry",
        "signer_certificate_sha256": report.signer_certificate_sha256,
        "time": metadata["created_at"]}
    assert entry["index"] == metadata["log_index"]

    # Immutable: the same bytes again, and 304 for a current copy.
    again = client.get(metadata["href"])
    assert again.data == content
    cached = client.get(metadata["href"], headers={"If-None-Match": f'"{sha256}"'})
    assert cached.status_code == 304 and cached.headers["ETag"] == f'"{sha256}"'
    assert not cached.data
    cached_manifest = client.get(metadata["manifest"],
                                 headers={"If-None-Match": manifest_response.headers["ETag"]})
    assert cached_manifest.status_code == 304
    assert client.get(metadata["href"] + "/info").json == metadata


def test_a_pdf_export_embeds_its_manifest_and_reads_as_a_document(client, operator):
    metadata = _export(client, operator, "pdf", {"declaration": True})
    assert metadata["manifest"] is None
    response = client.get(metadata["href"])
    assert response.mimetype == "application/pdf"
    assert response.headers["Link"] == f'<{metadata["href"]}/receipt>; rel="receipt"'
    content = response.data
    assert content.startswith(b"%PDF")
    assert hashlib.sha256(content).hexdigest() == metadata["sha256"]

    sidecar = client.get(metadata["href"] + "/manifest")
    assert sidecar.status_code == 404
    assert sidecar.mimetype == "application/problem+json"

    anchors = _anchors(client)
    report = read_manifest(content, "application/pdf", None, trust_anchors_pem=anchors)
    assert report.state == "Trusted", report.codes
    assert report.identity["format"] == "pdf"
    assert [i.title for i in report.ingredients] == metadata["versions"]
    assert {i.relationship for i in report.ingredients} == {"componentOf"}
    # A byte of the first page's compressed text, which the manifest's hard binding covers.
    page_stream = content.index(b"stream\n") + 20
    tampered = read_manifest(_flip(content, page_stream), "application/pdf", None,
                             trust_anchors_pem=anchors)
    assert tampered.state == "Invalid"

    [entry] = _log_entries(client, metadata["sha256"])
    assert entry["record"]["type"] == "export"
    assert entry["record"]["manifest_sha256"] == metadata["sha256"]  # embedded: the file's own

    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    flat = " ".join(text.split())
    recommendation = client.get("/v1/recommendations/ethical-guidelines-and-standards").json
    recommendation_sha256 = client.get(
        "/v1/recommendations/ethical-guidelines-and-standards/versions/1").headers["ETag"][1:-1]
    assert DECLARATION_TITLE in flat
    assert recommendation["title"] in flat
    assert recommendation_sha256 in flat
    assert "« TECH7 »" in flat and "TECH7’s commitment" in flat
    assert "How to verify this document" in flat
    # The suite's PUBLIC_URL, the test client's own host.
    assert "http://localhost/v1/trust/anchors.pem" in flat and "tech7-audit" in flat
    assert "http://localhost/v1/trust/c2pa-settings.json" in flat
    assert "trust_kind \"tsa\"" in flat
    assert f"tech7-audit fetch http://localhost{metadata['href']}" in flat


def _pdf_text(content: bytes) -> str:
    return " ".join(" ".join(page.extract_text()
                             for page in PdfReader(io.BytesIO(content)).pages).split())


def test_a_pdf_names_the_configured_public_url(make_app, databases, tmp_path):
    public = make_app(databases.clone_template(), tmp_path,
                      PUBLIC_URL="https://registry.example/tech7")
    try:
        client = public.test_client()
        token = create_token(public.extensions["tech7.db"], role=OPERATOR, label="public")
        headers = {"Authorization": f"Bearer {token}"}
        metadata = _export(client, headers, "pdf", {"priority": 3})
        text = _pdf_text(client.get(metadata["href"]).data)
        assert "https://registry.example/tech7/v1/trust/anchors.pem" in text
        assert f"https://registry.example/tech7{metadata['href']}/receipt" in text
        assert "http://localhost" not in text

        # The command line has no request: a PDF takes TECH7_PUBLIC_URL.
        out = tmp_path / "p3.pdf"
        made = public.test_cli_runner().invoke(args=["export", "--format", "pdf", "--priority",
                                                     "3", "--out", str(out)])
        assert made.exit_code == 0, made.output
        assert "https://registry.example/tech7/v1/trust/anchors.pem" in _pdf_text(
            out.read_bytes())
    finally:
        public.extensions["tech7.db"].engine.dispose()


@pytest.fixture
def no_public_url(make_app, databases, tmp_path):
    """An app whose operator set no TECH7_PUBLIC_URL."""
    application = make_app(databases.clone_template(), tmp_path / "registry", PUBLIC_URL="")
    yield application
    application.extensions["tech7.db"].engine.dispose()


def test_without_a_public_url_the_cli_refuses_a_pdf_and_writes_nothing(no_public_url, tmp_path):
    app = no_public_url
    before = _state(app)
    refused = app.test_cli_runner().invoke(args=["export", "--format", "pdf", "--priority", "3",
                                                 "--out", str(tmp_path / "p3.pdf")])
    assert refused.exit_code == 1
    assert "TECH7_PUBLIC_URL" in refused.output
    assert not (tmp_path / "p3.pdf").exists()
    assert _state(app) == before


def test_a_pdf_never_names_the_host_a_client_sent(no_public_url):
    # The Host header is the client's to choose: a signed, logged PDF must not send its readers
    # there. Without TECH7_PUBLIC_URL a PDF export is refused and writes nothing.
    app = no_public_url
    client = app.test_client()
    token = create_token(app.extensions["tech7.db"], role=OPERATOR, label="spoofer")
    headers = {"Authorization": f"Bearer {token}", "Host": "evil.example"}
    before = _state(app)
    refused = client.post("/v1/exports", json={"format": "pdf", "scope": {"priority": 3}},
                          headers=headers)
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "TECH7_PUBLIC_URL" in refused.json["detail"]
    assert _state(app) == before
    # A JSON export names no URL of the registry's: it needs none.
    assert _export(client, headers, "json", {"priority": 3})["format"] == "json"


@pytest.mark.parametrize("url", ["registry.example", "ftp://registry.example", "https://",
                                 "https://registry.example/?x=1", "https://registry.example/#top"])
def test_a_public_url_that_is_no_base_url_stops_the_registry_from_starting(make_app, databases,
                                                                          tmp_path, url):
    with pytest.raises(ValueError, match="TECH7_PUBLIC_URL"):
        make_app(databases.clone_template(), tmp_path, PUBLIC_URL=url)


def test_pdf_layout_depends_only_on_its_inputs_and_falls_back_to_latin_1(untouched_app,
                                                                          tmp_path):
    publishing = untouched_app.extensions["tech7.publishing"]
    versions = [publishing.latest(PRIORITY, "1"),
                publishing.latest(RECOMMENDATION, "ethical-guidelines-and-standards")]
    exported_at = versions[0].published_at
    inputs = {"title": "Priority 1", "scope": "A test", "exported_at": exported_at,
              "export_path": "/v1/exports/test", "versions": versions,
              "registry_url": "https://registry.example"}
    assert render_export_pdf(**inputs) == render_export_pdf(**inputs)

    # No DejaVu in tmp_path: core fonts, typographic punctuation reduced to Latin-1.
    core = render_export_pdf(**inputs, font_dir=tmp_path)
    text = " ".join(PdfReader(io.BytesIO(core)).pages[0].extract_text().split())
    assert "AI's lifecycle" in text and "«Hiroshima AI Process»" in text


def test_a_csv_export_of_a_priority_leaves_withdrawn_recommendations_out(app, client, operator):
    publishing = app.extensions["tech7.publishing"]
    withdrawn = publishing.latest(RECOMMENDATION, "leverage-existing-organisations").document()
    with publishing.db.registry_transaction() as session:
        publishing.publish_content(
            session, RECOMMENDATION, "leverage-existing-organisations",
            {**withdrawn, "withdrawn": True, "withdrawal_reason": "Superseded."},
            publisher="test")
    current = [v for v in publishing.collection(RECOMMENDATION)
               if v.document()["priority"] == 2 and not v.withdrawn]
    expected = ["/v1/priorities/2/versions/1"] + [
        RECOMMENDATION.version_path(v.slug, v.number) for v in current]

    metadata = _export(client, operator, "csv", {"priority": 2})
    assert metadata["versions"] == expected
    assert "/v1/recommendations/leverage-existing-organisations/versions/2" not in expected
    response = client.get(metadata["href"])
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row[0], row[1], row[2]) for row in rows[1:]] == \
        [("priority", "2", "1")] + [("recommendation", v.slug, str(v.number)) for v in current]
    assert [row[4] for row in rows[1:]] == \
        [publishing.latest(PRIORITY, "2").sha256] + [v.sha256 for v in current]
    assert len(current) == 2
    assert rows[2][5] == current[0].document()["title"]
    assert rows[2][6] == "\n\n".join(current[0].document()["text"])

    manifest = client.get(metadata["manifest"]).data
    anchors = _anchors(client)
    report = read_manifest(response.data, "text/csv", manifest, trust_anchors_pem=anchors)
    assert report.state == "Trusted", report.codes
    assert [i.title for i in report.ingredients] == expected
    assert read_manifest(_flip(response.data, 3), "text/csv", manifest,
                         trust_anchors_pem=anchors).state == "Invalid"

    # Named explicitly, a withdrawal is a version like any other.
    named = _export(client, operator, "json", {"versions": [
        "/v1/recommendations/leverage-existing-organisations/versions/2",
        "/v1/declaration/versions/1",
        "/v1/recommendations/leverage-existing-organisations/versions/2"]})
    assert named["versions"] == [
        "/v1/recommendations/leverage-existing-organisations/versions/2",
        "/v1/declaration/versions/1"]
    assert named["scope"]["versions"][0].endswith("/versions/2")


def test_an_association_export_holds_its_document_and_its_statements(app, client, operator):
    publishing = app.extensions["tech7.publishing"]
    statement = STATEMENT
    with publishing.db.registry_transaction() as session:
        publishing.publish_content(
            session, statement, "bitkom/ai-skills",
            {"statement_type": "position", "title": "Skills for AI", "text": ["We support it."]},
            publisher="test", association="bitkom")
    statement_path = statement.version_path("bitkom/ai-skills", 1)

    metadata = _export(client, operator, "json", {"association": "bitkom"})
    assert metadata["versions"] == ["/v1/associations/bitkom/versions/1", statement_path]
    content = client.get(metadata["href"]).data
    report = read_manifest(content, "application/json", client.get(metadata["manifest"]).data,
                           trust_anchors_pem=_anchors(client))
    assert report.state == "Trusted", report.codes
    assert [i.title for i in report.ingredients] == metadata["versions"]
    [entry] = _log_entries(client, metadata["sha256"])
    assert entry["record"]["association"] == "bitkom"

    # Statements can be named by their paths too.
    named = _export(client, operator, "csv", {"versions": [statement_path]})
    assert named["versions"] == [statement_path]


@pytest.mark.parametrize("body, field", [
    ({"format": "docx", "scope": {"declaration": True}}, "format"),
    ({"scope": {"declaration": True}}, "format"),
    ({"format": "pdf"}, "scope"),
    ({"format": "pdf", "scope": {}}, "scope"),
    ({"format": "pdf", "scope": {"declaration": True, "priority": 1}}, "scope"),
    ({"format": "pdf", "scope": {"declaration": False}}, "scope"),
    ({"format": "pdf", "scope": {"priority": 0}}, "scope"),
    ({"format": "pdf", "scope": {"priority": "4"}}, "scope"),
    ({"format": "pdf", "scope": {"association": "Not A Slug"}}, "scope"),
    ({"format": "pdf", "scope": {"versions": []}}, "scope"),
    ({"format": "pdf", "scope": {"versions": ["/v1/declaration/versions/1"] * (MAX_VERSIONS + 1)}},
     "scope"),
    ({"format": "pdf", "scope": {"everything": True}}, "scope"),
    ({"format": "pdf", "scope": {"declaration": True}, "extra": 1}, "extra"),
    ({"format": "pdf", "scope": {"priority": 99}}, None),
    ({"format": "pdf", "scope": {"association": "nobody"}}, None),
], ids=["format", "no-format", "no-scope", "empty-scope", "two-scopes", "declaration-false",
        "priority-0", "priority-string", "association-slug", "no-versions", "too-many-versions",
        "unknown-scope", "unknown-field", "no-such-priority", "no-such-association"])
def test_a_bad_request_is_refused_with_a_problem_and_writes_nothing(
        untouched_app, untouched_client, untouched_operator, body, field):
    before = _state(untouched_app)
    response = untouched_client.post("/v1/exports", json=body, headers=untouched_operator)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    if field is not None:
        assert field in response.json["errors"]["json"]
    assert _state(untouched_app) == before


def test_unknown_version_paths_are_named_in_the_problem(untouched_app, untouched_client,
                                                        untouched_operator):
    before = _state(untouched_app)
    unknown = ["/v1/declaration/versions/9", "/v1/recommendations/nope/versions/1",
               "/v1/priorities/1/versions/01", "/v1/priorities/1", "not a path"]
    response = untouched_client.post("/v1/exports", headers=untouched_operator, json={
        "format": "json", "scope": {"versions": ["/v1/declaration/versions/1", *unknown]}})
    assert response.status_code == 422
    assert response.json["unknown"] == unknown
    assert "/v1/recommendations/nope/versions/1" in response.json["detail"]
    assert _state(untouched_app) == before


def test_making_an_export_needs_a_token_with_the_publish_permission(
        untouched_app, untouched_client, untouched_operator):
    app, client = untouched_app, untouched_client
    before = _state(app)
    body = {"format": "json", "scope": {"declaration": True}}
    anonymous = client.post("/v1/exports", json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    reader = create_token(app.extensions["tech7.db"], role=OPERATOR,
                          scopes=[Permission.READ_DRAFTS])
    refused = client.post("/v1/exports", json=body, headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403
    as_text = client.post("/v1/exports", data=json.dumps(body),
                          headers={**untouched_operator, "Content-Type": "text/plain"})
    assert as_text.status_code == 415
    assert _state(app) == before


def test_a_version_that_no_longer_verifies_is_not_exported(app, client, operator, monkeypatch):
    publishing = app.extensions["tech7.publishing"]
    genuine = publishing.version
    monkeypatch.setattr(publishing, "version", lambda kind, slug, number: dataclasses.replace(
        genuine(kind, slug, number), body=genuine(kind, slug, number).body + b" "))
    before = _state(app)
    response = client.post("/v1/exports", headers=operator, json={
        "format": "json", "scope": {"versions": ["/v1/priorities/2/versions/1"]}})
    assert response.status_code == 409
    assert response.json["type"] == "/problems/component-not-trusted"
    assert "assertion.dataHash.mismatch" in response.json["codes"]
    assert _state(app) == before


def test_an_unknown_export_is_a_404_problem(untouched_client):
    for path in ("/v1/exports/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                 "/v1/exports/1b4e28ba-2fa1-11d2-883f-0016d3cca427/info",
                 "/v1/exports/1b4e28ba-2fa1-11d2-883f-0016d3cca427/manifest",
                 "/v1/exports/not-an-id"):
        response = untouched_client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"


def test_the_cli_writes_an_export_and_its_sidecar_that_read_trusted(app, client, tmp_path):
    out = tmp_path / "priority-2.json"
    result = app.test_cli_runner().invoke(args=["export", "--format", "json", "--priority", "2",
                                                "--out", str(out)])
    assert result.exit_code == 0, result.output
    export_id = result.output.strip()
    sidecar = out.with_name("priority-2.json.c2pa")
    report = read_manifest(out.read_bytes(), "application/json", sidecar.read_bytes(),
                           trust_anchors_pem=_anchors(client))
    assert report.state == "Trusted", report.codes
    assert report.identity["id"] == export_id
    assert client.get(f"/v1/exports/{export_id}").data == out.read_bytes()
    info = client.get(f"/v1/exports/{export_id}/info").json
    assert info["scope"] == {"priority": 2}
    assert info["versions"][0] == "/v1/priorities/2/versions/1"

    before = _state(app)
    runner = app.test_cli_runner()
    both = runner.invoke(args=["export", "--format", "csv", "--priority", "2",
                               "--association", "bitkom", "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "at most one" in both.output
    unknown = runner.invoke(args=["export", "--format", "csv", "--version", "/v1/nothing",
                                  "--out", str(tmp_path / "y")])
    assert unknown.exit_code == 1 and "/v1/nothing" in unknown.output
    assert not (tmp_path / "y").exists()
    assert _state(app) == before


# --- who may export what, and how often -----------------------------------------------------------


def _association(app, association: str) -> dict[str, str]:
    token = create_token(app.extensions["tech7.db"], role=ASSOCIATION, association=association)
    return {"Authorization": f"Bearer {token}"}


def _own_statement(client, headers, association: str) -> str:
    """Publish a statement of ``association``; returns its version 1 path."""
    base = f"/v1/associations/{association}/statements"
    created = client.post(base, headers=headers, json={
        "slug": "exported", "statement_type": "position", "title": "t", "text": ["t"]})
    assert created.status_code == 201, created.json
    published = client.post(f"{base}/exported/draft/publish",
                            headers={**headers, "If-Match": created.headers["ETag"]})
    assert published.status_code == 201, published.json
    return published.headers["Location"]


def test_an_association_exports_its_own_record_only(app, client, operator):
    bitkom, numeum = _association(app, "bitkom"), _association(app, "numeum")
    own = _own_statement(client, bitkom, "bitkom")
    others = _own_statement(client, numeum, "numeum")
    assert _export(client, bitkom, "json", {"versions": [own]})["versions"] == [own]
    assert _export(client, bitkom, "csv", {"association": "bitkom"})["scope"] == \
        {"association": "bitkom"}

    before = _state(app)
    refused = [{"declaration": True}, {"priority": 1}, {"association": "numeum"},
               {"versions": [others]}, {"versions": [own, others]},
               {"versions": ["/v1/recommendations/key-risks/versions/1"]}]
    for scope in refused:
        response = client.post("/v1/exports", json={"format": "json", "scope": scope},
                               headers=bitkom)
        assert response.status_code == 403, (scope, response.json)
        assert response.mimetype == "application/problem+json"
        assert "its own record" in response.json["detail"]
    assert _state(app) == before
    trail = client.get("/v1/activity", headers=operator).json["items"]
    # Oldest first: the refusals are the trail's latest events.
    assert [(e["path"], e["status"], e["principal"]) for e in trail[-len(refused):]] == \
        [("/v1/exports", 403, "association:bitkom")] * len(refused)
    # An operator exports what an association may not.
    assert _export(client, operator, "json", {"versions": [others]})["versions"] == [others]


def test_making_exports_has_a_limit_of_its_own(make_app, databases, tmp_path):
    limited = make_app(databases.clone_template(), tmp_path, RATELIMIT_EXPORTS="2 per hour")
    try:
        client = limited.test_client()
        token = create_token(limited.extensions["tech7.db"], role=OPERATOR, label="limited")
        operator = {"Authorization": f"Bearer {token}"}
        # Refused requests count too: the limit is on asking, which is what costs.
        for _ in range(2):
            answer = client.post("/v1/exports", json={"format": "nope", "scope": {}},
                                 headers=operator)
            assert answer.status_code == 422
            assert answer.headers["RateLimit-Limit"] == "2"
        before = _state(limited)
        refused = client.post("/v1/exports", json={"format": "json",
                                                   "scope": {"declaration": True}},
                              headers=operator)
        assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
        assert int(refused.headers["Retry-After"]) > 0
        assert _state(limited) == before
        # The rest of the API is not held back by the export limit.
        assert client.get("/v1/recommendations", headers=operator).status_code == 200
    finally:
        limited.extensions["tech7.db"].engine.dispose()
