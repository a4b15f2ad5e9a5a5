"""The log's HTTP face: checkpoint, entries, proofs, lookup by document hash and C2SP tiles."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import marshmallow as ma
from flask import Response, current_app
from tech7_tlog.tiles import TILE_WIDTH, parse_entries_path, parse_tile_path

from app.core.errors import NotFound
from app.core.fields import Integer, Schema
from app.http.api import Blueprint
from app.http.bodies import json_response
from app.http.pagination import LINK_HEADER, PageQuerySchema, page_of
from app.ledger.service import Entry, TransparencyLog
from app.ledger.witnessing import WitnessReport

blp = Blueprint("log", __name__, url_prefix="/v1/log",
                description="The transparency log: RFC 9162 proofs over C2SP tiles.")

IMMUTABLE = "public, max-age=31536000, immutable"
# Sizes and indices a JSON client holds exactly (I-JSON, RFC 7493 §2.2), which the database's
# INTEGER columns hold too.
_UINT = ma.validate.Range(min=0, max=2**53 - 1)


def transparency_log() -> TransparencyLog:
    """The log of this process."""
    return current_app.extensions["tech7.log"]


class EntrySchema(Schema):
    index = Integer(required=True)
    href = ma.fields.String(required=True, metadata={"description": "The entry's URL."})
    leaf = ma.fields.String(required=True, metadata={"description": "Base64 of the exact leaf "
                                                     "bytes (RFC 8785 JSON of the record)."})
    leaf_hash = ma.fields.String(required=True, metadata={"description": "Base64 RFC 9162 leaf "
                                                          "hash, SHA-256(0x00 || leaf)."})
    record = ma.fields.Dict(required=True, metadata={"description": "The leaf, parsed."})


class EntryListSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(EntrySchema), required=True)
    total = Integer(required=True, metadata={"description": "Items on all pages together."})


class InclusionQuerySchema(Schema):
    index = Integer(required=True, validate=_UINT)
    tree_size = Integer(required=True, validate=_UINT)


class InclusionProofSchema(Schema):
    index = Integer(required=True)
    tree_size = Integer(required=True)
    hashes = ma.fields.List(ma.fields.String(), required=True)


class ConsistencyQuerySchema(Schema):
    first = Integer(required=True, validate=_UINT)
    second = Integer(required=True, validate=_UINT)


class ConsistencyProofSchema(Schema):
    first = Integer(required=True)
    second = Integer(required=True)
    hashes = ma.fields.List(ma.fields.String(), required=True)


class WitnessStateSchema(Schema):
    witness = ma.fields.String(required=True, metadata={"description": "The witness's name in the "
                                                        "policy."})
    href = ma.fields.String(required=True, metadata={"description": "This state's URL."})
    tree_size = Integer(required=True, metadata={"description": "The log size the witness last "
                                                 "cosigned, as far as the registry knows."})
    last_error = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "Why the last round did not get its cosignature; null when it did."})
    updated_at = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "When the last round reached it (RFC 3339 UTC); null before the first."})


class WitnessStateListSchema(Schema):
    items = ma.fields.List(ma.fields.Nested(WitnessStateSchema), required=True)
    total = Integer(required=True, metadata={"description": "Items on all pages together."})


class LookupQuerySchema(PageQuerySchema, Schema):
    sha256 = ma.fields.String(required=True, validate=ma.validate.Regexp(
        r"^[0-9a-f]{64}$", error="sha256 is 64 lowercase hex digits."))


def entry_json(entry: Entry) -> dict:
    """An entry as served by the API."""
    return {"index": entry.index, "href": f"/v1/log/entries/{entry.index}",
            "leaf": base64.b64encode(entry.leaf).decode(),
            "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
            "record": json.loads(entry.leaf)}


def receipt_response(index: int) -> Response:
    """The self-contained receipt of log entry ``index``: a c2sp.org/tlog-proof@v1 text.

    The one receipt builder of every logged thing that has a receipt (versions and exports).
    Where the log has witnesses, the checkpoint is the newest one holding the entry whose
    cosignatures make the policy's quorum, and ``Tech7-Quorate: ?1`` says so; until there is
    one, it is the newest checkpoint with the cosignatures it has, and ``Tech7-Quorate: ?0``,
    so that no receipt claims a quorum it does not have.
    """
    headers = {"Cache-Control": "no-cache"}
    witnessing = current_app.extensions.get("tech7.witnessing")
    note = None
    if witnessing:
        note, quorate = witnessing.receipt_checkpoint(index)
        headers["Tech7-Quorate"] = "?1" if quorate else "?0"  # an RFC 8941 boolean
    return Response(transparency_log().receipt(index, note), mimetype="text/plain",
                    headers=headers)


#: How the receipt routes are documented: what :func:`receipt_response` answers.
RECEIPT_DOC = {
    "content_type": "text/plain",
    "description": "A c2sp.org/tlog-proof@v1 text.",
    "headers": {"Tech7-Quorate": {
        "description": "Only where the log has witnesses: ?1 when the receipt's checkpoint "
                       "carries the policy's quorum of cosignatures, ?0 when it does not (yet).",
        "schema": {"type": "string", "enum": ["?0", "?1"]}}},
}


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


@blp.route("/checkpoint")
@blp.response(200, content_type="text/plain")
def checkpoint():
    """The current signed checkpoint (C2SP tlog-checkpoint), with the witnesses' cosignatures

    The log's signature line comes first; each witness of the policy that has cosigned this
    checkpoint adds its C2SP tlog-cosignature line after it.
    """
    witnessing = current_app.extensions.get("tech7.witnessing")
    note = witnessing.cosigned_checkpoint() if witnessing else transparency_log().checkpoint()
    return Response(note, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def _witness_json(report: WitnessReport) -> dict:
    return {**report.as_json(), "href": f"/v1/log/witnesses/{quote(report.witness, safe='')}"}


def _witness_reports() -> list[WitnessReport]:
    witnessing = current_app.extensions.get("tech7.witnessing")
    return witnessing.reports() if witnessing else []


@blp.route("/witnesses")
@blp.arguments(PageQuerySchema, location="query", as_kwargs=False)
@blp.response(200, WitnessStateListSchema, headers=LINK_HEADER)
def witnesses(args):
    """What the registry knows of each witness of its policy, in policy order

    For operators: the size each witness last cosigned, the last error of a round that did not
    get a cosignature, and when it ran. Empty when the log has no witnesses.
    """
    reports, page = page_of(_witness_reports(), args)
    return {"items": [_witness_json(r) for r in reports], "total": page.total}, 200, {
        "Link": page.link_header(), "Cache-Control": "no-store"}


@blp.route("/witnesses/<string:name>")
@blp.response(200, WitnessStateSchema)
def witness(name):
    """What the registry knows of one witness of its policy"""
    report = next((r for r in _witness_reports() if r.witness == name), None)
    if report is None:
        raise NotFound(f"The log's witness policy names no witness {name!r}.")
    return _witness_json(report), 200, {"Cache-Control": "no-store"}


@blp.route("/entries/<int(max=2147483647):index>")  # log_entries.index is a 32-bit integer
@blp.response(200, EntrySchema)
def entry(index):
    """One log entry with its exact leaf bytes"""
    return json_response(entry_json(transparency_log().entry(index)),
                         headers={"Cache-Control": IMMUTABLE})


@blp.route("/entries")
@blp.arguments(LookupQuerySchema, location="query", as_kwargs=False)
@blp.response(200, EntryListSchema, headers=LINK_HEADER)
def lookup(args):
    """Find the entries that record a document, by its SHA-256"""
    entries, page = page_of(transparency_log().entries_for_document(args["sha256"]), args)
    return {"items": [entry_json(e) for e in entries], "total": page.total}, 200, {
        "Link": page.link_header()}


@blp.route("/proofs/inclusion")
@blp.arguments(InclusionQuerySchema, location="query", as_kwargs=False)
@blp.response(200, InclusionProofSchema)
def inclusion(args):
    """RFC 9162 inclusion proof of an entry in a tree size"""
    hashes = transparency_log().inclusion_proof(args["index"], args["tree_size"])
    return {"index": args["index"], "tree_size": args["tree_size"], "hashes": _b64(hashes)}


@blp.route("/proofs/consistency")
@blp.arguments(ConsistencyQuerySchema, location="query", as_kwargs=False)
@blp.response(200, ConsistencyProofSchema)
def consistency(args):
    """RFC 9162 consistency proof between two tree sizes"""
    hashes = transparency_log().consistency_proof(args["first"], args["second"])
    return {"first": args["first"], "second": args["second"], "hashes": _b64(hashes)}


@blp.route("/tile/<path:path>")
@blp.response(200, content_type="application/octet-stream")
def tile(path):
    """C2SP tlog-tiles: hash tiles and entry bundles"""
    try:
        if path.startswith("entries/"):
            index, width = parse_entries_path("tile/" + path)
            body = transparency_log().entry_bundle(index, width)
        else:
            level, index, width = parse_tile_path("tile/" + path)
            body = transparency_log().tile(level, index, width)
    except ValueError as error:
        # A malformed path names no tile at all: like any unknown URL, it is not found.
        raise NotFound(f"Not a C2SP tile path: {error}") from error
    # Full tiles never change; a partial tile at a given width never changes either.
    cache = IMMUTABLE if width <= TILE_WIDTH else "no-cache"
    return Response(body, mimetype="application/octet-stream", headers={"Cache-Control": cache})
