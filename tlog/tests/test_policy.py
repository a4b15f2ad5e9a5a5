"""C2SP tlog-policy: parsing every line kind, the structural rules, and quorum evaluation."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_tlog.cosignature import Ed25519Cosigner, cosigner_verifier_key
from tech7_tlog.note import NoteError, format_checkpoint, sign_note, verifier_key
from tech7_tlog.policy import PolicyError, parse_policy

ORIGIN = "example.com/log"
LOG_KEY = Ed25519PrivateKey.generate()
WITNESS_KEYS = {name: Ed25519PrivateKey.generate() for name in ("X1", "X2", "X3", "Y1", "Y2", "Y3")}


def wvkey(name: str) -> str:
    return cosigner_verifier_key(f"w.example/{name}", WITNESS_KEYS[name].public_key())


LOG_VKEY = verifier_key(ORIGIN, LOG_KEY.public_key())

# The spec's example, two levels of groups, with comments, blank lines, tabs and a URL.
EXAMPLE = f"""# the TECH7 log
log {LOG_VKEY} https://log.example
\twitness X1 {wvkey("X1")}   http://127.0.0.1:1
witness X2 {wvkey("X2")}
witness X3 {wvkey("X3")}
group X-witnesses 2 X1 X2 X3

witness Y1 {wvkey("Y1")}
witness Y2 {wvkey("Y2")}
witness Y3 {wvkey("Y3")}
group Y-witnesses any Y1 Y2 Y3
  # indented comment
group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_example_policy_parses():
    policy = parse_policy(EXAMPLE)
    assert [log.verifier.name for log in policy.logs] == [ORIGIN]
    assert policy.logs[0].url == "https://log.example"
    assert sorted(policy.witnesses) == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert policy.witnesses["X1"].url == "http://127.0.0.1:1"
    assert policy.witnesses["X2"].url is None
    assert policy.groups["X-witnesses"].threshold == 2
    assert policy.groups["Y-witnesses"].threshold == 1
    assert policy.groups["X-and-Y"].threshold == 2
    assert policy.quorum == "X-and-Y"


@pytest.mark.parametrize(
    ("cosigners", "quorate"),
    [
        ({"X1", "X2", "Y1"}, True),
        ({"X1", "X3", "Y3"}, True),
        ({"X1", "X2", "X3"}, False),  # no Y
        ({"X1", "Y1", "Y2", "Y3"}, False),  # one X only
        (set(), False),
    ],
)
def test_quorum_evaluation(cosigners, quorate):
    assert parse_policy(EXAMPLE).satisfied_by(cosigners) is quorate


def test_quorum_none_needs_no_cosignature():
    assert parse_policy(f"log {LOG_VKEY}\nquorum none\n").satisfied_by(set())


def test_quorum_of_one_witness():
    policy = parse_policy(f"witness A {wvkey('X1')}\nquorum A\n")
    assert policy.satisfied_by({"A"}) and not policy.satisfied_by(set())


def test_verify_counts_only_valid_cosignatures_of_policy_witnesses():
    policy = parse_policy(EXAMPLE)
    text = format_checkpoint(ORIGIN, 5, bytes(32))
    note = sign_note(text, ORIGIN, LOG_KEY)
    for name in ("X1", "X2", "Y2"):
        note += Ed25519Cosigner(f"w.example/{name}", WITNESS_KEYS[name]).cosign(text, 1000)
    note += Ed25519Cosigner("w.example/X3", Ed25519PrivateKey.generate()).cosign(text, 1000)  # not X3's key
    checkpoint, cosigners = policy.verify(note)
    assert checkpoint.tree_size == 5
    assert cosigners == {"X1", "X2", "Y2"}
    assert policy.satisfied_by(cosigners)


def test_verify_refuses_a_checkpoint_not_signed_by_a_policy_log():
    policy = parse_policy(EXAMPLE)
    text = format_checkpoint(ORIGIN, 5, bytes(32))
    with pytest.raises(NoteError):
        policy.verify(sign_note(text, ORIGIN, Ed25519PrivateKey.generate()))


def test_verify_refuses_a_log_key_signing_another_origin():
    other = Ed25519PrivateKey.generate()
    policy = parse_policy(f"log {LOG_VKEY}\nlog {verifier_key('other.example', other.public_key())}\nquorum none\n")
    text = format_checkpoint(ORIGIN, 5, bytes(32))
    with pytest.raises(NoteError):
        policy.verify(sign_note(text, "other.example", other))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"log {LOG_VKEY}\n", "has none"),
        ("quorum none\nquorum none\n", "exactly one quorum"),
        ("quorum A\n", "not a witness or group"),
        (f"quorum A\nwitness A {wvkey('X1')}\n", "not a witness or group"),
        (f"witness A {wvkey('X1')}\nwitness B {wvkey('X1')}\nquorum A\n", "same public key"),
        (f"log {LOG_VKEY}\nlog {verifier_key('x', LOG_KEY.public_key())}\nquorum none\n", "same public key"),
        (f"witness A {wvkey('X1')}\nwitness A {wvkey('X2')}\nquorum A\n", "already defined"),
        (f"witness none {wvkey('X1')}\nquorum none\n", "already defined"),
        (f"witness A {wvkey('X1')}\ngroup G 1 A A\nquorum G\n", "each member once"),
        (f"witness A {wvkey('X1')}\ngroup G 2 A\nquorum G\n", "threshold"),
        (f"witness A {wvkey('X1')}\ngroup G 0 A\nquorum G\n", "threshold"),
        (f"witness A {wvkey('X1')}\ngroup G 01 A\nquorum G\n", "threshold"),
        (f"witness A {wvkey('X1')}\ngroup G any\nquorum G\n", "one member or more"),
        (f"witness A {wvkey('X1')}\ngroup G any none\nquorum G\n", "not a witness or group"),
        (f"witness A {wvkey('X1')}\ngroup G any A B\nquorum G\n", "not a witness or group"),
        (f"witness A {LOG_VKEY}\nquorum A\n", "type 0x04"),
        (f"log {wvkey('X1')}\nquorum none\n", "type 0x01"),
        ("quorum none", "ends in a newline"),
        ("quorum\x0bnone\n", "control characters"),
        ("quorum none\r\n", "control characters"),
        ("witnesses A\nquorum none\n", "unknown keyword"),
        (f"log {LOG_VKEY} https://a https://b\nquorum none\n", "log line"),
    ],
)
def test_malformed_policies_are_refused(text, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_names_are_opaque_octets():
    kelvin = "\u212a"
    policy = parse_policy(f"witness {kelvin} {wvkey('X1')}\nwitness K {wvkey('X2')}\nquorum {kelvin}\n".encode())
    assert policy.satisfied_by({kelvin}) and not policy.satisfied_by({"K"})
