"""Reading C2PA manifests: what a manifest says, and whether it reads Trusted, offline.

:func:`read_manifest` verifies a document against its sidecar manifest store (``application/c2pa``,
C2PA 2.2 §11.4 "External Manifests") or the manifest its file embeds (a PDF), against exactly the
trust anchors it is given, and reports the verdict with the registry's own assertions
(``org.tech7.document``, ``org.tech7.parent-proof``). The c2pa settings for such a verifier, in
the split ``trust.anchors`` form and the older single bundle, are :func:`trust_settings`,
:func:`legacy_trust_settings` and :func:`verifier_settings`.

The registry signs with the same settings (:mod:`app.provenance.signing`); the auditor reads with
them. Verification is always offline: remote manifest fetch and OCSP are off in every context.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tech7_audit.jumbf import signing_certificate
from tech7_audit.times import isoformat

IDENTITY_LABEL = "org.tech7.document"
#: The registry's assertion that links a version to its parent through the log (see above).
PARENT_PROOF_LABEL = "org.tech7.parent-proof"

UNREADABLE = "manifest.unreadable"
TRUSTED, VALID, INVALID = "Trusted", "Valid", "Invalid"


@dataclass(frozen=True)
class IngredientReport:
    """What a manifest records about one of its ingredients.

    ``state`` is derived from the validation results recorded when the ingredient was added,
    amended by the deltas c2pa finds when it re-validates the ingredient's manifest now. An
    ingredient without a manifest (a :class:`ParentLink`) has only its recorded results, so its
    state says what the signer found; ``None`` when it records none either. ``instance_id`` is
    the ingredient's instance ID (``sha256:<hex>`` of the parent's bytes for a linked parent).
    """

    title: str | None
    relationship: str | None
    state: str | None
    active_manifest: str | None
    codes: tuple[str, ...] = ()
    instance_id: str | None = None


@dataclass(frozen=True)
class ManifestReport:
    """The outcome of reading one asset's manifest: trust state, signer, time, and contents.

    ``state`` is c2pa's verdict: ``Trusted`` (valid and chaining to a trust anchor), ``Valid``
    (intact but not trusted) or ``Invalid``. ``codes`` are C2PA validation failure codes
    (C2PA 2.2 §15.2, e.g. ``assertion.dataHash.mismatch``, ``signingCredential.expired``): the
    active manifest's own, then those c2pa finds re-validating its ingredients' manifests; or
    ``manifest.unreadable`` when no manifest could be parsed at all (``error`` then says why).
    ``identity``, ``parent_proof`` and ``actions`` are the ``org.tech7.document``,
    ``org.tech7.parent-proof`` and ``c2pa.actions`` payloads; treat these dicts as read-only.
    """

    state: str
    codes: tuple[str, ...] = ()
    success_codes: tuple[str, ...] = ()
    informational_codes: tuple[str, ...] = ()
    label: str | None = None
    title: str | None = None
    signer_common_name: str | None = None
    signer_organization: str | None = None
    signer_serial_number: str | None = None
    signer_certificate_sha256: str | None = None
    signed_at: str | None = None
    timestamped: bool = False
    timestamp_trusted: bool = False
    identity: Mapping[str, Any] | None = None
    parent_proof: Mapping[str, Any] | None = None
    actions: tuple[Mapping[str, Any], ...] = ()
    ingredients: tuple[IngredientReport, ...] = ()
    error: str | None = None
    validation_results: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def trusted(self) -> bool:
        """Whether c2pa says Trusted."""
        return self.state == TRUSTED


def verification_context(trust_anchors_pem: bytes) -> c2pa.Context:
    """A c2pa ``Context`` that verifies offline against exactly ``trust_anchors_pem``.

    Cheap (~0.3 ms) but not free: a worker that verifies often keeps one (per process, never
    across a fork) and passes it to :func:`read_manifest`.
    """
    return c2pa.Context.from_dict(verifier_settings(trust_settings(trust_anchors_pem)))


#: The two kinds of trust anchor c2pa-rs's split trust settings know: roots for the certificates
#: that sign claims, and roots for RFC 3161 timestamp authorities. Since C2PA 2.1 a validator
#: keeps the timestamp authorities' trust list apart from the signers' (the specification's
#: "Time-stamp Authorities" section).
MANIFEST_TRUST, TSA_TRUST = "manifest", "tsa"
TRUST_KINDS = (MANIFEST_TRUST, TSA_TRUST)

#: What every verifying context here checks, and never does: trust on, the network off (uploads
#: are untrusted input, and an auditor's verification must not depend on a server).
VERIFY_SETTINGS: Mapping[str, bool] = MappingProxyType({
    "verify_after_reading": True,
    "verify_trust": True,
    "verify_timestamp_trust": True,
    "remote_manifest_fetch": False,
    "ocsp_fetch": False,
})


def trust_settings(anchors_pem: bytes, tsa_anchors_pem: bytes | None = None, *,
                   trust_uri: str | None = None) -> dict[str, Any]:
    """The ``trust`` section of c2pa settings in the split form: one ``trust.anchors`` entry per
    kind, ``trust_kind`` ``"manifest"`` with ``anchors_pem`` and ``"tsa"`` with
    ``tsa_anchors_pem`` (by default the same anchors: the registry's root issues both its
    signers' and its timestamp authority's certificates, and an association's own CA may vouch
    for its own authority). ``trust_uri`` names where a verifier got the anchors.

    c2pa-rs 0.91.3 (c2pa-python 0.38.1) accepts this form; 0.92 needs it, because there the
    older single ``trust.trust_anchors`` (:func:`legacy_trust_settings`) only vouches for
    signers and leaves every timestamp ``timeStamp.untrusted``.

    Raises ``ValueError`` unless each bundle holds X.509 certificates: c2pa skips an anchor it
    cannot parse in this form, which would turn a broken bundle into a silent "untrusted".
    """
    pems = {MANIFEST_TRUST: anchors_pem,
            TSA_TRUST: anchors_pem if tsa_anchors_pem is None else tsa_anchors_pem}
    entries = []
    for kind in TRUST_KINDS:
        x509.load_pem_x509_certificates(pems[kind])
        entry = {"trust_anchors": pems[kind].decode("ascii"), "trust_kind": kind}
        if trust_uri is not None:
            entry["trust_uri"] = trust_uri
        entries.append(entry)
    return {"anchors": entries}


def legacy_trust_settings(anchors_pem: bytes) -> dict[str, Any]:
    """The ``trust`` section for c2pa releases older than the split form: one PEM bundle that
    vouches for signers and timestamp authorities alike (c2pa-rs up to 0.91)."""
    return {"trust_anchors": anchors_pem.decode("ascii")}


def verifier_settings(trust: Mapping[str, Any]) -> dict[str, Any]:
    """Complete c2pa settings for an offline verifier with the given ``trust`` section: what the
    auditor kit hands out, ready for ``c2pa.Context.from_dict`` or a c2patool settings file."""
    return {"version": 1, "trust": dict(trust), "verify": dict(VERIFY_SETTINGS)}


#: Larger stores (a PDF with its manifest embedded) have their reports made afresh: keying on
#: them would cost about what the report saves, and 64 of them would hold too much memory.
_REPORT_MEMO_MAX_BYTES = 256 * 1024


def read_manifest(
    content: bytes,
    media_type: str,
    manifest: bytes | None,
    *,
    trust_anchors_pem: bytes,
    context: c2pa.Context | None = None,
) -> ManifestReport:
    """Verify ``content`` against its sidecar ``manifest`` (or its embedded one when ``None``).

    Offline, against ``trust_anchors_pem`` only (or ``context``, which must come from
    :func:`verification_context` or a manifest signer of this process). Never raises on
    bad input: anything c2pa cannot parse reads ``Invalid`` with ``manifest.unreadable``.
    """
    if manifest is not None and not manifest:
        return _unreadable("the manifest is empty")
    try:
        ctx = context if context is not None else verification_context(trust_anchors_pem)
    except (c2pa.C2paError, ValueError) as exc:
        return _unreadable(f"the trust anchors are not usable: {reason_of(exc)}")
    try:
        with c2pa.Reader(media_type, io.BytesIO(bytes(content)), manifest, context=ctx) as reader:
            store_json = reader.json()
            state = reader.get_validation_state()
    except Exception as exc:  # noqa: BLE001 - c2pa raises many types on hostile input
        return _unreadable(f"c2pa could not read it: {reason_of(exc)}")
    store_bytes = manifest if manifest is not None else bytes(content)
    # c2pa validated this read; what is remembered is only the interpretation of its answer.
    if len(store_bytes) <= _REPORT_MEMO_MAX_BYTES and len(store_json) <= _REPORT_MEMO_MAX_BYTES:
        return _remembered_report(store_json, state, store_bytes)
    return _interpreted(store_json, state, store_bytes)


@functools.lru_cache(maxsize=64)
def _remembered_report(store_json: str, state: str | None, store_bytes: bytes) -> ManifestReport:
    """:func:`_interpreted`, remembered: a report is a function of c2pa's answer (its store and
    verdict) and of the store's bytes (the signing certificate is read from them), and its dicts
    are read-only (see :class:`ManifestReport`), so one may be shared."""
    return _interpreted(store_json, state, store_bytes)


def _interpreted(store_json: str, state: str | None, store_bytes: bytes) -> ManifestReport:
    try:
        store = json.loads(store_json)
    except (ValueError, RecursionError) as exc:
        return _unreadable(f"c2pa could not read it: {reason_of(exc)}")
    try:
        return _report(store, state, store_bytes)
    except Exception as exc:  # noqa: BLE001 - a store c2pa parsed but we cannot interpret
        return _unreadable(f"unexpected manifest store structure: {exc}")


def reason_of(exc: Exception) -> str:
    """What went wrong, in words a client can read: c2pa's message without the error-kind prefix
    (``"Verify: invalid JUMBF header"`` reads ``invalid JUMBF header``) and never a class name."""
    message = str(exc)
    kind, separator, rest = message.partition(": ")
    if isinstance(exc, c2pa.C2paError) and separator and kind.isidentifier():
        message = rest
    return message or "no reason given"


def _unreadable(reason: str) -> ManifestReport:
    return ManifestReport(state=INVALID, codes=(UNREADABLE,), error=reason)


def _report(store: dict[str, Any], state: str | None, store_bytes: bytes) -> ManifestReport:
    label: str = store.get("active_manifest") or ""
    manifest = store.get("manifests", {}).get(label) if label else None
    if manifest is None:
        return _unreadable("no active manifest")
    results = store.get("validation_results") or {}
    active = results.get("activeManifest") or {}
    failures = _codes(active.get("failure"))
    if not results and store.get("validation_status"):
        # Older stores report only a flat failure list.
        failures = _codes(store["validation_status"])
    success = _codes(active.get("success"))
    deltas = results.get("ingredientDeltas") or []
    # A damaged ingredient manifest makes the whole store Invalid while the active manifest's own
    # list stays empty; say why at the top level too.
    for delta in deltas:
        failures += tuple(
            code for code in _codes((delta.get("validationDeltas") or {}).get("failure"))
            if code not in failures
        )
    if state not in (TRUSTED, VALID, INVALID):
        state = INVALID

    signature = manifest.get("signature_info") or {}
    certificate = signing_certificate(store_bytes, label, signature.get("cert_serial_number"))
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions", [])}
    actions: list[Mapping[str, Any]] = []
    for assertion_label, data in assertions.items():
        if str(assertion_label).startswith("c2pa.actions") and isinstance(data, dict):
            actions.extend(data.get("actions", []))

    return ManifestReport(
        state=state,
        codes=failures,
        success_codes=success,
        informational_codes=_codes(active.get("informational")),
        label=label,
        title=manifest.get("title"),
        signer_common_name=signature.get("common_name"),
        # c2pa-rs calls it "issuer" but fills it from the signing certificate's *subject* O.
        signer_organization=_subject_attribute(certificate, x509.NameOID.ORGANIZATION_NAME)
        or signature.get("issuer"),
        signer_serial_number=signature.get("cert_serial_number"),
        signer_certificate_sha256=None if certificate is None else certificate_sha256(certificate),
        signed_at=_iso(signature.get("time")),
        timestamped=signature.get("time") is not None,
        timestamp_trusted="timeStamp.trusted" in success,
        identity=assertions.get(IDENTITY_LABEL),
        parent_proof=assertions.get(PARENT_PROOF_LABEL),
        actions=tuple(actions),
        ingredients=tuple(_ingredient_report(i, deltas) for i in manifest.get("ingredients", [])),
        validation_results=results or None,
    )


def _ingredient_report(
    ingredient: dict[str, Any], deltas: list[dict[str, Any]]
) -> IngredientReport:
    recorded = ingredient.get("validation_results")
    codes: list[str] = []
    success: tuple[str, ...] = ()
    if recorded:
        active = recorded.get("activeManifest") or {}
        codes.extend(_codes(active.get("failure")))
        success = _codes(active.get("success"))
    elif ingredient.get("validation_status"):
        codes.extend(_codes(ingredient["validation_status"]))
    # c2pa re-validates ingredient manifests on every read and reports only what changed.
    suffix = "/" + str(ingredient.get("label", ""))
    for delta in deltas:
        if str(delta.get("ingredientAssertionURI", "")).endswith(suffix):
            codes.extend(_codes((delta.get("validationDeltas") or {}).get("failure")))
    if ingredient.get("active_manifest") is None and not recorded:
        state = None
    elif codes:
        state = INVALID
    elif "signingCredential.trusted" in success:
        state = TRUSTED
    else:
        state = VALID
    return IngredientReport(
        title=ingredient.get("title"),
        relationship=ingredient.get("relationship"),
        state=state,
        active_manifest=ingredient.get("active_manifest"),
        codes=tuple(codes),
        instance_id=ingredient.get("instance_id"),
    )


def _codes(entries: object) -> tuple[str, ...]:
    if not isinstance(entries, list):
        return ()
    return tuple(str(e["code"]) for e in entries if isinstance(e, dict) and "code" in e)


def _iso(value: object) -> str | None:
    """c2pa's signing time in the registry's one time format (:func:`tech7_audit.times.isoformat`).

    The time comes from an RFC 3161 token, whose ``genTime`` is UTC (RFC 3161 §2.4.2), so one
    written without an offset is UTC; a string that is no time at all is passed on as it came.
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return isoformat(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def _subject_attribute(
    certificate: x509.Certificate | None, oid: x509.ObjectIdentifier
) -> str | None:
    if certificate is None:
        return None
    values = certificate.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def certificate_sha256(certificate: x509.Certificate) -> str:
    """The SHA-256 of a certificate's DER, in lowercase hex: how the registry names it."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
