"""The certificate service: recording the key folder's signing certificates in the log, rotation,
revocation (service and CLI), revocation status at a signing time, and the append-only tables."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from tech7_audit.manifests import certificate_sha256
from tech7_audit.times import isoformat

from app.certificates.service import CertificateAlreadyRevoked, UnknownCertificate, certificate_path
from app.core import config
from app.core.db import utcnow
from app.core.errors import InvalidRequest
from app.exports.service import ExportScope
from app.pki.authority import KeyMaterialError, KeyStore, rotate_signer
from app.pki.keyring import Keyring, signer_names_from_seed
from app.publishing.service import SignerRevoked


def registry(app):
    return app.extensions["tech7.certificates"]


def transparency_log(app):
    return app.extensions["tech7.log"]


def record_at(app, index: int) -> dict:
    return json.loads(transparency_log(app).entry(index).leaf)


def current_sha256(app, signer: str) -> str:
    return certificate_sha256(app.extensions["tech7.keys"].store.signer_certificate(signer))


def row_counts(app) -> tuple[int, int, int]:
    """(log size, recorded certificates, revocations): what a refused request must not change."""
    with app.extensions["tech7.db"].engine.connect() as connection:
        return (transparency_log(app).size(),
                connection.scalar(sa.text("SELECT count(*) FROM signing_certificates")),
                connection.scalar(sa.text("SELECT count(*) FROM revocations")))


@pytest.fixture
def separate_keys_app(make_app, databases, keys_dir, tmp_path):
    """An app on a seeded database with a private copy of the session's key folder, so a test
    may rotate signers without changing the keys every other test uses."""
    keys = tmp_path / "keys"
    shutil.copytree(keys_dir, keys)
    application = make_app(databases.clone_template(), tmp_path, KEYS_DIR=str(keys))
    yield application
    application.extensions["tech7.db"].engine.dispose()


# --- seeding and sync --------------------------------------------------------------------------


def test_seeding_logs_every_signing_certificate_before_the_first_publication(app):
    records = registry(app).certificates()
    assert sorted(r.signer for r in records) == sorted(signer_names_from_seed(config.SEED_FILE))
    assert len(records) == 11
    assert [r.log_index for r in records] == list(range(11))
    for record in records:
        logged = record_at(app, record.log_index)
        assert logged == {
            "type": "certificate-issue", "subject": certificate_path(record.sha256),
            "association": None if record.signer == "registry" else record.signer,
            "signer": record.signer, "signer_certificate_sha256": record.sha256,
            "serial_number": record.serial_number,
            "not_before": isoformat(record.not_before), "not_after": isoformat(record.not_after),
            "time": logged["time"]}
        assert record.sha256 == certificate_sha256(record.certificate())
    assert record_at(app, 11)["type"] == "publication"
    assert record_at(app, 11)["signer_certificate_sha256"] == current_sha256(app, "registry")


def test_every_published_version_names_a_certificate_logged_before_it(app):
    logged_at = {r.sha256: r.log_index for r in registry(app).certificates()}
    for index in range(11, transparency_log(app).size()):
        record = record_at(app, index)
        assert logged_at[record["signer_certificate_sha256"]] < index


def test_sync_records_nothing_twice(app):
    before = row_counts(app)
    assert registry(app).sync_now() == []
    assert row_counts(app) == before


# --- rotation ----------------------------------------------------------------------------------


def test_keys_rotate_logs_the_new_certificate_and_keeps_the_old_one_listed(separate_keys_app):
    app = separate_keys_app
    old = current_sha256(app, "registry")
    size = transparency_log(app).size()

    result = app.test_cli_runner().invoke(args=["keys", "rotate", "registry"])

    assert result.exit_code == 0, result.output
    new = current_sha256(app, "registry")
    assert new != old
    assert transparency_log(app).size() == size + 1
    logged = record_at(app, size)
    assert (logged["type"], logged["signer"], logged["signer_certificate_sha256"]) == \
        ("certificate-issue", "registry", new)
    listed = {c["sha256"]: c for c in app.test_client().get("/v1/trust").json["certificates"]}
    assert listed[old]["status"] == "valid"
    assert listed[new]["status"] == "valid"
    assert listed[new]["log_index"] == size
    assert registry(app).status(old, utcnow()).revoked is False


def test_sync_reads_retired_certificates_that_were_never_recorded(separate_keys_app):
    # Two rotations behind the registry's back: the middle certificate is already retired when
    # the registry next looks, and must still be recorded, before its successor.
    app = separate_keys_app
    keys = app.extensions["tech7.keys"]
    now = datetime.now(UTC)
    middle = rotate_signer(keys.directory, "bitkom", now=now - timedelta(hours=1))
    newest = rotate_signer(keys.directory, "bitkom", now=now)
    keys.reload()

    recorded = registry(app).sync_now()

    assert [(r.signer, r.sha256) for r in recorded] == [
        ("bitkom", certificate_sha256(middle)), ("bitkom", certificate_sha256(newest))]
    assert recorded[0].log_index < recorded[1].log_index


def test_a_certificate_past_its_not_after_is_listed_as_expired(separate_keys_app):
    app = separate_keys_app
    keys = app.extensions["tech7.keys"]
    expired = rotate_signer(keys.directory, "bitkom", now=datetime.now(UTC)
                            - timedelta(days=30), signer_validity=timedelta(days=1))
    keys.reload()
    registry(app).sync_now()
    listed = {c["sha256"]: c["status"] for c in app.test_client().get("/v1/trust").json["certificates"]}
    assert listed[certificate_sha256(expired)] == "expired"
    assert list(listed.values()).count("valid") == 11


def test_sync_refuses_a_retired_file_that_does_not_name_its_certificate(separate_keys_app):
    app = separate_keys_app
    directory = app.extensions["tech7.keys"].directory
    rotate_signer(directory, "bitkom")
    retired = next((directory / "signers" / "retired").glob("bitkom-*.pem"))
    retired.rename(retired.with_name("bitkom-00.pem"))
    before = row_counts(app)
    with pytest.raises(KeyMaterialError, match=r"bitkom-00\.pem"):
        registry(app).sync_now()
    assert row_counts(app) == before


# --- revocation --------------------------------------------------------------------------------


def test_revoke_logs_the_revocation_and_records_it(app):
    sha256 = current_sha256(app, "techuk")
    size = transparency_log(app).size()
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

    revocation = registry(app).revoke(sha256, "keyCompromise", at)

    assert (revocation.certificate_sha256, revocation.revoked_at, revocation.reason,
            revocation.log_index) == (sha256, at, "keyCompromise", size)
    assert record_at(app, size) == {
        "type": "revocation", "subject": certificate_path(sha256), "signer": "techuk",
        "association": "techuk", "signer_certificate_sha256": sha256, "reason": "keyCompromise",
        "revoked_at": "2026-01-02T03:04:05.678Z", "time": record_at(app, size)["time"]}
    assert registry(app).certificate(sha256).revocation.log_index == size


def test_revoking_by_signer_name_revokes_its_current_certificate(separate_keys_app):
    app = separate_keys_app
    retired = current_sha256(app, "numeum")
    assert app.test_cli_runner().invoke(args=["keys", "rotate", "numeum"]).exit_code == 0
    registry(app).revoke("numeum", "superseded")
    assert registry(app).status(current_sha256(app, "numeum"), None).revoked
    assert not registry(app).status(retired, None).revoked


def test_status_is_revoked_from_the_revocation_time_on(app):
    sha256 = current_sha256(app, "jeita")
    at = utcnow() - timedelta(days=1)
    registry(app).revoke(sha256, "keyCompromise", at)

    before = registry(app).status(sha256, at - timedelta(milliseconds=1))
    exactly = registry(app).status(sha256, at)
    after = registry(app).status(sha256, at + timedelta(seconds=1))
    unknown_time = registry(app).status(sha256, None)

    assert before.revoked is False
    assert exactly.revoked is True
    assert after.revoked is True
    assert unknown_time.revoked is True
    assert (before.known, before.signer, before.association, before.revoked_at, before.reason) \
        == (True, "jeita", "jeita", at, "keyCompromise")


def test_status_of_good_and_unknown_certificates(app):
    good = registry(app).status(current_sha256(app, "registry"), None)
    assert (good.known, good.signer, good.association, good.revoked, good.revoked_at) == \
        (True, "registry", None, False, None)
    assert good.not_before < utcnow() < good.not_after
    unknown = registry(app).status("0" * 64, utcnow())
    assert (unknown.known, unknown.revoked, unknown.signer) == (False, False, None)


def test_status_refuses_a_naive_signing_time(app):
    with pytest.raises(ValueError, match="timezone-aware"):
        registry(app).status(current_sha256(app, "registry"), datetime(2026, 1, 1))


@pytest.mark.parametrize("target", ["0" * 64, "no-such-signer"])
def test_revoking_an_unknown_certificate_writes_nothing(app, target):
    before = row_counts(app)
    with pytest.raises(UnknownCertificate) as raised:
        registry(app).revoke(target, "keyCompromise")
    assert raised.value.status == 404
    assert row_counts(app) == before


def test_revoking_twice_is_a_conflict_and_writes_nothing(app):
    registry(app).revoke("afnum", "cessationOfOperation")
    before = row_counts(app)
    with pytest.raises(CertificateAlreadyRevoked) as raised:
        registry(app).revoke(current_sha256(app, "afnum"), "keyCompromise")
    assert raised.value.status == 409
    assert raised.value.extensions["reason"] == "cessationOfOperation"
    assert row_counts(app) == before


@pytest.mark.parametrize(("reason", "at"), [
    ("compromised", None),
    ("certificateHold", None),
    ("keyCompromise", datetime(2026, 1, 1)),
    ("keyCompromise", datetime.now(UTC) + timedelta(hours=1)),
])
def test_bad_revocations_are_refused_and_write_nothing(app, reason, at):
    before = row_counts(app)
    with pytest.raises(InvalidRequest):
        registry(app).revoke("bitkom", reason, at)
    assert row_counts(app) == before


# --- command line ------------------------------------------------------------------------------


def test_cli_revokes_a_signer_by_name(app):
    sha256 = current_sha256(app, "iti")
    result = app.test_cli_runner().invoke(
        args=["keys", "revoke", "iti", "--reason", "affiliationChanged",
              "--at", "2026-03-01T12:00:00+01:00"])
    assert result.exit_code == 0, result.output
    assert sha256 in result.output
    status = registry(app).status(sha256, None)
    assert (status.revoked_at, status.reason) == (
        datetime(2026, 3, 1, 11, tzinfo=UTC), "affiliationChanged")


def test_cli_revokes_a_certificate_by_sha256(app):
    sha256 = current_sha256(app, "digitaleurope")
    result = app.test_cli_runner().invoke(
        args=["keys", "revoke", sha256.upper(), "--reason", "unspecified"])
    assert result.exit_code == 0, result.output
    status = registry(app).status(sha256, utcnow())
    assert status.revoked and status.reason == "unspecified"
    assert utcnow() - status.revoked_at < timedelta(minutes=1)


@pytest.mark.parametrize(("args", "message"), [
    (["keys", "revoke", "iti", "--reason", "bogus"], "'bogus' is not one of"),
    (["keys", "revoke", "iti"], "Missing option '--reason'"),
    (["keys", "revoke", "iti", "--reason", "superseded", "--at", "yesterday"], "ISO 8601"),
    (["keys", "revoke", "iti", "--reason", "superseded", "--at", "2026-01-01T00:00:00"],
     "UTC offset"),
    (["keys", "revoke", "nobody", "--reason", "superseded"], "neither a signer"),
])
def test_cli_refuses_bad_revocations(app, args, message):
    before = row_counts(app)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert row_counts(app) == before


# --- keys changed by another process ------------------------------------------------------------
# `tech7-registry keys` runs in a process of its own while the server's workers keep the key folder
# loaded: ``command_line`` is that process, ``separate_keys_app`` a worker.

VERSION = "/v1/recommendations/sme-participation/versions/1"


@pytest.fixture
def command_line(make_app, separate_keys_app, tmp_path):
    """A CLI runner of a second app on the worker's database and key folder."""
    other = make_app(separate_keys_app.config["DATABASE_URL"], tmp_path / "cli",
                     KEYS_DIR=separate_keys_app.config["KEYS_DIR"], STARTUP_CHECKS=False)
    yield other.test_cli_runner()
    other.extensions["tech7.db"].engine.dispose()


def export_now(app) -> dict:
    """Make a JSON export signed by the registry; returns its log record."""
    made = app.extensions["tech7.exports"].create("json", ExportScope(versions=(VERSION,)),
                                                  created_by="test")
    return record_at(app, made.log_index)


def folder_sha256(app, signer: str) -> str:
    """``signer``'s current certificate as the key folder holds it now."""
    return certificate_sha256(KeyStore.load(Path(app.config["KEYS_DIR"]))
                              .signer_certificate(signer))


def test_a_worker_signs_with_the_certificate_another_process_rotated(separate_keys_app, command_line):
    worker = separate_keys_app
    old = current_sha256(worker, "registry")
    assert export_now(worker)["signer_certificate_sha256"] == old

    assert command_line.invoke(args=["keys", "rotate", "registry"]).exit_code == 0

    new = folder_sha256(worker, "registry")
    assert new != old
    assert export_now(worker)["signer_certificate_sha256"] == new
    trust = worker.test_client().get("/v1/trust")
    assert {s["name"]: s["sha256"] for s in trust.json["signers"]}["registry"] == new
    assert trust.headers["Cache-Control"] == "no-cache"


def test_a_worker_refuses_a_certificate_another_process_revoked_until_it_is_rotated(
        separate_keys_app, command_line):
    worker = separate_keys_app
    export_now(worker)  # the worker has signed with the certificate about to be revoked
    revoked = command_line.invoke(args=["keys", "revoke", "registry", "--reason",
                                        "keyCompromise"])
    assert revoked.exit_code == 0, revoked.output
    before = row_counts(worker)

    with pytest.raises(SignerRevoked, match="keys rotate registry"):
        export_now(worker)
    assert row_counts(worker) == before

    assert command_line.invoke(args=["keys", "rotate", "registry"]).exit_code == 0
    assert export_now(worker)["signer_certificate_sha256"] == folder_sha256(worker, "registry")


def test_the_keys_are_read_again_only_when_the_recorded_key_state_changes(separate_keys_app,
                                                                         command_line):
    certificates = registry(separate_keys_app)
    loaded = certificates.current_keys()
    assert certificates.current_keys() is loaded
    assert command_line.invoke(args=["keys", "revoke", "bitkom", "--reason",
                                     "superseded"]).exit_code == 0
    assert certificates.current_keys() is not loaded


def test_a_certificate_in_the_folder_but_not_yet_recorded_is_logged_before_it_signs(make_app,
        separate_keys_app, tmp_path):
    # A worker that starts while `keys rotate` has written the new files but not recorded them.
    rotate_signer(Path(separate_keys_app.config["KEYS_DIR"]), "registry")
    worker = make_app(separate_keys_app.config["DATABASE_URL"], tmp_path / "worker",
                      KEYS_DIR=separate_keys_app.config["KEYS_DIR"])
    new = folder_sha256(worker, "registry")
    size = transparency_log(worker).size()

    exported = export_now(worker)

    assert exported["signer_certificate_sha256"] == new
    assert (record_at(worker, size)["type"], record_at(worker, size)["signer_certificate_sha256"]
            ) == ("certificate-issue", new)
    worker.extensions["tech7.db"].engine.dispose()


def test_a_key_folder_caught_mid_rotation_leaves_the_loaded_keys_in_use(keys_dir, tmp_path):
    folder = tmp_path / "keys"
    shutil.copytree(keys_dir, folder)
    keyring = Keyring(folder)
    loaded = keyring.refresh((1, None))
    key = folder / "signers" / "bitkom.key"
    key.rename(tmp_path / "moving.key")

    assert keyring.refresh((2, None)) is loaded

    (tmp_path / "moving.key").rename(key)
    assert keyring.refresh((2, None)) is not loaded


# --- the database itself -----------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE revocations SET revoked_at = :later",
    "UPDATE revocations SET reason = 'unspecified'",
    "DELETE FROM revocations",
    "UPDATE signing_certificates SET not_after = :later",
    "DELETE FROM signing_certificates",
])
def test_sql_cannot_rewrite_certificates_or_revocations(app, statement):
    registry(app).revoke("techuk", "keyCompromise")
    before = row_counts(app)
    with pytest.raises(DBAPIError, match="immutable"), app.extensions["tech7.db"].engine.begin() as connection:
        connection.execute(sa.text(statement), {"later": utcnow() + timedelta(days=1)})
    assert row_counts(app) == before
    assert registry(app).status(current_sha256(app, "techuk"), None).reason == "keyCompromise"
