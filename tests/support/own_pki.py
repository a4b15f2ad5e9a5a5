"""An association's own PKI, made at run time: a CA and a C2PA signing certificate it issues.

The signing certificate has what c2pa-rs 0.91 requires of a claim signer (C2PA 2.2 §14.5): not a
CA, a critical KeyUsage with digitalSignature, Subject and Authority Key Identifiers and the
emailProtection EKU. Nothing here is written to the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class OwnPKI:
    """An association's CA and one signing certificate with its key, as PEM."""

    ca_certificate: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    signer_certificate: x509.Certificate
    signer_key: ec.EllipticCurvePrivateKey

    @property
    def ca_pem(self) -> bytes:
        return self.ca_certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        """The signer's certificate followed by its CA: what a c2pa signer sends as x5chain."""
        return self.signer_certificate.public_bytes(serialization.Encoding.PEM) + self.ca_pem

    @property
    def key_pem(self) -> bytes:
        return self.signer_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())


def make_own_pki(organization: str, *, now: datetime | None = None,
                 ca_validity: timedelta = timedelta(days=365)) -> OwnPKI:
    """A fresh CA for ``organization`` and a signing certificate it issued."""
    now = now or datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(organization, f"{organization} Root CA")
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), now, ca_validity)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(cert_sign=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    return OwnPKI(ca, ca_key, *issue_signer(ca, ca_key, organization, now=now))


def issue_signer(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, organization: str, *,
                 now: datetime | None = None, validity: timedelta = timedelta(days=90)
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A C2PA claim signing certificate issued by ``ca``."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        _builder(_name(organization, f"{organization} statements signer"), ca.subject,
                 key.public_key(), now, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    return certificate, key


def leaf_only(organization: str) -> bytes:
    """PEM of a self-signed end-entity certificate: not a CA, so not acceptable as one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(organization, f"{organization} leaf")
    return (_builder(name, name, key.public_key(), datetime.now(UTC),
                     timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             now: datetime, validity: timedelta) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(now + validity)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)
