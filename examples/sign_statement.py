"""Publish a statement version signed with your association's own key (the registry never sees it).

Needs ``pip install c2pa-python rfc8785``. Your CA certificate must be registered
(``POST /v1/associations/<you>/ca``) and approved by an operator first (to try the flow,
``examples/make_own_ca.py`` makes a throw-away CA and signer). Then::

    python examples/sign_statement.py --registry https://registry.example \\
        --association bitkom --slug ai-act-position --content statement.json \\
        --certificate-chain signer-chain.pem --private-key signer.key

``statement.json`` holds the content (statement_type, title, text, addresses, …); the token comes
from ``--token`` or ``TECH7_TOKEN``. The script reads the latest version, builds the next one as
the exact RFC 8785 bytes the registry will serve, signs a C2PA sidecar for them with ES256, a
timestamp from the registry's ``/v1/timestamp`` and the ``org.tech7.document`` assertion, links
the previous version (a ``parentOf`` ingredient naming it by SHA-256, and an
``org.tech7.parent-proof`` assertion with its manifest's SHA-256 and its log receipt), and uploads
both. The previous version's manifest is not embedded, so a manifest keeps its size at any depth.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import c2pa
import rfc8785

DIGITAL_CREATION = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"
HUMAN_EDITS = "http://cv.iptc.org/newscodes/digitalsourcetype/humanEdits"


def previous_version(registry: str, association: str, slug: str
                     ) -> tuple[int, bytes, bytes, bytes] | None:
    """(number, bytes, manifest, receipt) of the statement's latest version, or None if it has
    none. The receipt is the C2SP tlog-proof of its log entry in the log's current checkpoint."""
    url = f"{registry}/v1/associations/{association}/statements/{slug}"
    try:
        with urllib.request.urlopen(url) as response:
            body = response.read()
            location = response.headers["Content-Location"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    with urllib.request.urlopen(f"{registry}{location}/manifest") as response:
        manifest = response.read()
    with urllib.request.urlopen(f"{registry}{location}/receipt") as response:
        receipt = response.read()
    return json.loads(body)["version"], body, manifest, receipt


def build_body(association: str, slug: str, version: int, content: Mapping[str, Any],
               published_at: datetime | None = None) -> bytes:
    """The version's RFC 8785 bytes, exactly as the registry will serve them.

    Every field is present, defaults included, and ``published_at`` is RFC 3339 UTC with
    milliseconds: the registry refuses bytes that differ in any way from what it would serve.
    """
    moment = (published_at or datetime.now(UTC)).astimezone(UTC)
    body = {"withdrawn": False, "withdrawal_reason": None, "addresses": [], **content,
            "kind": "statement", "slug": slug, "association": association, "version": version,
            "published_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    return rfc8785.dumps(body)


def sign(body: bytes, *, certificate_chain_pem: bytes, private_key_pem: bytes,
         tsa_url: str | None, parent: tuple[bytes, bytes, bytes] | None = None,
         trust_anchors_pem: bytes = b"") -> bytes:
    """A C2PA sidecar manifest (``application/c2pa``) for ``body``, signed with your key.

    ``tsa_url`` is the RFC 3161 authority c2pa asks for a timestamp (the registry refuses a
    manifest without one).

    ``parent`` is the previous version's (bytes, manifest, receipt). Its manifest is read here
    against ``trust_anchors_pem`` (the registry's /v1/trust/anchors.pem plus your CA), which
    must let it read Trusted; the ``parentOf`` ingredient records those validation results and
    the parent's SHA-256, without the manifest itself, and the ``org.tech7.parent-proof``
    assertion carries the manifest's SHA-256 and the receipt, whose log entry the registry
    checks against its own.
    """
    document = json.loads(body)
    settings = {"version": 1,
                "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                "builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors_pem:
        # The split form (c2pa-rs 0.91.3 and later): the same anchors vouch for the signer of
        # the parent's manifest and for the authority that timestamped it.
        pem = trust_anchors_pem.decode("ascii")
        settings["trust"] = {"anchors": [{"trust_anchors": pem, "trust_kind": kind}
                                         for kind in ("manifest", "tsa")]}
    context = c2pa.Context.from_dict(settings)
    stored_slug = f"{document['association']}/{document['slug']}"
    title = f"statement {stored_slug} version {document['version']}"
    definition: dict[str, Any] = {
        "claim_generator_info": [{"name": "tech7 sign_statement example", "version": "1"}],
        "title": title, "format": "application/json",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": DIGITAL_CREATION}]}},
            # The registry's identity assertion: it must name exactly this version.
            {"label": "org.tech7.document", "data": {
                "kind": "statement", "slug": stored_slug, "version": document["version"],
                "sha256": hashlib.sha256(body).hexdigest(),
                "association": document["association"]}},
        ],
    }
    if parent is not None:
        parent_body, parent_manifest, receipt = parent
        with c2pa.Reader("application/json", io.BytesIO(parent_body), parent_manifest,
                         context=context) as reader:
            store = json.loads(reader.json())
            if reader.get_validation_state() != "Trusted":
                raise ValueError("the previous version's manifest does not read Trusted")
        receipt_text = receipt.decode("utf-8")
        # C2SP tlog-proof: the header, an optional "extra" line, then "index N".
        index_line = next(line for line in receipt_text.splitlines()
                          if line.startswith("index "))
        ingredient_id = f"parent-{uuid.uuid4().hex[:8]}"
        parent_sha256 = hashlib.sha256(parent_body).hexdigest()
        definition["assertions"][0]["data"]["actions"] = [
            # C2PA 2.2 "Actions": an edit starts by opening its parentOf ingredient.
            {"action": "c2pa.opened", "parameters": {"ingredientIds": [ingredient_id]}},
            {"action": "c2pa.edited", "digitalSourceType": HUMAN_EDITS}]
        # No manifest_data and no active_manifest: the parent is named, not embedded.
        definition["ingredients"] = [{
            "title": store["manifests"][store["active_manifest"]].get("title")
            or f"{title} (previous version)", "format": "application/json",
            "relationship": "parentOf", "label": ingredient_id,
            "instance_id": f"sha256:{parent_sha256}",
            "validation_results": {"activeManifest":
                                   (store.get("validation_results") or {}).get("activeManifest")}}]
        definition["assertions"].append({"label": "org.tech7.parent-proof", "data": {
            "version": json.loads(parent_body)["version"], "sha256": parent_sha256,
            "manifest_label": store["active_manifest"],
            "manifest_sha256": hashlib.sha256(parent_manifest).hexdigest(),
            "log_index": int(index_line.removeprefix("index ")), "tlog_proof": receipt_text}})
    builder = c2pa.Builder(definition, context=context)
    try:
        builder.set_no_embed()
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256, certificate_chain_pem, private_key_pem, tsa_url))
        try:
            return builder.sign(signer, "application/json", io.BytesIO(body), io.BytesIO())
        finally:
            signer.close()
    finally:
        builder.close()


def upload(registry: str, association: str, slug: str, body: bytes, manifest: bytes,
           token: str) -> tuple[int, Mapping[str, str], bytes]:
    """POST both as multipart/form-data; returns (status, headers, body), errors included."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, data, media_type in (("document", body, "application/json"),
                                   ("manifest", manifest, "application/c2pa")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{name}"\r\nContent-Type: {media_type}\r\n\r\n'.encode()
                     + data + b"\r\n")
    payload = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{registry}/v1/associations/{association}/statements/{slug}/own-key-versions",
        data=payload, method="POST",
        headers={"Authorization": f"Bearer {token}",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def main(argv: list[str] | None = None) -> int:
    """Sign and upload the next version of a statement; print the outcome."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", required=True, help="e.g. https://registry.example")
    parser.add_argument("--association", required=True)
    parser.add_argument("--slug", required=True)
    parser.add_argument("--content", required=True, help="JSON file of the statement's content")
    parser.add_argument("--certificate-chain", required=True,
                        help="PEM: your signing certificate, then your CA")
    parser.add_argument("--private-key", required=True, help="PEM (PKCS#8) of the signing key")
    parser.add_argument("--token", default=os.environ.get("TECH7_TOKEN"))
    parser.add_argument("--tsa-url", help="default: the registry's /v1/timestamp")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set TECH7_TOKEN")
    registry = args.registry.rstrip("/")
    with open(args.content, encoding="utf-8") as content_file:
        content = json.load(content_file)
    with open(args.certificate_chain, "rb") as chain_file, \
            open(args.private_key, "rb") as key_file:
        chain, key = chain_file.read(), key_file.read()
    latest = previous_version(registry, args.association, args.slug)
    with urllib.request.urlopen(f"{registry}/v1/trust/anchors.pem") as response:
        anchors = response.read()
    body = build_body(args.association, args.slug, latest[0] + 1 if latest else 1, content)
    manifest = sign(body, certificate_chain_pem=chain, private_key_pem=key,
                    tsa_url=args.tsa_url or f"{registry}/v1/timestamp",
                    parent=latest[1:] if latest else None,
                    # Your CA is the last certificate of the chain file.
                    trust_anchors_pem=anchors + chain[chain.rindex(b"-----BEGIN"):])
    status, headers, answer = upload(registry, args.association, args.slug, body, manifest,
                                     args.token)
    print(status, headers.get("Location", ""))
    print(answer.decode("utf-8", "replace"))
    return 0 if status == 201 else 1


if __name__ == "__main__":
    sys.exit(main())
