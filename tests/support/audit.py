"""What the audit tests share: what an auditor downloads, uploads to the verify API and
tampers with. The fixtures, signers that forge or mislead among them, are in
``tests/audit/conftest.py``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from app.provenance.signing import CREATED, ManifestSigner

JSON = "application/json"
VERSION = "/v1/recommendations/sme-participation/versions/1"
OTHER_VERSION = "/v1/recommendations/key-risks/versions/1"


@dataclass(frozen=True)
class Materials:
    """What ``tech7-audit fetch`` downloads for one version, fetched through the test client."""

    href: str
    body: bytes
    manifest: bytes
    receipt: str
    anchors: bytes
    verifier_key: str
    trust: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def audit_inputs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~tech7_audit.pipeline.audit_document` after the file."""
        return {"trust_anchors_pem": self.anchors, "verifier_key": self.verifier_key}


def fetch_materials(client, href: str) -> Materials:
    """Download a version, its manifest and receipt, the anchors, the trust list and log key."""
    body = client.get(href)
    assert body.status_code == 200, href
    manifest = client.get(href + "/manifest")
    receipt = client.get(href + "/receipt")
    anchors = client.get("/v1/trust/anchors.pem")
    trust = client.get("/v1/trust")
    for response in (manifest, receipt, anchors, trust):
        assert response.status_code == 200
    return Materials(href=href, body=body.get_data(), manifest=manifest.get_data(),
                     receipt=receipt.get_data(as_text=True), anchors=anchors.get_data(),
                     verifier_key=trust.json["log"]["verifier_key"], trust=trust.json)


def published_versions(client) -> list[str]:
    """The href of every published version, from the change feed."""
    items = client.get("/v1/changes", query_string={"since": "0", "limit": 500}).json["items"]
    return [item["href"] for item in items]


def upload(client, file: bytes | None, manifest: bytes | None = None, *,
           filename: str = "document.json", **query):
    """POST /v1/verify with the given parts (``None`` leaves a part out)."""
    parts = {}
    if file is not None:
        parts["file"] = (file, filename)
    if manifest is not None:
        parts["manifest"] = (manifest, "document.c2pa")
    body, content_type = multipart(parts)
    return client.post("/v1/verify", data=body, content_type=content_type, query_string=query)


def multipart(parts: dict[str, tuple[bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body of file parts (RFC 7578) and its Content-Type.

    Encoded here rather than by werkzeug's test client, which spools large bodies to a temporary
    file it never closes when the server answers before reading it all (a 413).
    """
    boundary = uuid.uuid4().hex
    chunks = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
              f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
              .encode() + data + b"\r\n" for name, (data, filename) in parts.items()]
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def publish_new_version(client, headers: dict[str, str],
                        url: str = "/v1/recommendations/key-risks") -> str:
    """Publish the next version of ``url`` (its title revised); returns the new version's href."""
    body = client.get(url).json
    body["title"] += " (revised)"
    draft = client.put(url + "/draft", json=body, headers={**headers, "If-None-Match": "*"})
    assert draft.status_code == 201, draft.json
    published = client.post(url + "/draft/publish",
                            headers={**headers, "If-Match": draft.headers["ETag"]})
    assert published.status_code == 201, published.json
    return published.headers["Location"]


def one_byte_changed(data: bytes, position: int | None = None) -> bytes:
    """``data`` with one byte changed (in the middle unless ``position`` says where)."""
    changed = bytearray(data)
    position = len(changed) // 2 if position is None else position
    changed[position] ^= 0x01
    return bytes(changed)


def identity_of(body: bytes, association: str | None = None) -> dict[str, Any]:
    """The org.tech7.document assertion the registry writes for sme-participation version 1."""
    return {"kind": "recommendation", "slug": "sme-participation", "version": 1,
            "sha256": hashlib.sha256(body).hexdigest(), "association": association}


def sign(signer: ManifestSigner, body: bytes, *, signer_name: str = "registry",
         identity: dict[str, Any] | None = None) -> bytes:
    """A sidecar manifest for ``body`` made by ``signer``, named like the registry's own."""
    return signer.sign_sidecar(body, JSON, signer_name=signer_name,
                               title="recommendation sme-participation version 1",
                               action=CREATED, identity=identity or identity_of(body))
