"""The registry's CA: what init_keys writes, how KeyStore.load checks it, and signer rotation."""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.pki.authority import KeyMaterialError, KeyStore, init_keys, rotate_signer

SIGNERS = ("registry", "bitkom")
PRIVATE_FILES = ("root-ca.key", "issuing-ca.key", "tsa.key", "log.key",
                 "signers/registry.key", "signers/bitkom.key")

# The PKCS #8 PEM header, split so that no tracked file looks like it holds a private key.
PKCS8_HEADER = b"-----BEGIN " b"PRIVATE KEY-----"


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """A key directory made once; tests that change files work on a copy."""
    directory = tmp_path_factory.mktemp("authority") / "keys"
    init_keys(directory, SIGNERS)
    return directory


@pytest.fixture
def keydir(pristine, tmp_path) -> Path:
    """A private, writable copy of the pristine key directory."""
    copy = tmp_path / "keys"
    shutil.copytree(pristine, copy)  # copy2 keeps the modes
    return copy


@pytest.fixture(scope="session")
def store(pristine) -> KeyStore:
    return KeyStore.load(pristine)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def _ski(cert: x509.Certificate) -> bytes:
    return _extension(cert, x509.SubjectKeyIdentifier).value.digest


def _aki(cert: x509.Certificate) -> bytes | None:
    return _extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRIVATE_FILES)
def test_private_keys_are_created_owner_only(pristine, name):
    assert _mode(pristine / name) == 0o600


@pytest.mark.parametrize("name", [".", "signers"])
def test_directories_are_created_owner_only(pristine, name):
    assert _mode(pristine / name) == 0o700


def test_every_expected_file_exists(pristine):
    for name in ("root-ca.pem", "issuing-ca.pem", "tsa.pem", "log.pub",
                 "signers/registry.pem", "signers/bitkom.pem", *PRIVATE_FILES):
        assert (pristine / name).is_file(), name


def test_init_is_idempotent_and_only_adds_what_is_missing(keydir):
    before = {p.relative_to(keydir): p.read_bytes() for p in keydir.rglob("*") if p.is_file()}

    init_keys(keydir, [*SIGNERS, "techuk"])

    after = {p.relative_to(keydir): p.read_bytes() for p in keydir.rglob("*") if p.is_file()}
    added = set(after) - set(before)
    assert added == {Path("signers/techuk.pem"), Path("signers/techuk.key")}
    assert all(after[name] == content for name, content in before.items())
    assert KeyStore.load(keydir).signer_names() == ["bitkom", "registry", "techuk"]


def test_init_refuses_half_a_pair(keydir):
    (keydir / "tsa.pem").unlink()
    with pytest.raises(KeyMaterialError) as caught:
        init_keys(keydir, SIGNERS)
    assert caught.value.path == keydir / "tsa.pem"


def test_a_dotted_signer_name_keeps_its_dot(tmp_path):
    init_keys(tmp_path / "keys", ["iti.us"])
    assert (tmp_path / "keys" / "signers" / "iti.us.key").is_file()
    rotate_signer(tmp_path / "keys", "iti.us")
    assert KeyStore.load(tmp_path / "keys").signer_names() == ["iti.us"]


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "-leading-dash", "x" * 65, "sp ace"])
def test_signer_names_must_be_file_and_x509_safe(tmp_path, name):
    with pytest.raises(ValueError):
        init_keys(tmp_path / "keys", [name])


# --- certificate profiles -----------------------------------------------------------------------


def test_root_is_a_self_signed_p256_ca(store):
    root = store.root_ca_certificate
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"
    constraints = _extension(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert root.not_valid_after_utc - root.not_valid_before_utc > timedelta(days=19 * 365)


def test_issuing_ca_is_an_intermediate_with_pathlen_zero(store):
    issuing = store.issuing_ca_certificate
    issuing.verify_directly_issued_by(store.root_ca_certificate)
    constraints = _extension(issuing, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert _aki(issuing) == _ski(store.root_ca_certificate)
    usage = _extension(issuing, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and not usage.value.digital_signature


@pytest.mark.parametrize("name", SIGNERS)
def test_signer_certificates_fit_the_c2pa_profile(store, name):
    cert = store.signer_certificate(name)
    cert.verify_directly_issued_by(store.issuing_ca_certificate)
    assert not _extension(cert, x509.BasicConstraints).value.ca
    usage = _extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert _ski(cert) == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    assert _aki(cert) == _ski(store.issuing_ca_certificate)
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.EMAIL_PROTECTION
    ]
    subject = {a.oid: a.value for a in cert.subject}
    assert subject == {
        NameOID.ORGANIZATION_NAME: name,
        NameOID.ORGANIZATIONAL_UNIT_NAME: "TECH7 registry",
        NameOID.COMMON_NAME: f"{name} C2PA signer",
    }
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=700) < lifetime < timedelta(days=740)


def test_signer_chain_pem_is_leaf_then_issuing_ca(store):
    chain = x509.load_pem_x509_certificates(store.signer_chain_pem("bitkom"))
    assert chain == [store.signer_certificate("bitkom"), store.issuing_ca_certificate]
    key = serialization.load_pem_private_key(store.signer_key_pem("bitkom"), password=None)
    assert key.public_key() == chain[0].public_key()


def test_tsa_certificate_has_the_critical_sole_timestamping_eku(store):
    tsa = store.tsa_certificate
    tsa.verify_directly_issued_by(store.issuing_ca_certificate)
    eku = _extension(tsa, x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert not _extension(tsa, x509.BasicConstraints).value.ca
    assert _aki(tsa) == _ski(store.issuing_ca_certificate)
    assert store.tsa_private_key.public_key() == tsa.public_key()
    assert store.tsa_chain == (store.issuing_ca_certificate,)


def test_log_key_is_ed25519_with_its_public_half(store, pristine):
    assert isinstance(store.log_private_key, ed25519.Ed25519PrivateKey)
    message = b"checkpoint"
    store.log_public_key.verify(store.log_private_key.sign(message), message)
    assert (pristine / "log.key").read_bytes().startswith(PKCS8_HEADER)


def test_trust_anchors_are_the_root_alone(store):
    assert x509.load_pem_x509_certificates(store.trust_anchors_pem) == [store.root_ca_certificate]


def test_signer_validity_and_issuing_time_are_configurable(tmp_path):
    now = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
    init_keys(tmp_path / "keys", ["numeum"], now=now, signer_validity=timedelta(days=30))
    cert = KeyStore.load(tmp_path / "keys").signer_certificate("numeum")
    assert cert.not_valid_after_utc == now + timedelta(days=30)
    assert cert.not_valid_before_utc <= now


# --- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("root-ca.pem", None, "missing"),
        ("signers/bitkom.key", None, "missing"),
        ("tsa.key", b"not a key", "not an unencrypted PEM private key"),
        ("issuing-ca.pem", b"", "not a PEM certificate"),
        ("signers/registry.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         "not a PEM certificate"),
        ("log.key", PKCS8_HEADER + b"\n", "not an unencrypted PEM private key"),
    ],
)
def test_load_names_a_missing_or_malformed_file(keydir, name, content, problem):
    path = keydir / name
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    with pytest.raises(KeyMaterialError) as caught:
        KeyStore.load(keydir)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_load_names_an_unreadable_file(keydir):
    (keydir / "tsa.key").unlink()
    (keydir / "tsa.key").mkdir()  # unreadable even for root, unlike a chmod
    with pytest.raises(KeyMaterialError, match="unreadable") as caught:
        KeyStore.load(keydir)
    assert caught.value.path == keydir / "tsa.key"


def test_repr_does_not_leak_private_keys(store):
    assert "PRIVATE KEY" not in repr(store)
    assert "private_key" not in repr(store)


def test_load_names_a_key_that_does_not_match_its_certificate(keydir):
    registry, bitkom = keydir / "signers/registry.key", keydir / "signers/bitkom.key"
    registry_key = registry.read_bytes()
    registry.write_bytes(bitkom.read_bytes())
    bitkom.write_bytes(registry_key)
    with pytest.raises(KeyMaterialError, match="does not match its certificate") as caught:
        KeyStore.load(keydir)
    assert caught.value.path == bitkom  # signers load in name order


def test_load_names_a_signer_certificate_from_another_ca(keydir):
    other = keydir.parent / "other"
    init_keys(other, ["registry"])
    shutil.copy(other / "signers/registry.pem", keydir / "signers/registry.pem")
    with pytest.raises(KeyMaterialError, match="not issued by") as caught:
        KeyStore.load(keydir)
    assert caught.value.path == keydir / "signers/registry.pem"


def test_load_rejects_a_log_pub_that_is_not_a_public_key(keydir):
    (keydir / "log.pub").write_bytes((keydir / "tsa.pem").read_bytes())
    with pytest.raises(KeyMaterialError, match="not a PEM public key"):
        KeyStore.load(keydir)


def test_load_rejects_a_log_pub_of_another_key(keydir):
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    (keydir / "log.pub").write_bytes(other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(KeyMaterialError, match=r"does not match log\.key"):
        KeyStore.load(keydir)


def test_unknown_signer_is_a_key_error(store):
    with pytest.raises(KeyError):
        store.signer_chain_pem("nobody")


# --- rotation -----------------------------------------------------------------------------------


def test_rotate_signer_retires_the_old_pair(keydir):
    old = KeyStore.load(keydir).signer_certificate("bitkom")

    new = rotate_signer(keydir, "bitkom")

    assert new.serial_number != old.serial_number
    assert new.public_key() != old.public_key()
    retired = keydir / "signers" / "retired" / f"bitkom-{old.serial_number:x}"
    assert x509.load_pem_x509_certificates(retired.with_suffix(".pem").read_bytes())[0] == old
    assert _mode(retired.with_suffix(".key")) == 0o600
    assert _mode(keydir / "signers" / "retired") == 0o700
    assert _mode(keydir / "signers" / "bitkom.key") == 0o600
    reloaded = KeyStore.load(keydir)
    assert reloaded.signer_certificate("bitkom") == new
    assert reloaded.signer_names() == ["bitkom", "registry"]  # the retired pair is not a signer


def test_rotate_an_unknown_signer_fails_cleanly(keydir):
    with pytest.raises(KeyMaterialError, match="missing"):
        rotate_signer(keydir, "nobody")
    assert not (keydir / "signers" / "retired").exists()
