"""The transparency log as served: checkpoints, entries, proofs, tiles, receipts, immutability."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from tech7_tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from tech7_tlog.note import open_note, parse_checkpoint, parse_verifier_key, verify_tlog_proof
from tech7_tlog.tiles import TILE_WIDTH, parse_entry_bundle

from app.catalog.kinds import RECOMMENDATION


def _checkpoint(client):
    verifier = parse_verifier_key(client.get("/v1/trust").json["log"]["verifier_key"])
    note = client.get("/v1/log/checkpoint").get_data(as_text=True)
    return parse_checkpoint(open_note(note, [verifier])), verifier


def test_every_version_is_logged_and_its_receipt_verifies(client):
    checkpoint, verifier = _checkpoint(client)
    changes = client.get("/v1/changes", query_string={"limit": 500}).json["items"]
    assert changes and checkpoint.tree_size >= len(changes)
    for change in changes:
        version = client.get(change["href"])
        body = version.get_data()
        receipt = client.get(change["href"] + "/receipt").get_data(as_text=True)
        manifest = client.get(change["href"] + "/manifest").get_data()
        record = json.loads(verify_tlog_proof(receipt, leaf_hash(_extra(receipt)),
                                              checkpoint.origin, [verifier]).extra)
        assert record["subject"] == change["href"]
        assert record["document_sha256"] == hashlib.sha256(body).hexdigest()
        assert record["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
        assert record["type"] == "publication"
        found = client.get("/v1/log/entries", query_string={"sha256": record["document_sha256"]})
        assert [e["record"]["subject"] for e in found.json["items"]] == [change["href"]]


def _extra(receipt: str) -> bytes:
    line = next(line for line in receipt.splitlines() if line.startswith("extra "))
    return base64.b64decode(line.removeprefix("extra "))


def test_inclusion_and_consistency_proofs_verify(client):
    checkpoint, _ = _checkpoint(client)
    size = checkpoint.tree_size
    for index in range(size):
        entry = client.get(f"/v1/log/entries/{index}").json
        leaf = base64.b64decode(entry["leaf"])
        assert base64.b64decode(entry["leaf_hash"]) == leaf_hash(leaf)
        assert json.loads(leaf) == entry["record"]
        proof = client.get("/v1/log/proofs/inclusion",
                           query_string={"index": index, "tree_size": size}).json
        verify_inclusion(leaf_hash(leaf), index, size,
                         [base64.b64decode(h) for h in proof["hashes"]], checkpoint.root_hash)
    for old in (1, 2, size // 2, size):
        old_root = _root_at(client, old)
        proof = client.get("/v1/log/proofs/consistency",
                           query_string={"first": old, "second": size}).json
        verify_consistency(old, size, old_root, checkpoint.root_hash,
                           [base64.b64decode(h) for h in proof["hashes"]])


def _root_at(client, size: int) -> bytes:
    note = client.application.extensions["tech7.log"].checkpoint(size)
    return base64.b64decode(note.split("\n")[2])


def test_tiles_match_the_entries(client):
    checkpoint, _ = _checkpoint(client)
    size = checkpoint.tree_size
    assert size < TILE_WIDTH
    tile = client.get(f"/v1/log/tile/0/000.p/{size}")
    assert tile.status_code == 200 and len(tile.get_data()) == 32 * size
    bundle = parse_entry_bundle(client.get(f"/v1/log/tile/entries/000.p/{size}").get_data())
    assert b"".join(leaf_hash(leaf) for leaf in bundle) == tile.get_data()
    assert client.get("/v1/log/tile/0/000").status_code == 404, "no full tile yet"
    assert client.get(f"/v1/log/tile/0/000.p/{size + 1}").status_code == 404


@pytest.mark.parametrize("url", [
    "/v1/log/proofs/inclusion?index=x&tree_size=1", "/v1/log/proofs/inclusion?index=0",
    "/v1/log/proofs/inclusion?index=5&tree_size=3", "/v1/log/proofs/inclusion?index=0&tree_size=0",
    "/v1/log/proofs/inclusion?index=0&tree_size=999999", "/v1/log/proofs/inclusion?index=-1&tree_size=2",
    "/v1/log/proofs/consistency?first=5&second=2", "/v1/log/proofs/consistency?first=1&second=999999",
    "/v1/log/proofs/consistency?first=0&second=2", "/v1/log/entries?sha256=nothex",
])
def test_bad_proof_parameters_are_422(client, url):
    response = client.get(url)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("url", ["/v1/log/tile/0/0001", "/v1/log/tile/x/000",
                                 "/v1/log/tile/0/000.p/0"])
def test_malformed_tile_paths_name_no_tile(client, url):
    response = client.get(url)
    assert response.status_code == 404, response.get_data(as_text=True)
    assert "C2SP tile path" in response.json["detail"]


def test_unknown_entries_are_404(client):
    assert client.get("/v1/log/entries/999999").status_code == 404
    assert client.get("/v1/log/entries/99999999999999999999999").status_code == 404


@pytest.mark.parametrize("statement", [
    "UPDATE log_entries SET leaf = :junk", "DELETE FROM log_entries WHERE \"index\" = 0",
    "UPDATE log_checkpoints SET note = 'x'", "DELETE FROM log_checkpoints",
    "UPDATE log_tiles SET hashes = :junk", "DELETE FROM log_tiles",
])
def test_the_database_refuses_to_rewrite_the_log(app, statement):
    with pytest.raises(DBAPIError, match="immutable"), app.extensions["tech7.db"].engine.begin() as connection:
        connection.execute(sa.text(statement), {"junk": b"\x00" * 32})


def test_concurrent_publishers_leave_contiguous_indices(app):
    publishing = app.extensions["tech7.publishing"]
    slugs = [f"concurrency-{i}" for i in range(8)]
    errors = []

    def publish(slug):
        try:
            with publishing.db.registry_transaction() as session:
                publishing.publish_content(session, RECOMMENDATION, slug, {
                    "title": slug, "priority": 1, "text": ["Concurrent test text."]},
                    publisher="test")
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(slug,)) for slug in slugs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with publishing.db.engine.connect() as connection:
        indices = connection.scalars(sa.text('SELECT "index" FROM log_entries ORDER BY "index"')).all()
        seqs = connection.scalars(sa.text("SELECT seq FROM versions ORDER BY seq")).all()
    assert indices == list(range(len(indices)))
    assert seqs == list(range(1, len(seqs) + 1))
    client = app.test_client()
    checkpoint, _ = _checkpoint(client)
    assert checkpoint.tree_size == len(indices)
