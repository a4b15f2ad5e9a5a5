"""``examples/make_own_ca.py``: a throw-away association CA and signer in a folder the user names,
keys owner-only, never overwritten and never inside a git work tree."""

from __future__ import annotations

import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.own_pki import make_own_ca


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_writes_a_ca_and_a_signer_it_issued(tmp_path, capsys):
    folder = tmp_path / "own-key"
    assert make_own_ca.main(["--association", "bitkom", "--out", str(folder)]) == 0
    assert _mode(folder) == 0o700
    assert _mode(folder / "ca.key") == 0o600 and _mode(folder / "signer.key") == 0o600
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    signer, chained_ca = x509.load_pem_x509_certificates((folder / "signer-chain.pem").read_bytes())
    assert chained_ca == ca
    signer.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in signer.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    key = serialization.load_pem_private_key((folder / "signer.key").read_bytes(), None)
    assert key.public_key().public_numbers() == signer.public_key().public_numbers()
    printed = capsys.readouterr().out.strip()
    assert printed == make_own_ca.OwnPKI(ca, None, signer, None).ca_sha256
    assert len(printed) == 64


def test_it_never_overwrites(tmp_path, capsys):
    folder = tmp_path / "own-key"
    assert make_own_ca.main(["--association", "bitkom", "--out", str(folder)]) == 0
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert make_own_ca.main(["--association", "bitkom", "--out", str(folder)]) == 2
    assert "nothing was written" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_it_refuses_a_folder_inside_a_git_work_tree(tmp_path, capsys):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    folder = tmp_path / "repo" / "keys" / "own"
    assert make_own_ca.main(["--association", "bitkom", "--out", str(folder)]) == 2
    assert "inside the git work tree" in capsys.readouterr().err
    assert not folder.exists() and not (tmp_path / "repo" / "keys").exists()
