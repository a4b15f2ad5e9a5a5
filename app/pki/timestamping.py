"""A small RFC 3161 Time-Stamp Authority: answers a ``TimeStampReq`` with a ``TimeStampResp``.

Every C2PA manifest the registry signs carries a timestamp token from here (or from an external
TSA), so that it stays Trusted after its signing certificate expires: c2pa validates the certificate
against the token's ``genTime`` instead of the current time.

The ASN.1 comes from asn1crypto's ``tsp``/``cms`` modules and the signature from ``cryptography``.
References:

* RFC 3161 — the protocol: ``TimeStampReq`` (§2.4.1), ``TimeStampResp`` / ``PKIStatusInfo``
  (§2.4.2), ``TSTInfo`` (§2.4.2), the token as CMS ``SignedData`` (§2.4.2), the HTTP transport and
  its media types (§3.4).
* RFC 5652 — CMS ``SignedData`` (§5.1), ``SignerInfo`` (§5.3) and the rule that the signature covers
  the DER of the signed attributes re-tagged as ``SET OF`` (§5.4).
* RFC 5816 — ``ESSCertIDv2`` in the ``signing-certificate-v2`` attribute (§2.2.1, from RFC 5035 §3).
* RFC 5753 §2.1.1 / RFC 5758 §3.2 — ECDSA in CMS: ``ecdsa-with-SHA256``, signature is the DER
  ``Ecdsa-Sig-Value``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"

# The registry has no private enterprise number, so its TSA policy OID sits under 2.25, the arc
# ITU-T X.667 gives every UUID: globally unique without registration. The UUID is the name-based
# uuid5(NAMESPACE_URL, "https://tech7-registry.example/tsa-policy/1") (RFC 4122 §4.3) as an
# integer.
DEFAULT_POLICY_OID = "2.25.4603241262976551010021410858799424393"

# Largest request we read over HTTP: a TimeStampReq with a SHA-512 imprint, a nonce and a policy is
# under 200 bytes; anything much larger is not a timestamp query.
_MAX_REQUEST_BYTES = 16 * 1024

# Digest algorithms we accept in a message imprint, with their digest sizes. SHA-1 and MD5 are
# refused (badAlg): a timestamp over a collision-prone hash proves little.
_ACCEPTED_DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}

_Clock = Callable[[], datetime]


class TimestampAuthority:
    """Issues RFC 3161 timestamp tokens signed with an ECDSA P-256 key.

    ``certificate`` must carry the critical, sole ``timeStamping`` EKU (RFC 3161 §2.3);
    ``chain`` lists the certificates that follow it up to (not including) the trust anchor and is
    included in the token when the request asks for certificates. ``clock`` returns the time to
    stamp (an aware datetime); tests inject a fixed one.

    Thread-safe: :meth:`respond` keeps no state between calls.
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        chain: Sequence[x509.Certificate] = (),
        policy_oid: str = DEFAULT_POLICY_OID,
        clock: _Clock | None = None,
    ):
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise TypeError("the TSA key must be an ECDSA P-256 private key")
        if private_key.public_key() != certificate.public_key():
            raise ValueError("the TSA private key does not match its certificate")
        self._private_key = private_key
        self._cert = asn1_x509.Certificate.load(
            certificate.public_bytes(serialization.Encoding.DER)
        )
        self._chain = [
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain
        ]
        self._policy = policy_oid
        self._clock = clock or (lambda: datetime.now(UTC))
        # Encoded once: asn1crypto re-serialises parsed certificates placed in a new structure,
        # which would cost ~25 ms per token; loading these DER blobs back is lazy and cheap.
        self._signing_certificate_v2_der = _signing_certificate_v2(self._cert).dump()
        self._certificate_set_der = cms.CertificateSet(
            [
                cms.CertificateChoices(name="certificate", value=c)
                for c in (self._cert, *self._chain)
            ]
        ).dump()
        self._sid_der = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": self._cert.issuer, "serial_number": self._cert.serial_number},
        ).dump()
        self._tsa_name_der = asn1_x509.GeneralName(
            name="directory_name", value=self._cert.subject
        ).dump()

    @property
    def policy_oid(self) -> str:
        """The TSA policy under which every token is issued (``TSTInfo.policy``)."""
        return self._policy

    def respond(self, request_der: bytes) -> bytes:
        """Answer one DER ``TimeStampReq`` with a DER ``TimeStampResp`` (RFC 3161 §2.4).

        Never raises on bad input: a malformed request is answered with status ``rejection`` and a
        ``failInfo`` bit (badDataFormat, badAlg, badRequest, unacceptedPolicy,
        unacceptedExtension); an internal failure with ``systemFailure``.
        """
        try:
            request = _parse_request(request_der, self._policy)
        except _Rejection as rejection:
            return _rejection_response(rejection.fail_info, rejection.text)
        try:
            token = self._token(request)
        except Exception:  # noqa: BLE001 - the HTTP contract is a response, never a crash
            return _rejection_response("system_failure", "the TSA could not sign the token")
        response = _TimeStampResp(
            {"status": {"status": "granted"}, "time_stamp_token": token}
        )
        return response.dump()

    def serve_loopback(self) -> LoopbackTSA:
        """Start a private HTTP listener for this authority on 127.0.0.1 and an ephemeral port.

        Why a loopback listener per process: c2pa fetches the timestamp over HTTP while it signs.
        A sync gunicorn worker that is itself busy publishing cannot answer its own public
        ``/tsa`` endpoint, and another worker may be just as busy, so pointing c2pa at the public
        endpoint can deadlock under load. Each worker therefore starts its own listener, bound to
        loopback only, and signs against ``LoopbackTSA.url``; the public Flask endpoint (which calls
        :meth:`respond`) serves external clients. Create it after the fork, like the c2pa objects.
        """
        return LoopbackTSA(self)

    def _token(self, request: tsp.TimeStampReq) -> cms.ContentInfo:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the TSA clock must return an aware datetime")
        # RFC 3161 §2.4.2: genTime in UTC; we stamp whole seconds and say so with accuracy.
        gen_time = now.astimezone(UTC).replace(microsecond=0)
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self._policy,
                # Copied unchanged from the request (§2.4.2: "MUST have the same value").
                "message_imprint": tsp.MessageImprint.load(request["message_imprint"].dump()),
                # §2.4.2: unique per token, up to 160 bits; 128 random bits need no shared counter
                # between worker processes.
                "serial_number": secrets.randbits(128),
                "gen_time": gen_time,
                "accuracy": {"seconds": 1},
                "nonce": request["nonce"].native,
                "tsa": asn1_x509.GeneralName.load(self._tsa_name_der),
            }
        )
        tst_info_der = tst_info.dump()

        # RFC 5652 §5.3 signed attributes; content-type and message-digest are mandatory when
        # attributes are present; signing-certificate-v2 binds the TSA cert (RFC 5816 §2.2.1).
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(tst_info_der).digest()]}
                ),
                cms.CMSAttribute(
                    {
                        "type": "signing_certificate_v2",
                        "values": [tsp.SigningCertificateV2.load(self._signing_certificate_v2_der)],
                    }
                ),
            ]
        )
        # RFC 5652 §5.4: the signature input is the DER of the attributes with an explicit SET OF
        # tag, not the [0] IMPLICIT tag they carry inside SignerInfo. asn1crypto's SetOf sorts its
        # members as DER requires, so both encodings share the same contents octets.
        signature = self._private_key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))

        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier.load(self._sid_der),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                # cryptography already returns the DER Ecdsa-Sig-Value CMS wants (RFC 5753 §2.1.1).
                "signature": signature,
            }
        )
        signed_data = {
            "version": "v3",  # RFC 5652 §5.1: v3 because eContentType is not id-data
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "signer_infos": [signer_info],
        }
        if request["cert_req"].native:
            # §2.4.1: with certReq the TSA's certificate MUST be in the token; the chain MAY be.
            signed_data["certificates"] = cms.CertificateSet.load(self._certificate_set_der)
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


class LoopbackTSA:
    """A threaded HTTP server on 127.0.0.1 handing POSTed queries to a :class:`TimestampAuthority`.

    Use as a context manager or call :meth:`close`. Answers ``POST`` with body type
    ``application/timestamp-query`` by ``application/timestamp-reply`` (RFC 3161 §3.4).
    """

    def __init__(self, authority: TimestampAuthority):
        handler = type("_BoundHandler", (_TSARequestHandler,), {"authority": authority})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # A short poll keeps close() quick; an idle wake-up every 50 ms costs next to nothing.
            kwargs={"poll_interval": 0.05},
            name="loopback-tsa",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        """The URL to give c2pa as ``tsa_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def close(self) -> None:
        """Stop serving and release the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LoopbackTSA:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _TSARequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the class default): one request per connection, so no handler thread lingers on
    # an idle keep-alive connection after close(). A timestamp is one small POST anyway.
    authority: ClassVar[TimestampAuthority]
    # Socket timeout: a client that announces more bytes than it sends must not pin a thread.
    timeout = 10

    def do_POST(self) -> None:
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != QUERY_MEDIA_TYPE:
            self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(HTTPStatus.LENGTH_REQUIRED, b"", "text/plain")
            return
        if length < 0 or length > _MAX_REQUEST_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"", "text/plain")
            return
        body = self.rfile.read(length)
        self._reply(HTTPStatus.OK, self.authority.respond(body), REPLY_MEDIA_TYPE)

    def do_GET(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reply(self, status: HTTPStatus, body: bytes, media_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # One line per timestamp on stderr would drown the worker's own log; stay quiet.
        return


# --- RFC 3161 structures -----------------------------------------------------------------------


class _TimeStampResp(tsp.TimeStampResp):
    # RFC 3161 §2.4.2: timeStampToken is OPTIONAL (absent when the status is a rejection);
    # asn1crypto declares it mandatory, so this local variant says what the RFC says.
    _fields: ClassVar[list[tuple]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class _Rejection(Exception):
    def __init__(self, fail_info: str, text: str):
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


def _parse_request(request_der: bytes, policy: str) -> tsp.TimeStampReq:
    """Decode and check a ``TimeStampReq`` (RFC 3161 §2.4.1); raise :class:`_Rejection`."""
    if not isinstance(request_der, (bytes, bytearray)) or not request_der:
        raise _Rejection("bad_data_format", "empty request")
    try:
        # strict: trailing bytes after the SEQUENCE are a malformed request, not noise to ignore.
        request = tsp.TimeStampReq.load(bytes(request_der), strict=True)
        # asn1crypto parses lazily; touching .native forces every field to decode now.
        _ = request.native
    except Exception:  # noqa: BLE001 - any decoding error is the client's badDataFormat
        raise _Rejection("bad_data_format", "not a DER TimeStampReq") from None
    if request["version"].native != "v1":
        raise _Rejection("bad_request", "version must be 1")
    algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].native
    if algorithm not in _ACCEPTED_DIGESTS:
        raise _Rejection("bad_alg", f"unsupported hash algorithm {algorithm}")
    parameters = request["message_imprint"]["hash_algorithm"]["parameters"].native
    if parameters is not None:
        # RFC 5754 §2: SHA-2 AlgorithmIdentifiers have absent (or NULL) parameters.
        raise _Rejection("bad_alg", "unexpected hash algorithm parameters")
    digest = request["message_imprint"]["hashed_message"].native
    if len(digest) != _ACCEPTED_DIGESTS[algorithm]:
        raise _Rejection("bad_data_format", f"hashedMessage is not a {algorithm} digest")
    requested_policy = request["req_policy"]
    if requested_policy.native is not None and requested_policy.dotted != policy:
        raise _Rejection("unaccepted_policy", "only the TSA's own policy is offered")
    if request["extensions"].native is not None:
        # §2.4.1: a TSA must reject a request with an extension it does not recognise.
        raise _Rejection("unaccepted_extensions", "request extensions are not supported")
    return request


def _rejection_response(fail_info: str, text: str) -> bytes:
    """A ``TimeStampResp`` with status rejection and one failInfo bit (RFC 3161 §2.4.2)."""
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({fail_info}),
        }
    )
    return _TimeStampResp({"status": status}).dump()


def _signing_certificate_v2(cert: asn1_x509.Certificate) -> tsp.SigningCertificateV2:
    """``SigningCertificateV2`` naming the TSA certificate (RFC 5816 §2.2.1, RFC 5035 §3).

    The hash algorithm is SHA-256, the DEFAULT, and is therefore omitted from the encoding.
    """
    return tsp.SigningCertificateV2(
        {
            "certs": [
                {
                    "cert_hash": hashlib.sha256(cert.dump()).digest(),
                    "issuer_serial": {
                        "issuer": [asn1_x509.GeneralName(name="directory_name", value=cert.issuer)],
                        "serial_number": cert.serial_number,
                    },
                }
            ]
        }
    )


@dataclass(frozen=True)
class TimestampReply:
    """A decoded ``TimeStampResp`` (RFC 3161 §2.4.2), for callers and tests that look inside one.

    ``status`` is asn1crypto's name for the PKIStatus (``granted``, ``rejection``, ...),
    ``failure`` the names of the failInfo bits set, ``token`` the ``ContentInfo`` when granted.
    Decoding verifies nothing: use ``openssl ts -verify`` or c2pa for that.
    """

    status: str
    failure: frozenset[str]
    text: str | None
    token: cms.ContentInfo | None


def parse_response(response_der: bytes) -> TimestampReply:
    """Decode a DER ``TimeStampResp``; raises ``ValueError`` when it is not one."""
    response = _TimeStampResp.load(response_der, strict=True)
    status_info = response["status"]
    fail_info = status_info["fail_info"].native
    texts = status_info["status_string"].native
    token = response["time_stamp_token"]
    return TimestampReply(
        status=status_info["status"].native,
        failure=frozenset(fail_info or ()),
        text="; ".join(texts) if texts else None,
        token=None if isinstance(token, core.Void) else token,
    )


__all__ = [
    "DEFAULT_POLICY_OID",
    "QUERY_MEDIA_TYPE",
    "REPLY_MEDIA_TYPE",
    "LoopbackTSA",
    "TimestampAuthority",
    "TimestampReply",
    "parse_response",
]
