"""Fixtures of the audit tests: what an auditor downloads, and signers that forge or mislead.

Every key here is made at run time: the registry's own (the session's ``keys_dir``) and a second,
unrelated PKI (the suite's ``foreign_keys``) standing for "another CA".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.pki.authority import KeyStore
from app.pki.timestamping import LoopbackTSA, TimestampAuthority
from app.provenance.signing import ManifestSigner
from tests.support.audit import VERSION, Materials, fetch_materials

# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def materials(client) -> Callable[[str], Materials]:
    """``materials(href)``: what an auditor downloads for that version."""
    return lambda href=VERSION: fetch_materials(client, href)


# --- signers -------------------------------------------------------------------------------------


def _tsa(keys: KeyStore) -> LoopbackTSA:
    return TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                              chain=keys.tsa_chain).serve_loopback()


@pytest.fixture(scope="session")
def registry_keys(keys_dir) -> KeyStore:
    """The registry's own key material (the session PKI the app signs with)."""
    return KeyStore.load(keys_dir)


@pytest.fixture(scope="session")
def registry_signer(registry_keys) -> Iterator[ManifestSigner]:
    """Signs with the registry's real keys and timestamps: manifests that read Trusted but were
    never published or logged."""
    with _tsa(registry_keys) as tsa:
        yield ManifestSigner(registry_keys, tsa_url=tsa.url)


@pytest.fixture(scope="session")
def untimestamped_signer(registry_keys) -> ManifestSigner:
    """The registry's keys without a timestamp authority: Trusted, but not how it signs."""
    return ManifestSigner(registry_keys, tsa_url=None)


@pytest.fixture(scope="session")
def foreign_signer(foreign_keys) -> Iterator[ManifestSigner]:
    """Signs with the other PKI and its own timestamp authority."""
    with _tsa(foreign_keys) as tsa:
        yield ManifestSigner(foreign_keys, tsa_url=tsa.url)
