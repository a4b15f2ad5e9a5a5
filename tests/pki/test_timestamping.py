"""The RFC 3161 responder: well-formed tokens, proper rejections, and its loopback HTTP listener."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from asn1crypto import cms, tsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from app.pki.authority import KeyStore, init_keys
from app.pki.timestamping import (
    DEFAULT_POLICY_OID,
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    TimestampAuthority,
    parse_response,
)

FIXED_TIME = datetime(2025, 2, 10, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> KeyStore:
    directory = tmp_path_factory.mktemp("tsa") / "keys"
    init_keys(directory, [])
    return KeyStore.load(directory)


@pytest.fixture(scope="session")
def authority(keys) -> TimestampAuthority:
    return TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key, chain=keys.tsa_chain,
                              clock=lambda: FIXED_TIME)


@pytest.fixture(scope="session")
def loopback(keys):
    with TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                            chain=keys.tsa_chain).serve_loopback() as server:
        yield server


def _request(data: bytes = b"canonical bytes", *, algorithm: str = "sha256", nonce: int | None = 42,
             cert_req: bool = True, **fields) -> tsp.TimeStampReq:
    digest = hashlib.new(algorithm, data).digest()
    request = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
        "cert_req": cert_req,
    }
    if nonce is not None:
        request["nonce"] = nonce
    request.update(fields)
    return tsp.TimeStampReq(request)


def _granted_token(authority: TimestampAuthority, request: tsp.TimeStampReq) -> cms.SignedData:
    reply = parse_response(authority.respond(request.dump()))
    assert reply.status == "granted"
    assert reply.token is not None and reply.token["content_type"].native == "signed_data"
    return reply.token["content"]


def _fail_info(response: bytes) -> set[str]:
    reply = parse_response(response)
    assert reply.status == "rejection"
    assert reply.token is None
    assert reply.text
    return set(reply.failure)


def _post(url: str, body: bytes, media_type: str = QUERY_MEDIA_TYPE,
          method: str = "POST") -> tuple[int, str | None, bytes]:
    host_port = url.removeprefix("http://").rstrip("/")
    host, port = host_port.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request(method, "/", body=body if method == "POST" else None,
                           headers={"Content-Type": media_type})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


# --- granted tokens -----------------------------------------------------------------------------


def test_tst_info_echoes_the_request_and_states_policy_time_and_serial(authority):
    request = _request(nonce=2**70 + 3)
    signed_data = _granted_token(authority, request)

    tst_info = signed_data["encap_content_info"]["content"].parsed
    assert signed_data["encap_content_info"]["content_type"].native == "tst_info"
    assert tst_info["version"].native == "v1"
    assert tst_info["policy"].dotted == DEFAULT_POLICY_OID
    assert tst_info["message_imprint"].dump() == request["message_imprint"].dump()
    assert tst_info["nonce"].native == 2**70 + 3
    assert tst_info["gen_time"].native == FIXED_TIME.replace(microsecond=0)
    assert tst_info["accuracy"]["seconds"].native == 1
    assert 0 < tst_info["serial_number"].native < 2**128


def test_serial_numbers_are_random_per_token(authority):
    serials = {
        _granted_token(authority, _request())["encap_content_info"]["content"].parsed[
            "serial_number"].native
        for _ in range(5)
    }
    assert len(serials) == 5


def test_the_nonce_is_absent_when_the_request_has_none(authority):
    token = _granted_token(authority, _request(nonce=None))
    tst_info = token["encap_content_info"]["content"].parsed
    assert tst_info["nonce"].native is None


def test_cert_req_decides_whether_the_chain_travels_with_the_token(authority, keys):
    with_certs = _granted_token(authority, _request(cert_req=True))
    without = _granted_token(authority, _request(cert_req=False))
    # CertificateSet is a SET OF (RFC 5652 §10.2.3): DER sorts it, so compare as a set.
    der = {c.chosen.dump() for c in with_certs["certificates"]}
    assert der == {keys.tsa_certificate.public_bytes(serialization.Encoding.DER),
                   keys.issuing_ca_certificate.public_bytes(serialization.Encoding.DER)}
    assert without["certificates"].native is None


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_token_signature_and_signed_attributes_verify(authority, keys, algorithm):
    signed_data = _granted_token(authority, _request(algorithm=algorithm))
    (signer_info,) = signed_data["signer_infos"]
    attributes = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}

    # RFC 5652 §5.3/§11: content-type and message-digest over the encapsulated TSTInfo.
    assert attributes["content_type"].native == "tst_info"
    econtent = signed_data["encap_content_info"]["content"].contents
    assert attributes["message_digest"].native == hashlib.sha256(econtent).digest()
    # RFC 5816 §2.2.1: signing-certificate-v2 names the TSA certificate by its SHA-256 hash.
    (cert_id,) = attributes["signing_certificate_v2"]["certs"]
    tsa_der = keys.tsa_certificate.public_bytes(serialization.Encoding.DER)
    assert cert_id["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert cert_id["issuer_serial"]["serial_number"].native == keys.tsa_certificate.serial_number
    # RFC 5652 §5.4: the signature covers the attributes DER-encoded as a SET OF.
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    keys.tsa_certificate.public_key().verify(
        signer_info["signature"].native,
        signer_info["signed_attrs"].untag().dump(),
        ec.ECDSA(hashes.SHA256()),
    )
    assert signer_info["sid"].chosen["serial_number"].native == keys.tsa_certificate.serial_number


def test_the_constructor_refuses_a_key_that_is_not_the_certificates(keys):
    with pytest.raises(ValueError, match="does not match"):
        TimestampAuthority(keys.tsa_certificate, ec.generate_private_key(ec.SECP256R1()))


# --- rejections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (b"", "bad_data_format"),
        (b"garbage", "bad_data_format"),
        (b"\x30\x03\x02\x01", "bad_data_format"),  # truncated SEQUENCE
        (_request().dump() + b"\x00", "bad_data_format"),  # trailing bytes
        (_request(algorithm="sha1").dump(), "bad_alg"),
        (_request(algorithm="md5").dump(), "bad_alg"),
        (_request(version="v2").dump(), "bad_request"),
        (_request(req_policy="1.2.3.4").dump(), "unaccepted_policy"),
        (_request(extensions=[{"extn_id": "1.2.3", "extn_value": b"x"}]).dump(),
         "unaccepted_extensions"),
        (tsp.TimeStampReq({
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                "hashed_message": b"short"},
        }).dump(), "bad_data_format"),
    ],
    ids=["empty", "garbage", "truncated", "trailing", "sha1", "md5", "version", "policy",
         "extensions", "digest-length"],
)
def test_bad_requests_are_answered_with_a_rejection(authority, request_der, fail_info):
    assert _fail_info(authority.respond(request_der)) == {fail_info}


def test_the_tsa_policy_itself_is_accepted(authority):
    _granted_token(authority, _request(req_policy=DEFAULT_POLICY_OID))


def test_a_broken_clock_is_a_system_failure_not_an_exception(keys):
    naive = TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key,
                               clock=lambda: datetime(2025, 1, 1))
    assert _fail_info(naive.respond(_request().dump())) == {"system_failure"}


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(authority, data):
    assert parse_response(authority.respond(data)).status in ("granted", "rejection")


# --- HTTP ---------------------------------------------------------------------------------------


def test_loopback_listener_answers_a_timestamp_query(loopback):
    assert loopback.url.startswith("http://127.0.0.1:")
    status, media_type, body = _post(loopback.url, _request().dump())
    assert (status, media_type) == (200, REPLY_MEDIA_TYPE)
    assert parse_response(body).status == "granted"


def test_loopback_listener_refuses_other_media_types_and_methods(loopback):
    assert _post(loopback.url, b"{}", media_type="application/json")[0] == 415
    assert _post(loopback.url, b"", method="GET")[0] == 405


def test_loopback_garbage_gets_a_rejection_reply(loopback):
    status, _, body = _post(loopback.url, b"\x00\x01garbage")
    assert status == 200
    assert _fail_info(body) == {"bad_data_format"}


def test_close_releases_the_port_and_is_idempotent(keys):
    server = TimestampAuthority(keys.tsa_certificate, keys.tsa_private_key).serve_loopback()
    url = server.url
    server.close()
    server.close()
    with pytest.raises(ConnectionRefusedError):
        _post(url, _request().dump())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_a_token_from_the_loopback_tsa(loopback, keys, tmp_path):
    data = tmp_path / "document.json"
    data.write_bytes(b'{"title": "TECH7 declaration"}')
    root = tmp_path / "root.pem"
    root.write_bytes(keys.trust_anchors_pem)
    query = tmp_path / "query.tsq"
    subprocess.run(["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert",
                    "-out", str(query)], check=True, capture_output=True)

    status, _, body = _post(loopback.url, query.read_bytes())
    assert status == 200
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(body)

    # Only the root is given: the issuing CA must come from the token itself (certReq).
    verified = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(data), "-in", str(reply), "-CAfile", str(root)],
        capture_output=True, text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Verification: OK" in verified.stdout

    data.write_bytes(b'{"title": "TECH7 declaration!"}')
    tampered = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(data), "-in", str(reply), "-CAfile", str(root)],
        capture_output=True, text=True,
    )
    assert tampered.returncode != 0
