"""The audit page, driven in a real headless Chromium: a Trusted document and a tampered one.

Screenshots of both results are saved under tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
VERSION = "/v1/recommendations/sme-participation/versions/1"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium is not installed (.ci/run installs it)")


@pytest.fixture
def live_server(app):
    """The test app served on 127.0.0.1 from a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only when chromium exists

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1000, "height": 1100})
        yield page
        browser.close()


@pytest.fixture
def files(client, tmp_path):
    body = client.get(VERSION).get_data()
    manifest = client.get(VERSION + "/manifest").get_data()
    document = tmp_path / "sme-participation-v1.json"
    sidecar = tmp_path / "sme-participation-v1.c2pa"
    tampered = tmp_path / "tampered.json"
    document.write_bytes(body)
    sidecar.write_bytes(manifest)
    tampered.write_bytes(body.replace(b"SMEs", b"SMES", 1))
    return document, sidecar, tampered


def _check(page, base, document, sidecar):
    page.goto(f"{base}/verify")
    page.set_input_files("#file", str(document))
    page.set_input_files("#manifest", str(sidecar))
    page.click("#check")
    page.wait_for_selector("#report .banner")
    return page.inner_text("#report")


def test_trusted_document_reads_in_plain_language(live_server, browser_page, files):
    document, sidecar, _ = files
    report = _check(browser_page, live_server, document, sidecar)
    assert "Authentic: version 1 of recommendation “sme-participation”" in report
    assert "signed by" in report and "registry" in report.lower()
    assert "Time-stamped" in report and "trusted RFC 3161 timestamp" in report
    assert "verified against the signed checkpoint" in report
    assert browser_page.locator(".banner.Trusted").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=str(ARTIFACTS / "verify-trusted.png"), full_page=True)


def test_tampered_document_says_what_failed(live_server, browser_page, files):
    _, sidecar, tampered = files
    report = _check(browser_page, live_server, tampered, sidecar)
    assert report.startswith("Not verified")
    assert "assertion.dataHash.mismatch" in report
    assert browser_page.locator(".banner.Trusted").count() == 0
    assert browser_page.locator(".banner.Invalid").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=str(ARTIFACTS / "verify-tampered.png"), full_page=True)


def test_the_page_names_the_witnesses_that_cosigned(make_app, databases, tmp_path, policy_file,
                                                    witnesses, browser_page, files):
    """Two of three witnesses cosigned: the quorum holds, and the third is named as missing."""
    witnessed = make_app(databases.clone_template(), tmp_path, WITNESS_POLICY=str(policy_file),
                         WITNESS_INTERVAL=0, WITNESS_TIMEOUT=5)
    witnesses["assoc-b"].stop()
    assert witnessed.extensions["tech7.witnessing"].submit()
    server = make_server("127.0.0.1", 0, witnessed, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        document, sidecar, _ = files
        report = _check(browser_page, f"http://127.0.0.1:{server.server_port}", document, sidecar)
        assert "Witnesses" in report
        assert "cosigned by assoc-a, assoc-c; not by assoc-b" in report
        assert "quorum 2 of (assoc-a, assoc-b, assoc-c) holds" in report
        ARTIFACTS.mkdir(exist_ok=True)
        browser_page.screenshot(path=str(ARTIFACTS / "verify-witnessed.png"), full_page=True)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        witnessed.extensions["tech7.db"].engine.dispose()
