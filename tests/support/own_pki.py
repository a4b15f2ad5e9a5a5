"""An association's own PKI, made at run time by ``examples/make_own_ca.py`` (the script the
README tells associations to try the flow with), plus a certificate no CA may be.

Nothing here is written to the repository.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "make_own_ca.py"
_spec = importlib.util.spec_from_file_location("make_own_ca", _SCRIPT)
assert _spec is not None and _spec.loader is not None, _SCRIPT
make_own_ca = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_own_ca)

OwnPKI = make_own_ca.OwnPKI
make_own_pki = make_own_ca.make_own_pki


def leaf_only(organization: str) -> bytes:
    """PEM of a self-signed end-entity certificate: not a CA, so not acceptable as one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = make_own_ca.name(organization, f"{organization} leaf")
    return (make_own_ca.builder(name, name, key.public_key(), datetime.now(UTC), timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
