"""A long history: bounded manifests at depth, every version Trusted, and the auditor's whole-history
check, with a broken link named. Versions are published through the service layer (the same
transaction the publish view runs) to keep the 50 signatures quick."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from tech7_audit.history import HistoryVersion, audit_history, check_parent_link
from tech7_audit.manifests import read_manifest
from tech7_audit.verification import VerificationFailure

from app.catalog.kinds import RECOMMENDATION
from app.core import config
from app.provenance.service import JSON
from app.provenance.signing import CREATED, EDITED

SLUG = "long-history"
VERSIONS = 50


@pytest.fixture
def history(app) -> list[HistoryVersion]:
    """Versions 1 to 50 of one recommendation, as an auditor fetches them."""
    publishing = app.extensions["tech7.publishing"]
    seed = json.loads(Path(config.SEED_FILE).read_text(encoding="utf-8"))
    content = {key: value for key, value in seed["recommendations"][0].items() if key != "slug"}
    log = publishing.log
    for number in range(1, VERSIONS + 1):
        with publishing.db.registry_transaction() as session:
            publishing.publish_content(session, RECOMMENDATION, SLUG,
                                       {**content, "title": f"{content['title']} ({number})"},
                                       publisher="test")
    versions = []
    for number in range(1, VERSIONS + 1):
        version = publishing.version(RECOMMENDATION, SLUG, number)
        versions.append(HistoryVersion(number, version.body, version.manifest,
                                       log.receipt(version.log_index)))
    return versions


def _audit(app, versions: list[HistoryVersion]):
    log = app.extensions["tech7.publishing"].log

    def consistency(first: int, second: int) -> dict:
        return {"first": first, "second": second,
                "hashes": [base64.b64encode(h).decode()
                           for h in log.consistency_proof(first, second)]}

    return audit_history(versions, signed_checkpoint=log.checkpoint(),
                         consistency_proof=consistency,
                         trust_anchors_pem=app.extensions["tech7.provenance"].trust_anchors_pem,
                         verifier_key=log.verifier_key)


def test_fifty_versions_stay_small_read_trusted_and_audit_as_one_history(app, history):
    """Also: a broken link and a missing version are each named."""
    sizes = [len(version.manifest) for version in history]
    assert sizes[-1] <= 1.2 * sizes[1], sizes
    anchors = app.extensions["tech7.provenance"].trust_anchors_pem
    for version in history:
        report = read_manifest(version.content, JSON, version.manifest, trust_anchors_pem=anchors)
        assert report.trusted, (version.number, report.codes)
        if version.number > 1:
            assert report.parent_proof["version"] == version.number - 1

    report = _audit(app, history)
    assert report.ok, report.problems
    assert [audited.number for audited in report.versions] == list(range(VERSIONS, 0, -1))
    assert all(audited.link.ok and audited.link.name == "parent"
               for audited in report.versions[:-1])
    assert report.versions[-1].link is None  # version 1 has no parent
    assert report.checkpoint_size == app.extensions["tech7.publishing"].log.size()

    # (One history serves every check below: 50 signatures are the slow part.)
    # Version 24's bytes as someone rewrote them: its own hashes fail, and version 25's link,
    # which names the original bytes, no longer names it.
    changed = json.loads(history[23].content)
    changed["title"] += " (rewritten)"
    tampered = list(history)
    tampered[23] = replace(history[23], content=json.dumps(changed).encode())
    report = _audit(app, tampered)
    assert not report.ok
    assert any(p.startswith("version 25: the link to version 24 is broken: the parent proof's "
                            "sha256") for p in report.problems), report.problems
    assert any(p.startswith("version 24: ") for p in report.problems), report.problems
    assert not any(p.startswith(("version 26:", "version 23:")) for p in report.problems)

    report = _audit(app, history[:10] + history[11:])
    assert not report.ok
    assert report.problems[0] == f"the versions given are {[*range(1, 11), *range(12, 51)]}, " \
                                 f"not 1 to 50"
    assert len(report.versions) == VERSIONS - 1  # the rest was still audited


def test_the_older_form_that_embeds_the_parent_is_still_checked(app):
    """Versions published before bounded manifests embed their parent's manifest store; their
    link is its manifest label, and the embedded manifest must read Trusted."""
    provenance = app.extensions["tech7.provenance"]
    signer, anchors = provenance._process_objects()[0], provenance.trust_anchors_pem
    first_body, second_body = b'{"version":1}', b'{"version":2}'
    first = signer.sign_sidecar(first_body, JSON, signer_name="registry", title="v1",
                                action=CREATED, identity={"version": 1})
    second = signer.sign_sidecar(second_body, JSON, signer_name="registry", title="v2",
                                 action=EDITED, identity={"version": 2},
                                 parent_content=first_body, parent_manifest=first)
    first_report = read_manifest(first_body, JSON, first, trust_anchors_pem=anchors)
    report = read_manifest(second_body, JSON, second, trust_anchors_pem=anchors)
    assert report.trusted and report.parent_proof is None
    facts = {"number": 1, "sha256": hashlib.sha256(first_body).hexdigest(),
             "manifest_sha256": hashlib.sha256(first).hexdigest(),
             "verifier_key": app.extensions["tech7.publishing"].log.verifier_key}
    check = check_parent_link(report, manifest_label=first_report.label, **facts)
    assert check.checkpoint is None and first_report.label in check.reason
    with pytest.raises(VerificationFailure, match="not version 1's"):
        check_parent_link(report, manifest_label="urn:c2pa:another", **facts)


def test_a_publish_validates_one_manifest(app, monkeypatch):
    """The new manifest is read back once; its parent, which this process read Trusted when it
    signed it, is linked without being validated again (and nothing embeds it)."""
    from app.provenance import service as provenance_service  # noqa: PLC0415 - patched here

    publishing = app.extensions["tech7.publishing"]
    seed = json.loads(Path(config.SEED_FILE).read_text(encoding="utf-8"))
    content = {key: value for key, value in seed["recommendations"][0].items() if key != "slug"}

    def publish(title: str) -> None:
        with publishing.db.registry_transaction() as session:
            publishing.publish_content(session, RECOMMENDATION, SLUG, {**content, "title": title},
                                       publisher="test")

    publish("first")
    reads = []
    read = provenance_service.read_manifest
    monkeypatch.setattr(provenance_service, "read_manifest",
                        lambda *args, **kwargs: reads.append(args[2]) or read(*args, **kwargs))
    publish("second")
    newest = publishing.version(RECOMMENDATION, SLUG, 2)
    assert reads == [newest.manifest]
