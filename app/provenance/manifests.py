"""C2PA manifests: signing published documents and exports, and reading manifests back.

Published versions are JSON (and exports JSON bundles or CSV), which cannot carry a manifest, so
they get a *sidecar*: a standalone manifest store (``application/c2pa``) whose ``c2pa.hash.data``
hard binding covers the exact bytes (C2PA 2.2 §9.2 "Hard Bindings", §11.4 "External Manifests").
c2pa-rs falls back to a data hash over the whole stream for any media type it has no container
handler for, so ``application/json``, ``text/csv`` and ``application/octet-stream`` all work as the
sign/read format. PDF exports carry the manifest embedded instead
(:meth:`ManifestSigner.sign_embedded`).

Every manifest holds:

* ``c2pa.actions`` — ``c2pa.created`` with a ``digitalSourceType`` for a first version, or
  ``c2pa.opened`` (the parent) followed by ``c2pa.edited`` / ``c2pa.published`` for later ones;
  ``c2pa.placed`` for each component of an export;
* ``org.tech7.document`` — the registry's own assertion (a reverse-DNS label, C2PA 2.2 §6.2)
  naming the document: kind, slug, version, sha256, association;
* the previous version as a ``parentOf`` ingredient, and the documents an export lists as
  ``componentOf`` ingredients, each with its own manifest so provenance chains.

A version's previous version comes in one of two forms. Versions signed before bounded manifests
carry the parent's whole manifest store (``manifest_data``), so each manifest holds every earlier
one. Newer ones (:class:`ParentLink`) hold their own manifest only: the ``parentOf`` ingredient
records the parent's title, SHA-256 (as its instance ID) and the validation results it had when the
child was signed, without a manifest link, which earns at most the informational
``ingredient.unknownProvenance`` (c2pa-rs 0.91 reports nothing for it); the signed
``org.tech7.parent-proof`` assertion names the
parent's manifest by SHA-256 and carries the parent's transparency-log entry with its inclusion
proof in the checkpoint of that moment (c2sp.org/tlog-proof). The log's append-only proofs then
carry the chain instead of nested manifest stores, so a manifest keeps its size at any depth: an
example of the anchoring idea of C2PA specifications issue #122, applied to the parent's claim.

Verification is always offline: remote manifest fetch and OCSP are off in every context made here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.core.caching import BoundedCache
from app.core.times import isoformat
from app.pki.authority import KeyStore, certificate_sha256

IDENTITY_LABEL = "org.tech7.document"
#: The registry's assertion that links a version to its parent through the log (see above).
PARENT_PROOF_LABEL = "org.tech7.parent-proof"
SIDECAR_MEDIA_TYPE = "application/c2pa"

# IPTC Digital Source Type NewsCodes, the vocabulary the C2PA "Actions" assertion points to.
# The declaration and the statements are written by people with ordinary (non-generative)
# software: that is "digitalCreation" ("created by a human using non-generative tools").
# "humanEdits" describes augmenting or correcting existing media, so it fits a later version's
# c2pa.edited, not the creation of a text.
DIGITAL_CREATION = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"
HUMAN_EDITS = "http://cv.iptc.org/newscodes/digitalsourcetype/humanEdits"

CREATED = "c2pa.created"
EDITED = "c2pa.edited"
PUBLISHED = "c2pa.published"
_FOLLOW_UP_ACTIONS = frozenset({EDITED, PUBLISHED})

UNREADABLE = "manifest.unreadable"
TRUSTED, VALID, INVALID = "Trusted", "Valid", "Invalid"

_GENERATOR_NAME = "tech7-registry"
_PARENT_ID = "parent"


class ProvenanceError(Exception):
    """Base of the errors this module raises (none of them is a client error)."""


class SigningError(ProvenanceError):
    """c2pa refused to build or sign a manifest (bad key, TSA unreachable, invalid claim...)."""


class IngredientNotTrustedError(ProvenanceError):
    """An ingredient (the previous version, or a document an export lists) does not read Trusted.

    c2pa records an ingredient's validation results but does not let a broken ingredient
    invalidate the new manifest, so refusing to build on it is the registry's job (DESIGN.md,
    Provenance). ``report`` says what was found.
    """

    def __init__(self, title: str, report: ManifestReport):
        super().__init__(
            f"ingredient {title!r} reads {report.state}"
            + (f" ({', '.join(report.codes)})" if report.codes else "")
        )
        self.report = report


class SelfCheckError(ProvenanceError):
    """The start-up probe did not read back as expected: the c2pa settings did not take effect."""


@dataclass(frozen=True)
class Ingredient:
    """A signed document that went into the one being signed (an export lists these).

    ``manifest`` is its sidecar manifest, or ``None`` when ``content`` carries the manifest
    embedded (a PDF). ``relationship`` is ``componentOf`` for the documents an export contains.
    ``own_anchors_pem`` are CA certificates it may chain to besides the registry's root: the
    approved CAs of the association that signed it with its own key, which the registry checked
    it against when it accepted the version.
    """

    title: str
    media_type: str
    content: bytes
    manifest: bytes | None = None
    relationship: str = "componentOf"
    own_anchors_pem: bytes = b""


@dataclass(frozen=True)
class ParentLink:
    """The previous version, named by hash and proven through the log (the bounded form).

    ``validation_results`` are the parent manifest's own, as read when it was accepted; they are
    recorded in the ``parentOf`` ingredient (the C2PA 2.2 ingredient's ``validationResults``).
    ``tlog_proof`` is the C2SP tlog-proof of the parent's log entry (the entry's bytes as its
    ``extra``) in a checkpoint the log signed before the child. :meth:`assertion` is what the
    ``org.tech7.parent-proof`` assertion holds.
    """

    title: str
    version: int
    sha256: str
    manifest_label: str
    manifest_sha256: str
    log_index: int
    tlog_proof: str
    validation_results: Mapping[str, Any] | None = None

    def assertion(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256,
                "manifest_label": self.manifest_label, "manifest_sha256": self.manifest_sha256,
                "log_index": self.log_index, "tlog_proof": self.tlog_proof}


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
    return c2pa.Context.from_dict(_settings(trust_anchors_pem, verify_after_sign=False))


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


def _settings(trust_anchors_pem: bytes, *, verify_after_sign: bool) -> dict[str, Any]:
    """The c2pa settings every context here uses (keys as in c2pa-rs 0.91 ``Settings``).

    Unknown keys are silently ignored by c2pa, which is why :func:`self_check` exists.
    """
    return {
        "version": 1,
        # The anchors *replace* the SDK's built-in list, so only the registry's root (or the
        # anchors a verifier passes) can make a manifest Trusted, for signers and timestamp
        # authorities alike. The default EKU configuration accepts emailProtection for signers
        # and timeStamping for TSAs, so no trust_config is needed.
        "trust": trust_settings(trust_anchors_pem),
        "verify": {**VERIFY_SETTINGS, "verify_after_sign": verify_after_sign},
        # A text has nothing to draw, and a PDF thumbnail costs tens of ms and ~90 KB per export.
        "builder": {"thumbnail": {"enabled": False}},
    }


class ManifestSigner:
    """Signs manifests with the registry's (or an association's) certificate.

    Make one per process, after the fork: c2pa objects created before a gunicorn fork are
    invalid in the worker, so a signer created in the master and inherited would fail (this class
    refuses to be used from another process rather than crash inside the SDK). Within a process it
    is thread-safe and meant to be shared: it holds one c2pa ``Context`` and one c2pa ``Signer``
    per signer name (created on first use; a fresh Signer per manifest costs ~20% more).

    ``tsa_url`` is the RFC 3161 timestamp authority c2pa calls while signing (``None``: no
    timestamp, so manifests stop being Trusted when the certificate expires). Keys come from
    ``keys``; ``sign_callbacks`` maps a signer name to a function that signs for a key held
    elsewhere (an HSM or KMS), with its certificate chain from ``callback_chains_pem`` or, failing
    that, from ``keys``. A callback receives the COSE ``Sig_structure`` bytes (not a digest), must
    sign them with ECDSA P-256 / SHA-256 and may return the signature either DER-encoded (what
    most HSMs and KMSs return) or as COSE wants it, ``r || s`` with 32 bytes each (RFC 9053 §2.1);
    DER is converted here, so the SDK always gets the COSE form.
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        tsa_url: str | None = None,
        sign_callbacks: Mapping[str, Callable[[bytes], bytes]] | None = None,
        callback_chains_pem: Mapping[str, bytes] | None = None,
        verify_after_sign: bool = True,
        generator_version: str = "0.1.0",
    ):
        self._keys = keys
        self._tsa_url = tsa_url
        self._callbacks = dict(sign_callbacks or {})
        self._callback_chains = dict(callback_chains_pem or {})
        for name in self._callbacks:
            if name not in self._callback_chains and name not in keys.signer_names():
                raise ValueError(f"no certificate chain for callback signer {name!r}")
        self._generator = {"name": _GENERATOR_NAME, "version": generator_version}
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._signers: dict[str, c2pa.Signer] = {}
        # verify_after_sign re-reads every manifest right after signing (60-85% of the signing
        # cost, measured): it catches a callback returning a bad signature, or a TSA token c2pa
        # cannot use, before anything is published. Turn it off only where self_check and the
        # publishing service's own reads already cover that.
        self._context = c2pa.Context.from_dict(
            _settings(keys.trust_anchors_pem, verify_after_sign=verify_after_sign)
        )

    @property
    def tsa_url(self) -> str | None:
        """The timestamp authority URL, or ``None`` when manifests are not timestamped."""
        return self._tsa_url

    @property
    def trust_anchors_pem(self) -> bytes:
        """The anchors this signer's context trusts (the registry's root)."""
        return self._keys.trust_anchors_pem

    @property
    def context(self) -> c2pa.Context:
        """This signer's c2pa context, usable with :func:`read_manifest` in the same process."""
        self._check_process()
        return self._context

    def signer_names(self) -> list[str]:
        """Every name this signer can sign as: key-store signers and callback signers."""
        return sorted(set(self._keys.signer_names()) | set(self._callbacks))

    def sign_sidecar(
        self,
        content: bytes,
        media_type: str,
        *,
        signer_name: str,
        title: str,
        action: str,
        identity: Mapping[str, object],
        parent_manifest: bytes | None = None,
        parent_content: bytes | None = None,
        parent_anchors_pem: bytes = b"",
        parent_link: ParentLink | None = None,
        ingredients: Sequence[Ingredient] = (),
        digital_source_type: str = DIGITAL_CREATION,
    ) -> bytes:
        """Sign ``content`` and return the sidecar manifest store bytes (``application/c2pa``).

        A later version names its previous version either by ``parent_link`` (the bounded form,
        see the module docstring: nothing is read, the caller vouches for the link) or, in the
        older form, by ``parent_content`` and ``parent_manifest``.

        ``action`` is ``c2pa.created`` for a first version (no parent) or ``c2pa.edited`` /
        ``c2pa.published`` for a later one, whose previous version (``parent_content`` and its
        ``parent_manifest``) becomes the ``parentOf`` ingredient, read against the registry's root
        plus ``parent_anchors_pem`` (see :attr:`Ingredient.own_anchors_pem`). ``ingredients`` become
        ``componentOf`` ingredients. Every ingredient must read Trusted, else
        :class:`IngredientNotTrustedError`. ``identity`` is stored as the ``org.tech7.document``
        assertion. Raises :class:`SigningError` when c2pa refuses.
        """
        manifest, _ = self._sign(
            content, media_type, embed=False,
            signer_name=signer_name, title=title, action=action, identity=identity,
            parent_manifest=parent_manifest, parent_content=parent_content,
            parent_anchors_pem=parent_anchors_pem, parent_link=parent_link,
            ingredients=ingredients, digital_source_type=digital_source_type,
        )
        return manifest

    def sign_embedded(
        self,
        content: bytes,
        media_type: str = "application/pdf",
        *,
        signer_name: str,
        title: str,
        action: str,
        identity: Mapping[str, object],
        parent_manifest: bytes | None = None,
        parent_content: bytes | None = None,
        ingredients: Sequence[Ingredient] = (),
        digital_source_type: str = DIGITAL_CREATION,
    ) -> bytes:
        """Sign ``content`` and return it with the manifest embedded (PDF, SVG, ...).

        Same arguments as :meth:`sign_sidecar`; ``parent_manifest`` may be ``None`` when the
        parent carries its manifest embedded.
        """
        _, signed = self._sign(
            content, media_type, embed=True,
            signer_name=signer_name, title=title, action=action, identity=identity,
            parent_manifest=parent_manifest, parent_content=parent_content,
            ingredients=ingredients, digital_source_type=digital_source_type,
        )
        return signed

    # --- building ------------------------------------------------------------------------------

    def _sign(self, content: bytes, media_type: str, *, embed: bool, signer_name: str,
              title: str, **definition: Any) -> tuple[bytes, bytes]:
        """Build and sign one manifest; returns (manifest store bytes, signed content).

        Without ``embed`` the content is left as it is and the manifest is a sidecar.
        """
        builder = self._builder(media_type, signer_name=signer_name, title=title, **definition)
        destination = io.BytesIO()
        try:
            if not embed:
                builder.set_no_embed()
            manifest = builder.sign(self._signer(signer_name), media_type,
                                    io.BytesIO(content), destination)
        except c2pa.C2paError as exc:
            raise SigningError(f"c2pa could not sign {title!r}: {_reason(exc)}") from exc
        finally:
            builder.close()
        return manifest, destination.getvalue() if embed else content

    def _builder(
        self,
        media_type: str,
        *,
        signer_name: str,
        title: str,
        action: str,
        identity: Mapping[str, object],
        parent_manifest: bytes | None,
        parent_content: bytes | None,
        ingredients: Sequence[Ingredient],
        digital_source_type: str,
        parent_anchors_pem: bytes = b"",
        parent_link: ParentLink | None = None,
    ) -> c2pa.Builder:
        self._check_process()
        if parent_link is not None and (parent_content is not None or parent_manifest is not None):
            raise ValueError("name the previous version by parent_link or by its content, not both")
        has_parent = parent_content is not None or parent_manifest is not None \
            or parent_link is not None
        if action == CREATED and has_parent:
            raise ValueError("c2pa.created starts a history: it takes no parent")
        if action in _FOLLOW_UP_ACTIONS and not has_parent:
            raise ValueError(f"{action} needs the previous version (parent_content)")
        if action != CREATED and action not in _FOLLOW_UP_ACTIONS:
            raise ValueError(f"unsupported action {action!r}")
        if has_parent and parent_link is None and parent_content is None:
            raise ValueError("parent_manifest without parent_content cannot be verified")
        try:
            identity_json = json.loads(json.dumps(dict(identity)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"identity is not JSON-serialisable: {exc}") from None

        staged: list[_StagedIngredient] = []
        if parent_content is not None:
            parent = Ingredient(
                title=f"{title} (previous version)",
                media_type=media_type,
                content=parent_content,
                manifest=parent_manifest,
                relationship="parentOf",
                own_anchors_pem=parent_anchors_pem,
            )
            staged.append(self._stage(parent, _PARENT_ID))
        elif parent_link is not None:
            staged.append(_linked_parent(parent_link, media_type))
        for index, ingredient in enumerate(ingredients):
            if ingredient.relationship == "parentOf":
                raise ValueError("pass the previous version as parent_content, not an ingredient")
            staged.append(self._stage(ingredient, f"component-{index}"))

        actions: list[dict[str, Any]] = []
        if has_parent:
            # C2PA 2.2 "Actions" assertion: the first action is c2pa.created or c2pa.opened (of
            # the parentOf ingredient); c2pa-rs rejects a claim that starts otherwise.
            actions.append({"action": "c2pa.opened", "parameters": {"ingredientIds": [_PARENT_ID]}})
            follow_up: dict[str, Any] = {"action": action}
            if action == EDITED:
                follow_up["digitalSourceType"] = HUMAN_EDITS
            actions.append(follow_up)
        else:
            actions.append({"action": CREATED, "digitalSourceType": digital_source_type})
        for item in staged:
            if item.ingredient_id != _PARENT_ID:
                actions.append(
                    {"action": "c2pa.placed", "parameters": {"ingredientIds": [item.ingredient_id]}}
                )

        definition: dict[str, Any] = {
            "claim_generator_info": [self._generator],
            "title": title,
            "format": media_type,
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": actions}},
                {"label": IDENTITY_LABEL, "data": identity_json},
                *([{"label": PARENT_PROOF_LABEL, "data": parent_link.assertion()}]
                  if parent_link is not None else []),
            ],
            "ingredients": [item.definition for item in staged if item.stream is None],
        }
        try:
            builder = c2pa.Builder(definition, context=self._context)
        except c2pa.C2paError as exc:
            raise SigningError(f"c2pa could not build the manifest for {title!r}: {_reason(exc)}") from exc
        try:
            for item in staged:
                if item.manifest is not None:
                    builder.add_resource(item.resource_id, io.BytesIO(item.manifest))
                elif item.stream is not None:
                    builder.add_ingredient_from_stream(
                        item.definition, item.media_type, io.BytesIO(item.stream)
                    )
        except c2pa.C2paError as exc:
            builder.close()
            raise SigningError(f"c2pa could not add the ingredients of {title!r}: {_reason(exc)}") from exc
        return builder

    def _stage(self, ingredient: Ingredient, ingredient_id: str) -> _StagedIngredient:
        # An ingredient an association signed with its own key chains to one of its CAs, not to
        # the registry's root: it needs a context of its own (the signer's context trusts the
        # root alone).
        report = read_manifest(
            ingredient.content,
            ingredient.media_type,
            ingredient.manifest,
            trust_anchors_pem=ingredient.own_anchors_pem + self._keys.trust_anchors_pem,
            context=None if ingredient.own_anchors_pem else self._context,
        )
        if not report.trusted:
            raise IngredientNotTrustedError(ingredient.title, report)
        title = ingredient.title
        if ingredient.relationship == "parentOf" and report.title:
            title = report.title  # the previous version's own title, as it signed it
        definition: dict[str, Any] = {
            "title": title,
            "format": ingredient.media_type,
            "relationship": ingredient.relationship,
            # The label pairs the ingredient with the action that names it; c2pa replaces it
            # with the assertion label in the signed manifest.
            "label": ingredient_id,
        }
        if ingredient.manifest is None:
            # Embedded manifest: c2pa reads and validates it from the asset itself.
            return _StagedIngredient(ingredient_id, definition, ingredient.media_type,
                                     stream=ingredient.content)
        # Sidecar: c2pa cannot find the manifest in the asset, so we hand it over as the
        # ingredient's manifest_data, with the validation results we just obtained (the
        # "validationResults" field of the C2PA 2.2 ingredient assertion records them).
        resource_id = f"{ingredient_id}.c2pa"
        definition.update(
            {
                "active_manifest": report.label,
                "manifest_data": {"format": SIDECAR_MEDIA_TYPE, "identifier": resource_id},
                "validation_results": report.validation_results,
            }
        )
        return _StagedIngredient(ingredient_id, definition, ingredient.media_type,
                                 manifest=ingredient.manifest, resource_id=resource_id)

    def _signer(self, name: str) -> c2pa.Signer:
        signer = self._signers.get(name)
        if signer is not None:
            return signer
        with self._lock:
            signer = self._signers.get(name)
            if signer is None:
                signer = self._new_signer(name)
                self._signers[name] = signer
            return signer

    def _new_signer(self, name: str) -> c2pa.Signer:
        try:
            if name in self._callbacks:
                chain = self._callback_chains.get(name) or self._keys.signer_chain_pem(name)
                return c2pa.Signer.from_callback(
                    _cose_signature_callback(self._callbacks[name]),
                    c2pa.C2paSigningAlg.ES256,
                    chain.decode("ascii"),
                    self._tsa_url,
                )
            info = c2pa.C2paSignerInfo(
                c2pa.C2paSigningAlg.ES256,
                self._keys.signer_chain_pem(name),
                self._keys.signer_key_pem(name),
                self._tsa_url,
            )
            return c2pa.Signer.from_info(info)
        except KeyError:
            raise SigningError(f"unknown signer {name!r}") from None
        except c2pa.C2paError as exc:
            raise SigningError(f"c2pa rejected signer {name!r}: {_reason(exc)}") from exc

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise RuntimeError(
                "ManifestSigner was created in another process (before a fork?); "
                "create one per worker, e.g. in gunicorn's post_fork hook"
            )


def _linked_parent(link: ParentLink, media_type: str) -> _StagedIngredient:
    """The ``parentOf`` ingredient of the bounded form: no ``manifest_data`` and no
    ``active_manifest``, so c2pa neither embeds nor re-validates the parent (an ingredient without
    a manifest is informational, ``ingredient.unknownProvenance``, where a dangling manifest link
    would be the failure ``ingredient.manifest.missing``)."""
    definition: dict[str, Any] = {
        "title": link.title, "format": media_type, "relationship": "parentOf",
        "label": _PARENT_ID, "instance_id": f"sha256:{link.sha256}",
    }
    if link.validation_results:
        definition["validation_results"] = dict(link.validation_results)
    return _StagedIngredient(_PARENT_ID, definition, media_type)


@dataclass(frozen=True)
class _StagedIngredient:
    ingredient_id: str
    definition: dict[str, Any]
    media_type: str
    stream: bytes | None = None
    manifest: bytes | None = None
    resource_id: str = ""


def _cose_signature_callback(sign: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Wrap an ECDSA P-256 signing callback so it always returns COSE's ``r || s`` form."""

    def callback(data: bytes) -> bytes:
        signature = sign(data)
        if len(signature) == 64:
            return signature
        # RFC 9053 §2.1: ES256 signatures are the two 32-byte big-endian integers r and s;
        # HSM/KMS APIs return the X9.62 DER SEQUENCE instead.
        r, s = decode_dss_signature(signature)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return callback


# --- reading -----------------------------------------------------------------------------------

#: Reports of c2pa answers read before, by (store JSON, verdict, SHA-256 of the store's bytes);
#: a report's dicts are read-only (see :class:`ManifestReport`), so one may be shared.
_REPORTS: BoundedCache[tuple[str, str | None, bytes], ManifestReport] = BoundedCache(64)
#: Larger stores (a PDF with its manifest embedded) are not remembered: hashing them for the key
#: would cost about what the report saves, and 64 of them would hold too much memory.
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
    :func:`verification_context` or a :class:`ManifestSigner` of this process). Never raises on
    bad input: anything c2pa cannot parse reads ``Invalid`` with ``manifest.unreadable``.
    """
    if manifest is not None and not manifest:
        return _unreadable("the manifest is empty")
    try:
        ctx = context if context is not None else verification_context(trust_anchors_pem)
    except (c2pa.C2paError, ValueError) as exc:
        return _unreadable(f"the trust anchors are not usable: {_reason(exc)}")
    try:
        with c2pa.Reader(media_type, io.BytesIO(bytes(content)), manifest, context=ctx) as reader:
            store_json = reader.json()
            state = reader.get_validation_state()
    except Exception as exc:  # noqa: BLE001 - c2pa raises many types on hostile input
        return _unreadable(f"c2pa could not read it: {_reason(exc)}")
    store_bytes = manifest if manifest is not None else bytes(content)
    # The report is a function of c2pa's answer (its store and verdict) and the store's bytes
    # (the signing certificate is read from them), so an answer seen before has its report
    # remembered: c2pa still validates on every read, only the interpretation is skipped.
    key = None
    if len(store_bytes) <= _REPORT_MEMO_MAX_BYTES and len(store_json) <= _REPORT_MEMO_MAX_BYTES:
        key = (store_json, state, hashlib.sha256(store_bytes).digest())
        remembered = _REPORTS.get(key)
        if remembered is not None:
            return remembered
    try:
        store = json.loads(store_json)
    except Exception as exc:  # noqa: BLE001 - c2pa raises many types on hostile input
        return _unreadable(f"c2pa could not read it: {_reason(exc)}")
    try:
        report = _report(store, state, store_bytes)
    except Exception as exc:  # noqa: BLE001 - a store c2pa parsed but we cannot interpret
        return _unreadable(f"unexpected manifest store structure: {exc}")
    return _REPORTS.put(key, report) if key is not None else report


def _reason(exc: Exception) -> str:
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
    certificate = _signing_certificate(store_bytes, label, signature.get("cert_serial_number"))
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
    """c2pa's signing time in the registry's one time format (:func:`app.core.times.isoformat`).

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


def self_check(
    signer: ManifestSigner,
    trust_anchors_pem: bytes,
    *,
    signer_names: Sequence[str] | None = None,
) -> None:
    """Sign a probe with each signer and insist it reads back exactly as it should.

    c2pa ignores settings keys it does not know, so a typo would silently switch trust checking
    off. This probe proves the settings took: each probe must read Trusted against
    ``trust_anchors_pem``, carry its identity assertion and, when the signer has a TSA, a trusted
    timestamp; and a one-byte change to the probe must read Invalid with a data-hash mismatch.
    Raises :class:`SelfCheckError` otherwise. Run it once per worker at start-up.
    """
    names = list(signer_names) if signer_names is not None else signer.signer_names()
    if not names:
        raise SelfCheckError("no signers to check")
    context = verification_context(trust_anchors_pem)
    for name in names:
        probe = json.dumps({"probe": "tech7-registry self-check", "signer": name}).encode()
        identity = {"kind": "self-check", "signer": name}
        try:
            manifest = signer.sign_sidecar(
                probe, "application/json", signer_name=name, title="self-check probe",
                action=CREATED, identity=identity,
            )
        except ProvenanceError as exc:
            raise SelfCheckError(f"signer {name!r} cannot sign: {_reason(exc)}") from exc
        report = read_manifest(probe, "application/json", manifest,
                               trust_anchors_pem=trust_anchors_pem, context=context)
        if not report.trusted:
            raise SelfCheckError(
                f"signer {name!r}: probe reads {report.state} ({', '.join(report.codes)})"
            )
        if report.identity != identity:
            raise SelfCheckError(f"signer {name!r}: the identity assertion did not round-trip")
        if signer.tsa_url is not None and not report.timestamp_trusted:
            raise SelfCheckError(f"signer {name!r}: no trusted timestamp from {signer.tsa_url}")
        tampered = read_manifest(probe + b" ", "application/json", manifest,
                                 trust_anchors_pem=trust_anchors_pem, context=context)
        if tampered.state != INVALID or "assertion.dataHash.mismatch" not in tampered.codes:
            raise SelfCheckError(f"signer {name!r}: a tampered probe was not rejected")


# --- the signing certificate, read from the manifest store itself ------------------------------
#
# c2pa reports the signer's CN, O and serial number but not the certificate, so its fingerprint is
# read from the COSE signature: the manifest store is a JUMBF box tree (ISO/IEC 19566-5), each
# manifest's "c2pa.signature" box holds a COSE_Sign1 (RFC 9052 §4.2) in CBOR (RFC 8949), and the
# certificate chain is its x5chain header (label 33, RFC 9360 §2; C2PA 2.2 §13.2 puts it in the
# protected header). The result is only used when its serial number matches what c2pa verified.

_JUMBF_STORE_UUID = bytes.fromhex("6332706100110010800000aa00389b71")  # "c2pa" manifest store
_COSE_X5CHAIN = 33


def _signing_certificate(
    store_bytes: bytes, label: str, serial_number: object
) -> x509.Certificate | None:
    try:
        for offset in _store_offsets(store_bytes):
            cose = _find_signature_cbor(store_bytes, offset, label)
            if cose is None:
                continue
            certificate = _x5chain_leaf(cose)
            if certificate is not None and str(certificate.serial_number) == str(serial_number):
                return certificate
    except (ValueError, IndexError, struct.error, RecursionError):
        pass
    return None


def _store_offsets(data: bytes) -> list[int]:
    """Offsets of JUMBF manifest-store superboxes: the whole sidecar, or inside an asset."""
    if data[4:8] == b"jumb":
        return [0]
    offsets: list[int] = []
    start = 0
    while len(offsets) < 8:
        found = data.find(_JUMBF_STORE_UUID, start)
        if found < 0:
            break
        # superbox header (8) + description box header (8) precede the UUID
        if found >= 16 and data[found - 12:found - 8] == b"jumb":
            offsets.append(found - 16)
        start = found + 1
    return offsets


def _box_at(data: bytes, start: int, end: int) -> tuple[bytes, int, int]:
    """(type, payload start, box end) of the box at ``start`` (header: LBox, TBox, XLBox)."""
    size, box_type = struct.unpack(">I4s", data[start:start + 8])
    header = 8
    if size == 1:
        size = struct.unpack(">Q", data[start + 8:start + 16])[0]
        header = 16
    elif size == 0:
        size = end - start
    if size < header:
        raise ValueError("bad JUMBF box size")
    # c2pa tolerates a box that claims to run past its parent (box lengths are not signed), so
    # clamp rather than give up: the serial-number cross-check guards the result.
    return box_type, start + header, min(start + size, end)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """Every box in ``data[start:end]``, in order."""
    boxes = []
    while start + 8 <= end:
        box = _box_at(data, start, end)
        boxes.append(box)
        start = box[2]
    return boxes


def _superbox_label(data: bytes, start: int, end: int) -> tuple[str, list[tuple[bytes, int, int]]]:
    children = _boxes(data, start, end)
    if not children or children[0][0] != b"jumd":
        raise ValueError("superbox without description")
    _, d_start, d_end = children[0]
    toggles = data[d_start + 16]
    label = ""
    if toggles & 0x02:
        raw = data[d_start + 17:d_end]
        label = raw[: raw.index(b"\x00")].decode("utf-8")
    return label, children[1:]


def _find_signature_cbor(data: bytes, offset: int, label: str) -> bytes | None:
    box_type, start, end = _box_at(data, offset, len(data))
    if box_type != b"jumb":
        return None
    _, manifests = _superbox_label(data, start, end)
    for m_type, m_start, m_end in manifests:
        if m_type != b"jumb":
            continue
        m_label, parts = _superbox_label(data, m_start, m_end)
        if m_label != label:
            continue
        for p_type, p_start, p_end in parts:
            if p_type != b"jumb":
                continue
            p_label, content = _superbox_label(data, p_start, p_end)
            if p_label == "c2pa.signature":
                for c_type, c_start, c_end in content:
                    if c_type == b"cbor":
                        return data[c_start:c_end]
    return None


def _x5chain_leaf(cose_sign1: bytes) -> x509.Certificate | None:
    value, _ = _cbor_item(cose_sign1, 0)
    if isinstance(value, _Tagged):
        value = value.value
    if not isinstance(value, list) or len(value) != 4:
        return None
    protected_bytes, unprotected = value[0], value[1]
    headers: dict[Any, Any] = {}
    if isinstance(protected_bytes, bytes) and protected_bytes:
        protected, _ = _cbor_item(protected_bytes, 0)
        if isinstance(protected, dict):
            headers.update(protected)
    if isinstance(unprotected, dict):
        for key, item in unprotected.items():
            headers.setdefault(key, item)
    chain = headers.get(_COSE_X5CHAIN)
    leaf = chain[0] if isinstance(chain, list) and chain else chain
    if not isinstance(leaf, bytes):
        return None
    return x509.load_der_x509_certificate(leaf)


@dataclass(frozen=True)
class _Tagged:
    tag: int
    value: object


def _cbor_item(data: bytes, pos: int, depth: int = 0) -> tuple[object, int]:
    """Decode one definite-length CBOR data item at ``pos`` (RFC 8949 §3); return it and the end."""
    if depth > 16:
        raise ValueError("CBOR nesting too deep")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        argument = info
    elif info in (24, 25, 26, 27):
        width = 1 << (info - 24)
        if pos + width > len(data):
            raise ValueError("truncated CBOR")
        argument = int.from_bytes(data[pos:pos + width], "big")
        pos += width
    else:
        raise ValueError("indefinite-length or reserved CBOR item")
    if major == 0:
        return argument, pos
    if major == 1:
        return -1 - argument, pos
    if major in (2, 3):
        end = pos + argument
        if end > len(data):
            raise ValueError("truncated CBOR string")
        raw = data[pos:end]
        return (raw if major == 2 else raw.decode("utf-8")), end
    if major == 4:
        items = []
        for _ in range(argument):
            item, pos = _cbor_item(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[Any, Any] = {}
        for _ in range(argument):
            key, pos = _cbor_item(data, pos, depth + 1)
            item, pos = _cbor_item(data, pos, depth + 1)
            if isinstance(key, (int, str, bytes)):
                mapping[key] = item
        return mapping, pos
    if major == 6:
        item, pos = _cbor_item(data, pos, depth + 1)
        return _Tagged(argument, item), pos
    # major 7: simple values and floats; their meaning is irrelevant here.
    return None, pos
