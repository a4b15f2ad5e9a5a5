"""C2PA manifests: signing published documents and exports (reading them is :mod:`tech7_audit.manifests`).

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

import io
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import c2pa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from tech7_audit.manifests import (
    IDENTITY_LABEL,
    INVALID,
    PARENT_PROOF_LABEL,
    VERIFY_SETTINGS,
    ManifestReport,
    read_manifest,
    reason_of,
    trust_settings,
    verification_context,
)

from app.pki.authority import KeyStore

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
            raise SigningError(f"c2pa could not sign {title!r}: {reason_of(exc)}") from exc
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
            raise SigningError(f"c2pa could not build the manifest for {title!r}: {reason_of(exc)}") from exc
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
            raise SigningError(f"c2pa could not add the ingredients of {title!r}: {reason_of(exc)}") from exc
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
            raise SigningError(f"c2pa rejected signer {name!r}: {reason_of(exc)}") from exc

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
            raise SelfCheckError(f"signer {name!r} cannot sign: {reason_of(exc)}") from exc
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


