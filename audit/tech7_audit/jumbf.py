"""The signing certificate of a C2PA manifest, read from the manifest store itself.

c2pa reports the signer's CN, O and serial number but not the certificate, so its fingerprint is
read from the COSE signature: the manifest store is a JUMBF box tree (ISO/IEC 19566-5), each
manifest's ``c2pa.signature`` box holds a COSE_Sign1 (RFC 9052 §4.2) in CBOR (RFC 8949, decoded
by cbor2), and the certificate chain is its ``x5chain`` header (label 33, RFC 9360 §2; C2PA 2.2
§13.2 puts it in the protected header). The caller uses the result only when its serial number
matches what c2pa verified, so a hostile store can at worst hide its certificate.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import cbor2
from cryptography import x509

_JUMBF_STORE_UUID = bytes.fromhex("6332706100110010800000aa00389b71")  # "c2pa" manifest store
#: COSE header label of the certificate chain (RFC 9360 §2).
_COSE_X5CHAIN = 33
#: CBOR tag of a COSE_Sign1 message (RFC 9052 §2).
_COSE_SIGN1_TAG = 18


def signing_certificate(
    store_bytes: bytes, label: str, serial_number: object
) -> x509.Certificate | None:
    """The leaf certificate that signed manifest ``label`` of the store in ``store_bytes`` (a
    sidecar, or an asset that embeds one), if its serial number is ``serial_number``; else None."""
    try:
        for offset in _store_offsets(store_bytes):
            cose = _find_signature_cbor(store_bytes, offset, label)
            if cose is None:
                continue
            certificate = _x5chain_leaf(cose)
            if certificate is not None and str(certificate.serial_number) == str(serial_number):
                return certificate
    except (ValueError, TypeError, OverflowError, IndexError, struct.error, RecursionError,
            cbor2.CBORDecodeError):
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
    """The first certificate of a COSE_Sign1's ``x5chain``: the protected header's, else the
    unprotected one's (RFC 9052 §3: a label appears in one bucket only)."""
    value = cbor2.loads(cose_sign1)
    if isinstance(value, cbor2.CBORTag) and value.tag == _COSE_SIGN1_TAG:
        value = value.value
    # cbor2 hands a CBOR array over as a list or as a tuple, depending on its release.
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    protected_bytes, unprotected = value[0], value[1]
    headers: dict[Any, Any] = {}
    if isinstance(protected_bytes, bytes) and protected_bytes:
        protected = cbor2.loads(protected_bytes)
        if isinstance(protected, Mapping):
            headers.update(protected)
    # cbor2 may hand a map over as an immutable mapping rather than a dict.
    if isinstance(unprotected, Mapping):
        for key, item in unprotected.items():
            headers.setdefault(key, item)
    chain = headers.get(_COSE_X5CHAIN)
    leaf = chain[0] if isinstance(chain, (list, tuple)) and chain else chain
    if not isinstance(leaf, bytes):
        return None
    return x509.load_der_x509_certificate(leaf)
