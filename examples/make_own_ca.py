"""Make a throw-away association CA and a C2PA signer it issued, to try publishing with your own key.

Needs ``pip install cryptography``. For trying the flow only: a real association keeps its CA's
key offline, or in an HSM. Run::

    python examples/make_own_ca.py --association bitkom --out ~/bitkom-own-key

It makes the folder (0700) and writes, refusing to overwrite anything:

- ``ca.pem``: the CA certificate, which you register (``POST /v1/associations/<you>/ca``);
- ``ca.key``: the CA's private key (0600);
- ``signer-chain.pem``: the signing certificate, then the CA: ``sign_statement.py``'s
  ``--certificate-chain``;
- ``signer.key``: the signing key, PKCS#8 (0600): ``sign_statement.py``'s ``--private-key``.

It prints the CA certificate's SHA-256 (of its DER), the name an operator approves it by. The
folder must lie outside any git work tree, so that no private key gets committed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Certificates start this long before now, for verifiers whose clocks run a little behind.
_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class OwnPKI:
    """An association's CA and one signing certificate with its key."""

    ca_certificate: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    signer_certificate: x509.Certificate
    signer_key: ec.EllipticCurvePrivateKey

    @property
    def ca_pem(self) -> bytes:
        return self.ca_certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def ca_sha256(self) -> str:
        """The SHA-256 of the CA certificate's DER, in hex: how the registry names it."""
        return hashlib.sha256(
            self.ca_certificate.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def chain_pem(self) -> bytes:
        """The signer's certificate followed by its CA: what a c2pa signer sends as x5chain."""
        return self.signer_certificate.public_bytes(serialization.Encoding.PEM) + self.ca_pem

    @property
    def key_pem(self) -> bytes:
        """The signing key as unencrypted PKCS#8 PEM."""
        return _pkcs8(self.signer_key)

    @property
    def ca_key_pem(self) -> bytes:
        """The CA's key as unencrypted PKCS#8 PEM."""
        return _pkcs8(self.ca_key)


def make_own_pki(organization: str, *, now: datetime | None = None,
                 ca_validity: timedelta = timedelta(days=365)) -> OwnPKI:
    """A fresh ECDSA P-256 CA for ``organization`` and a signing certificate it issued."""
    now = now or datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(organization, f"{organization} Root CA")
    ca = (builder(ca_name, ca_name, ca_key.public_key(), now, ca_validity)
          # pathlen 0: it issues end-entity certificates only (RFC 5280 §4.2.1.9).
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(cert_sign=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    return OwnPKI(ca, ca_key, *issue_signer(ca, ca_key, organization, now=now))


def issue_signer(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, organization: str, *,
                 now: datetime | None = None, validity: timedelta = timedelta(days=90)
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A C2PA claim signing certificate issued by ``ca``.

    It has what C2PA 2.2 §14.5.1 (and c2pa-rs) require of a claim signer: not a CA, a critical
    KeyUsage with digitalSignature, Subject and Authority Key Identifiers, and the
    emailProtection EKU, the one c2pa's default configuration accepts on its own.
    """
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        builder(name(organization, f"{organization} statements signer"), ca.subject,
                key.public_key(), now, min(validity, ca.not_valid_after_utc - now))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    return certificate, key


def builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
            now: datetime, validity: timedelta) -> x509.CertificateBuilder:
    """A certificate valid from a little before ``now`` for ``validity``, with its key's SKI."""
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(now + validity)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def name(organization: str, common_name: str) -> x509.Name:
    """A subject or issuer name: organization and common name."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _inside_git_work_tree(folder: Path) -> Path | None:
    """The work tree holding ``folder``, if any."""
    for parent in (folder, *folder.parents):
        if (parent / ".git").exists():
            return parent
    return None


def write_pki(pki: OwnPKI, folder: Path) -> None:
    """Write the four files into ``folder`` (made 0700), private keys 0600; never overwrite."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for filename, data, mode in (("ca.key", pki.ca_key_pem, 0o600),
                                 ("signer.key", pki.key_pem, 0o600),
                                 ("ca.pem", pki.ca_pem, 0o644),
                                 ("signer-chain.pem", pki.chain_pem, 0o644)):
        # O_EXCL: an existing file is an error, never replaced; the mode applies from the
        # start, so a key is never readable by others, not even for a moment.
        descriptor = os.open(folder / filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)


def main(argv: list[str] | None = None) -> int:
    """Make the CA and signer, write them, and print the CA's SHA-256."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--association", required=True, help="e.g. bitkom")
    parser.add_argument("--out", required=True, type=Path,
                        help="a new folder outside any git work tree")
    args = parser.parse_args(argv)
    folder = args.out.expanduser().resolve()
    work_tree = _inside_git_work_tree(folder)
    if work_tree is not None:
        print(f"{folder} is inside the git work tree {work_tree}: choose a folder outside it, "
              "so that no private key is ever committed", file=sys.stderr)
        return 2
    existing = [f for f in ("ca.key", "signer.key", "ca.pem", "signer-chain.pem")
                if (folder / f).exists()]
    if existing:
        print(f"{folder} already holds {', '.join(existing)}: nothing was written",
              file=sys.stderr)
        return 2
    pki = make_own_pki(args.association)
    write_pki(pki, folder)
    print(f"wrote ca.pem, ca.key, signer-chain.pem and signer.key to {folder}", file=sys.stderr)
    print(pki.ca_sha256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
