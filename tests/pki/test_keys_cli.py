"""``tech7-registry keys``: key material on disk, refusal to start on broken keys, and rotation."""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tech7_audit.manifests import read_manifest

from app import cli
from app.composition import create_app
from app.core import config
from app.pki.authority import KeyMaterialError, KeyStore
from app.pki.keyring import signer_names_from_seed

JSON = "application/json"


def _cli_app(tmp_path: Path, keys: Path, **overrides):
    """An app as the command line builds it: no start-up checks, so commands run before keys."""
    app = create_app({"TESTING": True, "STARTUP_CHECKS": False, "KEYS_DIR": str(keys),
                      "DATA_DIR": str(tmp_path / "data"), **overrides})
    cli.register(app)
    return app


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _fingerprint(certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_keys_init_creates_owner_only_private_keys_and_is_idempotent(tmp_path):
    keys = tmp_path / "keys"
    runner = _cli_app(tmp_path, keys).test_cli_runner()

    result = runner.invoke(args=["keys", "init"])

    assert result.exit_code == 0, result.output
    signers = signer_names_from_seed(config.SEED_FILE)
    expected = {"root-ca.key", "issuing-ca.key", "tsa.key", "log.key",
                *(f"signers/{name}.key" for name in signers)}
    private = {str(p.relative_to(keys)) for p in keys.rglob("*.key")}
    assert private == expected
    for name in private:
        assert _mode(keys / name) == 0o600, name
    for folder in (keys, keys / "signers"):
        assert _mode(folder) == 0o700, folder
    store = KeyStore.load(keys)
    assert store.signer_names() == sorted(signers)

    first = _snapshot(keys)
    again = runner.invoke(args=["keys", "init"])
    assert again.exit_code == 0, again.output
    assert _snapshot(keys) == first


@pytest.fixture
def keys_copy(keys_dir, tmp_path) -> Path:
    """A private copy of the session's key folder, free to break."""
    copy = tmp_path / "keys"
    shutil.copytree(keys_dir, copy)
    return copy


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name, damage", [
    ("signers/bitkom.key", _truncate),
    ("signers/bitkom.key", Path.unlink),
    ("tsa.key", Path.unlink),
    ("log.key", _truncate),
    ("root-ca.pem", Path.unlink),
], ids=["truncated signer key", "missing signer key", "missing TSA key", "truncated log key",
        "missing root certificate"])
def test_broken_key_material_stops_the_service_and_seed_naming_the_file(make_app,
        databases, keys_copy, tmp_path, name, damage):
    broken = keys_copy / name
    damage(broken)

    with pytest.raises(KeyMaterialError) as refused:
        make_app(databases.clone_template(), tmp_path, KEYS_DIR=str(keys_copy))
    assert refused.value.path == broken
    assert str(broken) in str(refused.value)

    result = _cli_app(tmp_path, keys_copy).test_cli_runner().invoke(args=["seed"])
    assert result.exit_code != 0
    assert str(broken) in result.output


def test_rotation_issues_a_new_certificate_and_keeps_old_manifests_trusted(make_app,
        databases, keys_copy, tmp_path):
    app = make_app(databases.clone_template(), tmp_path, KEYS_DIR=str(keys_copy),
                   STARTUP_CHECKS=False)
    provenance = app.extensions["tech7.provenance"]
    old_certificate = provenance.keyring.store.signer_certificate("bitkom")
    before = b'{"statement":"signed before the rotation"}'
    old = provenance.sign_version(body=before, identity={"kind": "statement"},
                                  signer_name="bitkom", title="before", parent=None)
    assert old.signer_certificate_sha256 == _fingerprint(old_certificate)

    result = app.test_cli_runner().invoke(args=["keys", "rotate", "bitkom"])

    assert result.exit_code == 0, result.output
    store = KeyStore.load(keys_copy)
    new_certificate = store.signer_certificate("bitkom")
    assert new_certificate.serial_number != old_certificate.serial_number
    assert f"{new_certificate.serial_number:x}" in result.output
    retired = keys_copy / "signers" / "retired" / f"bitkom-{old_certificate.serial_number:x}"
    assert (retired.parent / (retired.name + ".pem")).is_file()
    assert _mode(retired.parent / (retired.name + ".key")) == 0o600
    assert _mode(retired.parent) == 0o700
    assert _mode(keys_copy / "signers" / "bitkom.key") == 0o600

    still = read_manifest(before, JSON, old.manifest, trust_anchors_pem=store.trust_anchors_pem)
    assert still.trusted and still.timestamp_trusted
    assert still.signer_certificate_sha256 == _fingerprint(old_certificate)

    # The same running app signs with the new certificate from now on.
    after = b'{"statement":"signed after the rotation"}'
    new = provenance.sign_version(body=after, identity={"kind": "statement"},
                                  signer_name="bitkom", title="after", parent=None)
    report = read_manifest(after, JSON, new.manifest, trust_anchors_pem=store.trust_anchors_pem)
    assert report.trusted
    assert new.signer_certificate_sha256 == report.signer_certificate_sha256 \
        == _fingerprint(new_certificate)
    app.extensions["tech7.db"].engine.dispose()
