"""The registry's certificate authority and the key material it keeps on disk.

Layout of a key directory (made by :func:`init_keys`, read by :meth:`KeyStore.load`)::

    root-ca.pem / root-ca.key        self-signed root: the only trust anchor verifiers need
    issuing-ca.pem / issuing-ca.key  intermediate (pathlen 0) that issues every end-entity cert
    signers/<name>.pem / .key        C2PA claim signers: leaf + issuing CA chain, and its key
    signers/retired/<name>-<serial>.pem / .key   signers replaced by :func:`rotate_signer`
    tsa.pem / tsa.key                the built-in RFC 3161 timestamp authority
    log.key / log.pub                Ed25519 key that signs transparency-log checkpoints

Every key is ECDSA P-256 except the log key. Private keys are PKCS#8 PEM, created with mode 0600;
directories this module creates are 0700.

The profiles follow what c2pa-rs 0.91 accepts (C2PA 2.2 §14.5 "X.509 certificates"): a claim
signer is not a CA, has a critical KeyUsage with digitalSignature, Subject and Authority Key
Identifiers and an EKU from the C2PA list (emailProtection; documentSigning alone is rejected by
the SDK's default EKU configuration). The TSA certificate carries the critical, sole timeStamping
EKU that RFC 3161 §2.3 requires.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.core.files import make_private_folder

ROOT_VALIDITY = timedelta(days=20 * 365)
ISSUING_VALIDITY = timedelta(days=10 * 365)
TSA_VALIDITY = timedelta(days=10 * 365)
SIGNER_VALIDITY = timedelta(days=2 * 365)

# Certificates start a little in the past so that a verifier whose clock is slightly behind ours
# does not see a brand-new certificate as "not yet valid".
_CLOCK_SKEW = timedelta(minutes=5)

_REGISTRY_ORGANIZATION = "TECH7 registry"
_SIGNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_ROOT = "root-ca"
_ISSUING = "issuing-ca"
_TSA = "tsa"
_SIGNERS = "signers"
_RETIRED = "retired"
_LOG_KEY = "log.key"
_LOG_PUB = "log.pub"


class KeyMaterialError(Exception):
    """A key or certificate file is missing, unreadable, malformed or inconsistent.

    This is an operator error (found at start-up or by ``tech7-registry keys``), never a client error, so it
    is deliberately not a :class:`app.core.errors.RegistryError`. ``path`` names the offending file.
    """

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def init_keys(
    directory: Path,
    signer_names: Sequence[str],
    *,
    now: datetime | None = None,
    signer_validity: timedelta = SIGNER_VALIDITY,
) -> None:
    """Create whatever key material is missing under ``directory``; keep what exists.

    Makes the root CA, the issuing CA, one C2PA signing certificate per name in ``signer_names``,
    the timestamp authority's certificate and the Ed25519 log key. Running it again is harmless:
    an existing certificate/key pair is never replaced (use :func:`rotate_signer` for that), so
    adding an association later only issues its signer. ``now`` fixes the issuing time (tests use
    it to make certificates that are already expired). Raises :class:`KeyMaterialError` when only
    half of a pair exists or an existing CA cannot be read, rather than guessing.
    """
    directory = Path(directory)
    now = _utc(now)
    for name in signer_names:
        _check_signer_name(name)
    make_private_folder(directory)
    make_private_folder(directory / _SIGNERS)

    root_cert, root_key = _ensure_pair(
        directory / _ROOT, lambda: _issue_root(now))
    issuing_cert, issuing_key = _ensure_pair(
        directory / _ISSUING, lambda: _issue_intermediate(root_cert, root_key, now))
    _ensure_pair(directory / _TSA, lambda: _issue_tsa(issuing_cert, issuing_key, now))
    for name in signer_names:
        _ensure_pair(
            directory / _SIGNERS / name,
            functools.partial(_issue_signer, name, issuing_cert, issuing_key, now, signer_validity),
            chain=(issuing_cert,),
        )
    _ensure_log_key(directory)


def rotate_signer(
    directory: Path,
    name: str,
    *,
    now: datetime | None = None,
    signer_validity: timedelta = SIGNER_VALIDITY,
) -> x509.Certificate:
    """Issue a fresh certificate and key for signer ``name`` and retire the current pair.

    The old files move to ``signers/retired/<name>-<serial hex>.pem/.key``. Manifests signed
    under the old certificate stay verifiable: it chains to the same root, and their RFC 3161
    timestamps prove they were signed while it was valid. Returns the new certificate.
    """
    directory = Path(directory)
    now = _utc(now)
    _check_signer_name(name)
    issuing_cert = _read_certificate(directory / f"{_ISSUING}.pem")
    issuing_key = _read_ec_key(directory / f"{_ISSUING}.key")
    stem = directory / _SIGNERS / name
    old_cert = _read_certificate(_sibling(stem, ".pem"))
    retired = directory / _SIGNERS / _RETIRED
    make_private_folder(retired)
    retired_stem = retired / f"{name}-{old_cert.serial_number:x}"
    # Issue first so that a failure leaves the current signer untouched.
    cert, key = _issue_signer(name, issuing_cert, issuing_key, now, signer_validity)
    os.replace(_sibling(stem, ".key"), _sibling(retired_stem, ".key"))
    os.replace(_sibling(stem, ".pem"), _sibling(retired_stem, ".pem"))
    _write_pair(stem, cert, key, chain=(issuing_cert,))
    return cert


@dataclass(frozen=True, eq=False)
class _SignerMaterial:
    certificate: x509.Certificate
    chain_pem: bytes
    key_pem: bytes = field(repr=False)


@dataclass(frozen=True, eq=False)
class KeyStore:
    """The registry's key material, loaded and cross-checked once at start-up.

    Immutable: rotating a signer writes new files; a process picks them up by loading again.
    """

    directory: Path
    root_ca_certificate: x509.Certificate
    issuing_ca_certificate: x509.Certificate
    tsa_certificate: x509.Certificate
    # Keys stay out of repr(): a KeyStore in a traceback or a log line must not leak them.
    tsa_private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    log_private_key: ed25519.Ed25519PrivateKey = field(repr=False)
    log_public_key: ed25519.Ed25519PublicKey = field(repr=False)
    _signers: Mapping[str, _SignerMaterial] = field(repr=False)

    @classmethod
    def load(cls, directory: Path) -> KeyStore:
        """Read every file :func:`init_keys` makes and check that the pieces fit together.

        Raises :class:`KeyMaterialError` naming the first file that is missing, unreadable, not
        PEM, holds a key that does not match its certificate, or is not issued by its CA.
        """
        directory = Path(directory)
        root = _read_certificate(directory / f"{_ROOT}.pem")
        _check_issued_by(directory / f"{_ROOT}.pem", root, root)
        issuing = _read_certificate(directory / f"{_ISSUING}.pem")
        _check_issued_by(directory / f"{_ISSUING}.pem", issuing, root)
        tsa = _read_certificate(directory / f"{_TSA}.pem")
        _check_issued_by(directory / f"{_TSA}.pem", tsa, issuing)
        tsa_key = _read_ec_key(directory / f"{_TSA}.key")
        _check_key_matches(directory / f"{_TSA}.key", tsa_key, tsa)

        signers: dict[str, _SignerMaterial] = {}
        signer_dir = directory / _SIGNERS
        pem_files = sorted(signer_dir.glob("*.pem")) if signer_dir.is_dir() else []
        for cert_path in pem_files:
            chain = _read_certificates(cert_path)
            _check_issued_by(cert_path, chain[0], issuing)
            key_path = cert_path.with_suffix(".key")
            key = _read_ec_key(key_path)
            _check_key_matches(key_path, key, chain[0])
            signers[cert_path.stem] = _SignerMaterial(
                certificate=chain[0],
                chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
                key_pem=_read_bytes(key_path),
            )

        log_key = _read_private_key(directory / _LOG_KEY)
        if not isinstance(log_key, ed25519.Ed25519PrivateKey):
            raise KeyMaterialError(directory / _LOG_KEY, "not an Ed25519 private key")
        log_pub = _read_public_key(directory / _LOG_PUB)
        if not isinstance(log_pub, ed25519.Ed25519PublicKey) or _raw(log_pub) != _raw(
            log_key.public_key()
        ):
            raise KeyMaterialError(directory / _LOG_PUB, "does not match log.key")

        return cls(
            directory=directory,
            root_ca_certificate=root,
            issuing_ca_certificate=issuing,
            tsa_certificate=tsa,
            tsa_private_key=tsa_key,
            log_private_key=log_key,
            log_public_key=log_pub,
            _signers=MappingProxyType(signers),
        )

    @property
    def trust_anchors_pem(self) -> bytes:
        """The PEM a verifier configures as its only trust anchor: the root CA.

        Both the claim signers' chains and the timestamp authority's chain end at this root, so
        it is the one anchor of each ``trust_kind`` (``manifest`` and ``tsa``) in c2pa's split
        trust settings, and the whole of the older single ``trust.trust_anchors`` list (the
        intermediates travel inside each manifest and timestamp token).
        """
        return self.root_ca_certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def tsa_chain(self) -> tuple[x509.Certificate, ...]:
        """Certificates a timestamp token carries after the TSA's own: the issuing CA."""
        return (self.issuing_ca_certificate,)

    def signer_names(self) -> list[str]:
        """Names of the current (not retired) signers, sorted."""
        return sorted(self._signers)

    def signer_certificate(self, name: str) -> x509.Certificate:
        """The current signing certificate of ``name``; ``KeyError`` if there is none."""
        return self._signers[name].certificate

    def signer_chain_pem(self, name: str) -> bytes:
        """PEM of the signer's certificate followed by the issuing CA, as c2pa wants it."""
        return self._signers[name].chain_pem

    def signer_key_pem(self, name: str) -> bytes:
        """PKCS#8 PEM of the signer's private key."""
        return self._signers[name].key_pem


# --- issuing -----------------------------------------------------------------------------------


def _issue_root(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(_REGISTRY_ORGANIZATION, "Certificate Authority", "TECH7 Registry Root CA")
    builder = (
        _builder(name, name, key.public_key(), now, ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
    )
    return builder.sign(key, hashes.SHA256()), key


def _issue_intermediate(
    root_cert: x509.Certificate, root_key: ec.EllipticCurvePrivateKey, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(_REGISTRY_ORGANIZATION, "Certificate Authority", "TECH7 Registry Issuing CA")
    builder = (
        _builder(name, root_cert.subject, key.public_key(), now, ISSUING_VALIDITY, root_cert)
        # pathlen 0: this CA issues end-entity certificates only (RFC 5280 §4.2.1.9).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
    )
    return builder.sign(root_key, hashes.SHA256()), key


def _issue_tsa(
    issuing_cert: x509.Certificate, issuing_key: ec.EllipticCurvePrivateKey, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(
        _REGISTRY_ORGANIZATION, _REGISTRY_ORGANIZATION, "TECH7 Registry Timestamp Authority"
    )
    builder = (
        _builder(name, issuing_cert.subject, key.public_key(), now, TSA_VALIDITY, issuing_cert)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        # RFC 3161 §2.3: the TSA certificate MUST have exactly this EKU, marked critical.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    )
    return builder.sign(issuing_key, hashes.SHA256()), key


def _issue_signer(
    name: str,
    issuing_cert: x509.Certificate,
    issuing_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    validity: timedelta,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name, _REGISTRY_ORGANIZATION, f"{name} C2PA signer")
    builder = (
        _builder(subject, issuing_cert.subject, key.public_key(), now, validity, issuing_cert)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        # C2PA 2.2 §14.5.1: the EKU must be one of the listed purposes; emailProtection is the
        # one c2pa-rs's default configuration accepts on its own.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
    )
    return builder.sign(issuing_key, hashes.SHA256()), key


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    validity: timedelta,
    issuer_cert: x509.Certificate | None = None,
) -> x509.CertificateBuilder:
    not_before = now - _CLOCK_SKEW
    not_after = now + validity
    if issuer_cert is not None:
        # A certificate outliving its issuer would fail path validation after the issuer expires.
        not_after = min(not_after, issuer_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_cert is not None:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return builder


def _name(organization: str, unit: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


# --- files -------------------------------------------------------------------------------------


def _ensure_pair(
    stem: Path,
    issue: Callable[[], tuple[x509.Certificate, ec.EllipticCurvePrivateKey]],
    *,
    chain: Sequence[x509.Certificate] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = _sibling(stem, ".pem"), _sibling(stem, ".key")
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if have_cert and have_key:
        return _read_certificate(cert_path), _read_ec_key(key_path)
    if have_cert or have_key:
        missing = key_path if have_cert else cert_path
        raise KeyMaterialError(missing, "missing while its pair exists; restore it or remove both")
    cert, key = issue()
    _write_pair(stem, cert, key, chain=chain)
    return cert, key


def _write_pair(
    stem: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    chain: Sequence[x509.Certificate] = (),
) -> None:
    # The key goes first: a crash in between leaves a key without a certificate, which
    # init_keys reports instead of silently issuing a certificate nobody holds the key for.
    _write_private(_sibling(stem, ".key"), _pkcs8(key))
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *chain))
    _write_public(_sibling(stem, ".pem"), pem)


def _ensure_log_key(directory: Path) -> None:
    key_path, pub_path = directory / _LOG_KEY, directory / _LOG_PUB
    if key_path.exists():
        if not pub_path.exists():
            # The public half is derivable, so recreating it loses nothing.
            key = _read_private_key(key_path)
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise KeyMaterialError(key_path, "not an Ed25519 private key")
            _write_public(pub_path, _spki(key.public_key()))
        return
    if pub_path.exists():
        raise KeyMaterialError(key_path, "missing while log.pub exists; restore it or remove both")
    key = ed25519.Ed25519PrivateKey.generate()
    _write_private(key_path, _pkcs8(key))
    _write_public(pub_path, _spki(key.public_key()))


def _sibling(stem: Path, suffix: str) -> Path:
    # Not Path.with_suffix: a signer named "a.b" would lose its ".b".
    return stem.parent / (stem.name + suffix)


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never follow or truncate a file someone else put there; the mode is set at creation
    # so the key is never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _write_public(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _pkcs8(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- reading and checking ----------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyMaterialError(path, "missing") from None
    except OSError as exc:
        raise KeyMaterialError(path, f"unreadable ({exc.strerror})") from None


def _read_certificates(path: Path) -> list[x509.Certificate]:
    data = _read_bytes(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise KeyMaterialError(path, "not a PEM certificate") from None
    return certs


def _read_certificate(path: Path) -> x509.Certificate:
    return _read_certificates(path)[0]


def _read_private_key(path: Path) -> object:
    data = _read_bytes(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyMaterialError(path, "not an unencrypted PEM private key") from None


def _read_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = _read_private_key(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise KeyMaterialError(path, "not an ECDSA P-256 private key")
    return key


def _read_public_key(path: Path) -> object:
    data = _read_bytes(path)
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyMaterialError(path, "not a PEM public key") from None


def _check_key_matches(
    path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> None:
    if key.public_key() != cert.public_key():
        raise KeyMaterialError(path, "private key does not match its certificate")


def _check_issued_by(path: Path, cert: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise KeyMaterialError(
            path, f"not issued by {issuer.subject.rfc4514_string()}"
        ) from None


def _check_signer_name(name: str) -> None:
    # The name becomes a file name and an X.509 attribute: keep it to a safe, portable alphabet.
    if not _SIGNER_NAME.fullmatch(name):
        raise ValueError(
            f"signer name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)
