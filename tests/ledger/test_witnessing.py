"""The registry collects cosignatures from real tech7-witness processes named in its policy.

Three witnesses on 127.0.0.1 with a quorum of 2 of 3: the checkpoint served carries their
cosignatures, a witness that is down delays only its own, a witness that is behind or was
reset is caught up through 409, and only one submitter at a time holds the lease.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from tech7_tlog.merkle import leaf_hash
from tech7_tlog.note import (
    format_checkpoint,
    open_note,
    parse_checkpoint,
    parse_tlog_proof,
    sign_note,
    verify_tlog_proof,
)
from tech7_tlog.policy import PolicyError, parse_policy
from tech7_tlog.witness import format_add_checkpoint

from app.catalog.kinds import RECOMMENDATION
from app.ledger.models import WitnessLease
from app.ledger.witnessing import Witnessing
from tests.support.witnesses import WITNESS_NAMES as NAMES


@pytest.fixture
def witnessed(make_app, databases, tmp_path, policy_file):
    """An app with the policy, rounds run by hand (no background thread)."""
    application = make_app(databases.clone_template(), tmp_path, WITNESS_POLICY=str(policy_file),
                           WITNESS_INTERVAL=0, WITNESS_TIMEOUT=5)
    yield application
    application.extensions["tech7.db"].engine.dispose()


def publish(app, slug: str) -> None:
    publishing = app.extensions["tech7.publishing"]
    with publishing.db.registry_transaction() as session:
        publishing.publish_content(session, RECOMMENDATION, slug, {
            "title": slug, "priority": 1, "text": ["Witnessed test text."]}, publisher="test")


def served(app) -> tuple[int, set[str]]:
    """The served checkpoint's size and the policy witnesses whose cosignatures verify on it."""
    policy = parse_policy(Path(app.config["WITNESS_POLICY"]).read_bytes())
    note = app.test_client().get("/v1/log/checkpoint").get_data(as_text=True)
    checkpoint, cosigners = policy.verify(note)
    return checkpoint.tree_size, cosigners


def test_the_served_checkpoint_carries_a_quorum_of_cosignatures(witnessed, witnesses):
    witnessing: Witnessing = witnessed.extensions["tech7.witnessing"]
    size, cosigners = served(witnessed)
    assert cosigners == set()  # nothing submitted yet: the log's own signature only
    assert witnessing.submit()
    size, cosigners = served(witnessed)
    assert cosigners == set(NAMES)
    assert parse_policy(Path(witnessed.config["WITNESS_POLICY"]).read_bytes()).satisfied_by(cosigners)
    assert {r.witness: r.tree_size for r in witnessing.reports()} == dict.fromkeys(NAMES, size)

    publish(witnessed, "witnessed-1")
    assert served(witnessed) == (size + 1, set())  # published without waiting for any witness
    assert witnessing.submit()
    assert served(witnessed) == (size + 1, set(NAMES))


def test_trust_publishes_the_policy(witnessed, client, policy_file):
    assert witnessed.test_client().get("/v1/trust").json["log"]["witness_policy"] == policy_file.read_text()
    assert client.get("/v1/trust").json["log"]["witness_policy"] is None  # an app with no policy
    assert client.get("/v1/log/witnesses").json == {"items": [], "total": 0}


def test_a_malformed_policy_stops_the_registry_from_starting(make_app, databases, tmp_path):
    bad = tmp_path / "bad-policy.txt"
    bad.write_text("quorum nobody\n")
    with pytest.raises(PolicyError, match="not a witness or group"):
        make_app(databases.clone_template(), tmp_path, WITNESS_POLICY=str(bad))


def test_a_witness_down_delays_only_its_own_cosignature(witnessed, witnesses):
    witnessing: Witnessing = witnessed.extensions["tech7.witnessing"]
    witnessing.submit()
    witnesses["assoc-c"].stop()
    publish(witnessed, "witnessed-2")
    assert witnessing.submit()
    size, cosigners = served(witnessed)
    assert cosigners == {"assoc-a", "assoc-b"}  # still a quorum of 2 of 3
    reports = {r["witness"]: r for r in witnessed.test_client().get("/v1/log/witnesses").json["items"]}
    assert list(reports) == list(NAMES)
    assert reports["assoc-c"]["tree_size"] == size - 1 and "unreachable" in reports["assoc-c"]["last_error"]
    assert reports["assoc-a"] == {"witness": "assoc-a", "href": "/v1/log/witnesses/assoc-a",
                                  "tree_size": size, "last_error": None,
                                  "updated_at": reports["assoc-a"]["updated_at"]}
    assert reports["assoc-a"]["updated_at"].endswith("Z")
    # Each item's href serves that item; a name the policy lacks is not found.
    assert witnessed.test_client().get(reports["assoc-c"]["href"]).json == reports["assoc-c"]
    assert witnessed.test_client().get("/v1/log/witnesses/nobody").status_code == 404

    witnesses["assoc-c"].start()  # back, on a new port, which the operator puts in the policy
    policy = Path(witnessed.config["WITNESS_POLICY"])
    back = f"witness assoc-c {witnesses['assoc-c'].vkey} http://127.0.0.1:{witnesses['assoc-c'].port}"
    policy.write_text("".join(back + "\n" if line.startswith("witness assoc-c ") else line
                              for line in policy.read_text().splitlines(keepends=True)))
    restarted = Witnessing(witnessing.db, witnessing.log, policy.read_text(), timeout=5,
                           holder=witnessing.holder)
    assert restarted.submit()
    assert served(witnessed)[1] == set(NAMES)


def test_a_witness_ahead_of_what_the_registry_knows_is_caught_up_through_409(witnessed, witnesses):
    witnessing: Witnessing = witnessed.extensions["tech7.witnessing"]
    witnessing.submit()
    publish(witnessed, "witnessed-3")
    witnessing.submit()
    # The registry forgets what it knew of the witnesses (a restored database, say): it sends
    # "old 0", learns each witness's size from the 409 and sends the proof from there.
    with witnessing.db.write() as session:
        session.execute(sa.text("DELETE FROM witness_states"))
        session.execute(sa.text("DELETE FROM witness_cosignatures"))
    assert witnessing.submit()
    assert served(witnessed)[1] == set(NAMES)


def test_only_the_lease_holder_talks_to_witnesses(witnessed, witnesses):
    first: Witnessing = witnessed.extensions["tech7.witnessing"]
    second = Witnessing(first.db, first.log, first.policy_text, timeout=5)
    assert first.submit()
    assert second.submit()  # a round releases the lease when it ends
    assert first._take_lease()  # a round of the first is under way
    assert not second.submit()
    assert first._take_lease()  # renewed by its holder
    with first.db.write() as session:  # the holder died mid-round: its lease expires
        lease = session.get(WitnessLease, "witness-submitter")
        lease.expires_at = lease.expires_at.replace(year=2000)
    assert second._take_lease()
    assert not first.submit()
    second._release_lease()
    assert first.submit()


def test_a_publish_wakes_a_round_at_once_and_readyz_shows_each_witness(make_app, databases, tmp_path,
                                                                        policy_file, witnesses):
    """With rounds a minute apart, a publish is cosigned within seconds: its commit wakes one."""
    app = make_app(databases.clone_template(), tmp_path, WITNESS_POLICY=str(policy_file),
                   WITNESS_INTERVAL=60, WITNESS_TIMEOUT=5)
    witnessing: Witnessing = app.extensions["tech7.witnessing"]
    client = app.test_client()
    try:
        client.get("/v1/log/checkpoint")  # the first request starts the rounds (and runs one)
        for _ in range(100):  # bounded: 10 s at most
            if served(app)[1] == set(NAMES):
                break
            time.sleep(0.1)
        publish(app, "witnessed-woken")
        started = time.monotonic()
        size = app.extensions["tech7.log"].size()
        for _ in range(100):  # bounded: 10 s at most, far below the 60 s interval
            if served(app) == (size, set(NAMES)):
                break
            time.sleep(0.1)
        assert served(app) == (size, set(NAMES))
        assert time.monotonic() - started < 10
        ready = client.get("/readyz")
        assert ready.status_code == 200
        # The same states as the collection's items, which add each one's href.
        assert ready.json["witnesses"] == [
            {key: value for key, value in item.items() if key != "href"}
            for item in client.get("/v1/log/witnesses").json["items"]]
        assert [w["tree_size"] for w in ready.json["witnesses"]] == [size] * len(NAMES)

        witnesses["assoc-c"].stop()  # a witness down: still ready, its error in the details
        publish(app, "witnessed-woken-2")
        for _ in range(100):  # bounded: 10 s at most
            states = {w["witness"]: w for w in client.get("/readyz").json["witnesses"]}
            if states["assoc-c"]["last_error"]:
                break
            time.sleep(0.1)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        states = {w["witness"]: w for w in ready.json["witnesses"]}
        assert "unreachable" in states["assoc-c"]["last_error"]
        assert states["assoc-c"]["tree_size"] == size and states["assoc-a"]["tree_size"] == size + 1
    finally:
        witnessing.stop_background()
        app.extensions["tech7.db"].engine.dispose()


def test_a_fork_signed_with_the_registry_key_is_refused_by_every_witness(witnessed, witnesses):
    """An attacker holding the log's key shows the witnesses another root at the cosigned size."""
    witnessing: Witnessing = witnessed.extensions["tech7.witnessing"]
    witnessing.submit()
    size, _ = served(witnessed)
    keys = witnessed.extensions["tech7.keys"].store
    log = witnessed.extensions["tech7.log"]
    forged = sign_note(format_checkpoint(log.origin, size, b"\x66" * 32), log.origin, keys.log_private_key)
    for process in witnesses.values():
        status, _, _ = process.add(format_add_checkpoint(size, [], forged))
        assert status == 422


def test_the_background_rounds_bring_the_checkpoint_forward(make_app, databases, tmp_path, policy_file, witnesses):
    app = make_app(databases.clone_template(), tmp_path, WITNESS_POLICY=str(policy_file),
                   WITNESS_INTERVAL=0.2, WITNESS_TIMEOUT=5)
    witnessing: Witnessing = app.extensions["tech7.witnessing"]
    try:
        app.test_client().get("/v1/log/checkpoint")  # the first request starts the rounds
        publish(app, "witnessed-background")
        for _ in range(150):  # bounded: 30 s at most
            size, cosigners = served(app)
            if cosigners == set(NAMES) and size == app.extensions["tech7.log"].size():
                break
            time.sleep(0.2)
        assert cosigners == set(NAMES)
    finally:
        witnessing.stop_background()
        app.extensions["tech7.db"].engine.dispose()


def receipt(app, href: str) -> tuple[str, str, set[str]]:
    """A version's receipt: its Tech7-Quorate field, its checkpoint's size and cosigners."""
    policy = parse_policy(Path(app.config["WITNESS_POLICY"]).read_bytes())
    answer = app.test_client().get(href + "/receipt")
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    log_verifier = policy.logs[0].verifier
    proof = parse_tlog_proof(text)
    origin = parse_checkpoint(open_note(proof.signed_checkpoint, [log_verifier])).origin
    verify_tlog_proof(text, leaf_hash(proof.extra), origin, [log_verifier])  # still a valid receipt
    checkpoint, cosigners = policy.verify(proof.signed_checkpoint)
    return answer.headers["Tech7-Quorate"], checkpoint.tree_size, cosigners


def latest_href(app) -> str:
    return app.test_client().get("/v1/changes", query_string={"limit": 500}).json["items"][-1]["href"]


def test_receipts_carry_the_newest_quorate_checkpoint_or_say_they_have_none(witnessed, witnesses):
    witnessing: Witnessing = witnessed.extensions["tech7.witnessing"]
    old_href = latest_href(witnessed)
    assert receipt(witnessed, old_href)[0] == "?0"  # nothing cosigned yet: no quorum is claimed
    witnessing.submit()
    quorate, quorate_size, cosigners = receipt(witnessed, old_href)
    assert (quorate, cosigners) == ("?1", set(NAMES))

    witnesses["assoc-b"].stop()
    witnesses["assoc-c"].stop()
    publish(witnessed, "witnessed-receipts")
    witnessing.submit()
    new_href = latest_href(witnessed)
    # The new version's only checkpoints have one cosignature of the two the quorum needs.
    assert receipt(witnessed, new_href) == ("?0", quorate_size + 1, {"assoc-a"})
    # The older version keeps its quorate checkpoint, older than the newest.
    assert receipt(witnessed, old_href) == ("?1", quorate_size, set(NAMES))
