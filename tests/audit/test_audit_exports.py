"""Auditors check exports as they check versions: an export has a receipt, built as a version's
is (quorum marking included); ``tech7-audit fetch`` and ``verify`` handle it against a real
``serve``; a fetch that fails leaves nothing behind; the PDF names the registry's absolute URLs.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pypdf import PdfReader
from tech7_tlog.merkle import leaf_hash
from tech7_tlog.note import parse_tlog_proof, verify_tlog_proof
from tech7_tlog.policy import parse_policy
from tech7_witness.testing import WitnessProcess, init

from app.exports.service import ExportScope
from tests.support.serve import REGISTRY, serving, wait_for

AUDIT = str(Path(sys.executable).with_name("tech7-audit"))
VERSION = "/v1/recommendations/sme-participation/versions/1"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """A real ``tech7-registry serve`` without TECH7_PUBLIC_URL: (base URL, operator headers)."""
    with serving(tmp_path_factory.mktemp("served-exports"), unset=["TECH7_PUBLIC_URL"]) \
            as (base, process, env):
        wait_for(base + "/v1/log/checkpoint", process)
        token = subprocess.run([REGISTRY, "tokens", "create", "--operator"], env=env,
                               capture_output=True, text=True, check=True, timeout=60)
        yield base, {"Authorization": f"Bearer {token.stdout.strip()}"}


def _post_export(base: str, headers: dict[str, str], export_format: str, scope: dict) -> dict:
    request = urllib.request.Request(
        base + "/v1/exports", method="POST",
        data=json.dumps({"format": export_format, "scope": scope}).encode(),
        headers={**headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201
        return json.loads(response.read())


def _audit(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([AUDIT, *argv], capture_output=True, text=True, encoding="utf-8",
                          cwd=cwd, check=False, timeout=120)


def _fetch_and_verify(url: str, out: str, cwd: Path) -> str:
    fetched = _audit("fetch", url, "--out", out, cwd=cwd)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    command = shlex.split(fetched.stdout.strip().splitlines()[-1])
    assert command[:2] == ["tech7-audit", "verify"]
    verified = _audit(*command[1:], cwd=cwd)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return verified.stdout


def test_a_pdf_export_is_fetched_and_verified_and_names_absolute_urls(served, tmp_path):
    base, operator = served
    export = _post_export(base, operator, "pdf", {"priority": 1})
    url = base + export["href"]
    assert export["receipt"] == export["href"] + "/receipt"

    report = _fetch_and_verify(url, "pdf", tmp_path)
    assert f"VERIFIED: pdf/document.pdf is {export['href']}, signed by registry" in report
    for step in ("receipt", "manifest", "signer", "hashes", "inclusion", "checkpoint",
                 "revocation"):
        assert f"✓ {step}" in report, step
    folder = tmp_path / "pdf"
    assert not (folder / "manifest.c2pa").exists()  # a PDF's manifest is embedded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pdf"]  # no staging folder is left

    # The "How to verify" section names the registry's URLs absolutely: with TECH7_PUBLIC_URL
    # unset, `serve` names the address it listens on.
    pdf = (folder / "document.pdf").read_bytes()
    text = " ".join(" ".join(page.extract_text() for page in
                             PdfReader(io.BytesIO(pdf)).pages).split())
    for absolute in (f"{base}/v1/trust/anchors.pem", f"{base}/v1/trust/c2pa-settings.json",
                     f"{base}/v1/priorities/1/versions/1/receipt", f"{url}/receipt",
                     f"{base}/v1/log/entries?sha256=", f"tech7-audit fetch {url}"):
        assert absolute in text, absolute
    # No URL is left relative there; the log record's subject is a path, as logged.
    section = text[text.index("How to verify this document"):]
    section = section.replace(base + "/v1/", "").replace(f"the subject {export['href']}", "")
    assert "/v1/" not in section


def test_a_csv_export_is_fetched_with_its_sidecar_and_verified(served, tmp_path):
    base, operator = served
    export = _post_export(base, operator, "csv", {"versions": [VERSION]})
    report = _fetch_and_verify(base + export["href"], "csv", tmp_path)
    assert f"is {export['href']}, signed by registry" in report
    assert (tmp_path / "csv" / "manifest.c2pa").is_file()
    assert (tmp_path / "csv" / "document.csv").is_file()

    # Named after the export when no --out is given.
    default = _audit("fetch", base + export["href"], cwd=tmp_path)
    assert default.returncode == 0, default.stdout + default.stderr
    assert (tmp_path / f"export-{export['id']}" / "receipt.tlog").is_file()


def test_a_fetch_that_fails_midway_leaves_nothing_behind(tmp_path):
    """The document downloads, then its receipt answers 404: no folder, no staging folder."""

    class ReceiptMissing(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith("/receipt"):
                self.send_response(404)
                self.send_header("Content-Type", "application/problem+json")
                body = b'{"detail": "no receipt here"}'
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf")
                self.send_header("Link", f'<{self.path}/receipt>; rel="receipt"')
                body = b"%PDF-1.7 not really"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ReceiptMissing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    work = tmp_path / "work"
    work.mkdir()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/exports/00000000-0000-0000-0000-000000000000"
        failed = _audit("fetch", url, "--out", "out", cwd=work)
        empty = work / "empty"
        empty.mkdir()
        failed_into_empty = _audit("fetch", url, "--out", "empty", cwd=work)
    finally:
        server.shutdown()
        server.server_close()
    assert failed.returncode == 1
    assert "/receipt answered 404: no receipt here" in failed.stderr + failed.stdout
    assert failed_into_empty.returncode == 1
    assert sorted(p.name for p in work.iterdir()) == ["empty"]
    assert list(empty.iterdir()) == []


def test_fetch_refuses_a_folder_that_holds_files(served, tmp_path):
    base, _ = served
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("kept")
    refused = _audit("fetch", base + VERSION, "--out", "taken", cwd=tmp_path)
    assert refused.returncode == 1
    assert "taken exists and is not an empty folder" in refused.stderr
    assert (tmp_path / "taken" / "mine.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_export_receipt_is_marked_quorate_only_with_the_quorum(app, make_app, databases,
                                                                   tmp_path):
    """The export's receipt goes through the witnesses' quorum rule, as a version's does."""
    log_vkey = app.extensions["tech7.log"].verifier_key
    vkey = init(tmp_path / "witness", "witness.example/only")
    witness = WitnessProcess(tmp_path / "witness", [log_vkey]).start()
    try:
        policy = tmp_path / "policy.txt"
        policy.write_text(f"log {log_vkey}\nwitness only {vkey} http://127.0.0.1:{witness.port}\n"
                          "quorum only\n")
        witnessed = make_app(databases.clone_template(), tmp_path / "witnessed",
                             WITNESS_POLICY=str(policy), WITNESS_INTERVAL=0, WITNESS_TIMEOUT=5)
        try:
            export = witnessed.extensions["tech7.exports"].create(
                "json", ExportScope(versions=(VERSION,)), created_by="test")
            client = witnessed.test_client()
            before = client.get(export.receipt_path)
            assert before.status_code == 200
            assert before.headers["Tech7-Quorate"] == "?0"  # nothing cosigned yet
            witnessed.extensions["tech7.witnessing"].submit()
            after = client.get(export.receipt_path)
            assert after.headers["Tech7-Quorate"] == "?1"
            text = after.get_data(as_text=True)
            proof = parse_tlog_proof(text)
            assert json.loads(proof.extra)["subject"] == export.path
            assert proof.index == export.log_index
            assert "— witness.example/only " in proof.signed_checkpoint
            verify_tlog_proof(text, leaf_hash(proof.extra), witnessed.config["LOG_ORIGIN"],
                              [parse_policy(policy.read_bytes()).logs[0].verifier])
        finally:
            witnessed.extensions["tech7.db"].engine.dispose()
    finally:
        witness.stop()


def test_an_unknown_export_has_no_receipt(client):
    answer = client.get("/v1/exports/00000000-0000-0000-0000-000000000000/receipt")
    assert answer.status_code == 404
    assert answer.mimetype == "application/problem+json"
