"""POST /v1/verify and tech7-audit verify run the same ordered checks (tech7_audit.verification
.run_checks): only where the log record comes from differs."""

from __future__ import annotations

from tech7_audit.pipeline import audit_document
from tech7_audit.verification import RECEIPT

from app.verifier.service import RECORD
from tests.support.audit import VERSION, one_byte_changed, upload

#: The steps that only one of the two runs: the auditor reads its receipt, the registry finds
#: its record; the steps both run must come in one order.
_LOCATING = {RECEIPT, RECORD}


def _shared(steps: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return [step for step in steps if step[0] not in _LOCATING]


def _both(client, materials, body: bytes, manifest: bytes):
    api = upload(client, body, manifest).json
    offline = audit_document(body, manifest, materials.receipt, **materials.audit_inputs(),
                             trust_list=materials.trust)
    return ([(step["name"], step["ok"]) for step in api["steps"]],
            [(step.name, step.ok) for step in offline.steps])


def test_a_published_version_passes_the_same_steps_in_the_same_order(client, materials):
    version = materials(VERSION)
    api, offline = _both(client, version, version.body, version.manifest)
    assert [name for name, _ in api] == ["manifest", "record", "signer", "hashes", "checkpoint",
                                         "inclusion", "revocation"]
    assert offline[0] == (RECEIPT, True)
    assert _shared(api) == _shared(offline)
    assert all(ok for _, ok in api + offline)


def test_a_changed_file_stops_both_at_the_manifest(client, materials):
    version = materials(VERSION)
    api, offline = _both(client, version, one_byte_changed(version.body), version.manifest)
    assert _shared(api) == _shared(offline) == [("manifest", False)]


def test_changed_manifest_bytes_stop_both_at_the_hashes(client, materials):
    # A byte of an unsigned region: c2pa still reads Trusted, the logged digest does not match.
    version = materials(VERSION)
    api, offline = _both(client, version, version.body, one_byte_changed(version.manifest))
    assert _shared(api) == _shared(offline) == [("manifest", True), ("signer", True),
                                                ("hashes", False)]
