"""Helpers of the operations tests: what a monitor checks after an outage or a restore, and a
PostgreSQL URL nobody answers.

(A conftest.py in this folder would shadow the suite's own ``conftest`` module.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from typing import Any

import sqlalchemy as sa
from tech7_audit.manifests import read_manifest
from tech7_tlog.merkle import leaf_hash, merkle_tree_hash, verify_inclusion
from tech7_tlog.note import (
    Checkpoint,
    open_note,
    parse_checkpoint,
    parse_tlog_proof,
    parse_verifier_key,
    verify_tlog_proof,
)

KEY_RISKS = "/v1/recommendations/key-risks"


def unreachable_postgres_url() -> str:
    """A PostgreSQL URL on a 127.0.0.1 port that nothing listens on (refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/tech7?connect_timeout=2"


def create_draft(client, headers: dict[str, str], url: str = KEY_RISKS) -> str:
    """PUT the latest version of ``url`` back as a draft, its title revised; returns its ETag."""
    body = client.get(url).json
    body["title"] += " (revised)"
    draft = client.put(url + "/draft", json=body, headers={**headers, "If-None-Match": "*"})
    assert draft.status_code == 201, draft.json
    return draft.headers["ETag"]


def publish_draft(client, headers: dict[str, str], etag: str, url: str = KEY_RISKS):
    """POST the draft's publish action; returns the response."""
    return client.post(url + "/draft/publish", headers={**headers, "If-Match": etag})


def changes(client) -> list[dict[str, Any]]:
    """Every entry of the change feed, following its cursor to the end."""
    items: list[dict[str, Any]] = []
    since = "0"
    while True:
        page = client.get("/v1/changes", query_string={"since": since, "limit": 500})
        assert page.status_code == 200, page.get_data(as_text=True)
        items += page.json["items"]
        if len(page.json["items"]) < 500:  # a short page is the feed's end for now
            return items
        since = page.json["next_cursor"]


def written_state(app, client, headers: dict[str, str]) -> dict[str, Any]:
    """What a refused write must leave untouched: versions, log, change feed and the draft."""
    with app.extensions["tech7.db"].engine.connect() as connection:
        counts = {table: connection.scalar(sa.text(f"SELECT count(*) FROM {table}"))
                  for table in ("versions", "log_entries", "log_checkpoints", "drafts")}
    draft = client.get(KEY_RISKS + "/draft", headers=headers)
    return {"counts": counts, "checkpoint": client.get("/v1/log/checkpoint").get_data(),
            "changes": [c["href"] for c in changes(client)],
            "draft": (draft.status_code, draft.headers.get("ETag"))}


def sqlite_integrity(app) -> list[tuple]:
    """``PRAGMA integrity_check`` of the app's SQLite database (``[("ok",)]`` when sound)."""
    with app.extensions["tech7.db"].engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql("PRAGMA integrity_check")]


def assert_registry_verifies(client) -> Checkpoint:
    """Check what an auditor and a log monitor would, using only what the API serves.

    Every published version's manifest reads Trusted against /v1/trust/anchors.pem with a trusted
    timestamp, and its receipt proves the right record is in the log under the log's key; the
    signed checkpoint's root is recomputed from every leaf (RFC 9162 §2.1.1) and every entry's
    inclusion proof verifies against it. Returns the checkpoint.
    """
    anchors = client.get("/v1/trust/anchors.pem").get_data()
    verifier = parse_verifier_key(client.get("/v1/trust").json["log"]["verifier_key"])
    checkpoint = parse_checkpoint(open_note(client.get("/v1/log/checkpoint").get_data(as_text=True),
                                            [verifier]))

    published = changes(client)
    assert published, "the registry holds published versions"
    for change in published:
        href = change["href"]
        body = client.get(href).get_data()
        manifest = client.get(href + "/manifest").get_data()
        report = read_manifest(body, "application/json", manifest, trust_anchors_pem=anchors)
        assert report.state == "Trusted", (href, report.codes, report.error)
        assert report.timestamp_trusted, href
        receipt = client.get(href + "/receipt").get_data(as_text=True)
        leaf = parse_tlog_proof(receipt).extra
        verify_tlog_proof(receipt, leaf_hash(leaf), checkpoint.origin, [verifier])
        record = json.loads(leaf)
        assert record["subject"] == href
        assert record["document_sha256"] == hashlib.sha256(body).hexdigest()
        assert record["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()

    leaves = []
    for index in range(checkpoint.tree_size):
        entry = client.get(f"/v1/log/entries/{index}")
        assert entry.status_code == 200, index
        leaves.append(base64.b64decode(entry.json["leaf"]))
    assert merkle_tree_hash(leaves) == checkpoint.root_hash, "the checkpoint commits to the leaves"
    for index, leaf in enumerate(leaves):
        proof = client.get("/v1/log/proofs/inclusion",
                           query_string={"index": index, "tree_size": checkpoint.tree_size}).json
        verify_inclusion(leaf_hash(leaf), index, checkpoint.tree_size,
                         [base64.b64decode(h) for h in proof["hashes"]], checkpoint.root_hash)
    return checkpoint
