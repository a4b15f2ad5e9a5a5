"""``tech7-audit``: verify offline from files (exit 0 / 1 / 2), fetch from one host only, and
monitor a served registry's log until someone rewrites it."""

from __future__ import annotations

import base64
import json
import shlex
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tech7_audit.cli import Fetcher, FetchError, audit
from tech7_tlog.cosignature import Ed25519Cosigner
from tech7_tlog.note import format_tlog_proof, parse_tlog_proof

from tests.support.audit import OTHER_VERSION, VERSION, Materials, one_byte_changed, publish_new_version
from tests.support.serve import REGISTRY, registry_env, serving, wait_for

AUDIT = str(Path(sys.executable).with_name("tech7-audit"))


def _write_files(folder: Path, version: Materials) -> dict[str, Path]:
    """The files `tech7-audit fetch` would have written for ``version``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"file": folder / "document.json", "manifest": folder / "manifest.c2pa",
             "receipt": folder / "receipt.tlog", "trust": folder / "anchors.pem",
             "log_key": folder / "log.vkey", "trust_list": folder / "trust.json"}
    files["file"].write_bytes(version.body)
    files["manifest"].write_bytes(version.manifest)
    files["receipt"].write_text(version.receipt)
    files["trust"].write_bytes(version.anchors)
    files["log_key"].write_text(version.verifier_key + "\n")
    files["trust_list"].write_text(json.dumps(version.trust))
    return files


def _argv(files: dict[str, Path], **extra: Path | str | None) -> list[str]:
    argv = ["verify", str(files["file"])]
    for option in ("manifest", "trust", "log_key", "receipt", "trust_list", "checkpoint",
                   "consistency"):
        value = extra.get(option, files.get(option))
        if value is not None:
            argv += ["--" + option.replace("_", "-"), str(value)]
    return argv


@pytest.fixture
def files(tmp_path, materials) -> dict[str, Path]:
    return _write_files(tmp_path / "audit", materials())


def _run(argv: list[str]):
    return CliRunner().invoke(audit, argv)


def _failed(result, step: str, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert f"✗ {step}" in result.output
    assert "NOT VERIFIED" in result.output
    for fragment in fragments:
        assert fragment in result.output


# --- verify, offline ------------------------------------------------------------------------------


def test_verify_passes_and_prints_every_step(files):
    result = _run(_argv(files))
    assert result.exit_code == 0, result.output
    for step in ("receipt", "manifest", "signer", "hashes", "checkpoint", "inclusion",
                 "revocation"):
        assert f"✓ {step}" in result.output
    assert f"VERIFIED: {files['file']} is {VERSION}, signed by registry" in result.output


def test_verify_as_json(files):
    result = _run(_argv(files) + ["--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["ok"] is True and report["record"]["subject"] == VERSION
    files["file"].write_bytes(one_byte_changed(files["file"].read_bytes()))
    failed = _run(_argv(files) + ["--json"])
    assert failed.exit_code == 1
    assert json.loads(failed.output)["steps"][-1]["name"] == "manifest"


def test_verify_fails_with_exit_1_at_the_tampered_step(files, tmp_path, materials):
    body = files["file"].read_bytes()
    files["file"].write_bytes(one_byte_changed(body))
    _failed(_run(_argv(files)), "manifest", "assertion.dataHash.mismatch")
    files["file"].write_bytes(body)

    other = tmp_path / "other.c2pa"
    other.write_bytes(materials(OTHER_VERSION).manifest)
    _failed(_run(_argv(files, manifest=other)), "manifest", "assertion.dataHash.mismatch")

    receipt = files["receipt"].read_text()
    index = parse_tlog_proof(receipt).index
    files["receipt"].write_text(receipt.replace(f"index {index}\n", f"index {index + 1}\n"))
    _failed(_run(_argv(files)), "inclusion")

    lines = receipt.split("\n")
    size_line = lines.index("tech7-registry/log") + 1
    lines[size_line] = str(int(lines[size_line]) - 1)
    files["receipt"].write_text("\n".join(lines))
    _failed(_run(_argv(files)), "checkpoint", "not signed by the log key")
    files["receipt"].write_text(receipt)

    trust = json.loads(files["trust_list"].read_text())
    trust["revocations"] = [{"certificate_sha256": c["sha256"], "reason": "keyCompromise",
                             "revoked_at": "2000-01-01T00:00:00Z"} for c in trust["signers"]]
    files["trust_list"].write_text(json.dumps(trust))
    _failed(_run(_argv(files)), "revocation", "REVOKED")


def test_verify_checks_consistency_with_your_last_checkpoint(client, operator, tmp_path,
                                                            materials):
    last = tmp_path / "last.txt"
    last.write_text(client.get("/v1/log/checkpoint").get_data(as_text=True))
    old_size = int(last.read_text().split("\n")[1])
    publish_new_version(client, operator)
    files = _write_files(tmp_path / "audit", materials())
    _failed(_run(_argv(files, checkpoint=last)), "consistency", "tech7-audit fetch")
    proof = tmp_path / "consistency.json"
    proof.write_text(json.dumps(client.get("/v1/log/proofs/consistency", query_string={
        "first": old_size, "second": old_size + 1}).json))
    result = _run(_argv(files, checkpoint=last, consistency=proof))
    assert result.exit_code == 0, result.output
    assert "✓ consistency" in result.output
    forged = json.loads(proof.read_text())
    forged["hashes"][0] = base64.b64encode(b"\x00" * 32).decode()
    proof.write_text(json.dumps(forged))
    _failed(_run(_argv(files, checkpoint=last, consistency=proof)), "consistency",
            "LOG REWRITTEN")


def test_usage_errors_exit_2(files, tmp_path):
    argv = _argv(files)
    without_receipt = argv[:argv.index("--receipt")] + argv[argv.index("--receipt") + 2:]
    assert _run(without_receipt).exit_code == 2
    assert _run(_argv(files, manifest=tmp_path / "missing.c2pa")).exit_code == 2
    assert _run(_argv(files, consistency=files["trust_list"])).exit_code == 2
    bad_key = tmp_path / "bad.vkey"
    bad_key.write_text("not a key")
    assert _run(_argv(files, log_key=bad_key)).exit_code == 2
    assert _run(_argv(files, trust=files["receipt"])).exit_code == 2
    assert _run(_argv(files, trust_list=files["receipt"])).exit_code == 2
    a_list = tmp_path / "list.json"
    a_list.write_text("[]")
    assert _run(_argv(files, trust_list=a_list)).exit_code == 2
    assert _run(["verify"]).exit_code == 2


def test_the_console_script_exits_0_1_2(files):
    argv = [AUDIT, *_argv(files)]
    passed = subprocess.run(argv, capture_output=True, text=True, encoding="utf-8", check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    files["file"].write_bytes(b"{}")
    assert subprocess.run(argv, capture_output=True, check=False).returncode == 1
    assert subprocess.run([AUDIT, "verify", str(files["file"])], capture_output=True,
                          check=False).returncode == 2


# --- fetching from one host only -----------------------------------------------------------------


def test_fetcher_refuses_other_hosts():
    fetcher = Fetcher("http://127.0.0.1:1/v1/declaration/versions/1")
    assert fetcher.url("/v1/trust") == "http://127.0.0.1:1/v1/trust"
    for elsewhere in ("http://example.org/v1/trust", "//example.org/x", "https://127.0.0.1:1/x",
                      "http://127.0.0.1:2/x"):
        with pytest.raises(FetchError):
            fetcher.url(elsewhere)


def test_fetch_refuses_a_redirect_to_another_host(tmp_path):
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            # "localhost" is the same machine but another origin than "127.0.0.1".
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/x")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = _run(["fetch", f"http://127.0.0.1:{server.server_port}/v1/declaration/versions/1",
                       "--out", str(tmp_path / "out")])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    assert "redirects to another host" in result.output


# --- against a served registry -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A real `tech7-registry serve` on SQLite in a fresh folder: (base URL, data folder)."""
    tmp = tmp_path_factory.mktemp("served")
    with serving(tmp) as (base, process, _env):
        wait_for(base + "/v1/log/checkpoint", process)
        yield base, tmp / "data"


def _audit_command(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([AUDIT, *argv], capture_output=True, text=True, encoding="utf-8",
                          cwd=cwd, check=False, timeout=120)


def test_fetch_then_verify_offline(served, tmp_path):
    base, _ = served
    fetched = _audit_command("fetch", base + VERSION, "--out", "v1", cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    for name in ("document.json", "manifest.c2pa", "receipt.tlog", "anchors.pem", "trust.json",
                 "log.vkey", "checkpoint.txt", "c2pa-settings.json", "c2pa-settings-legacy.json"):
        assert (tmp_path / "v1" / name).is_file(), name
    pem = (tmp_path / "v1" / "anchors.pem").read_text()
    split = json.loads((tmp_path / "v1" / "c2pa-settings.json").read_text())
    assert [(a["trust_anchors"], a["trust_kind"]) for a in split["trust"]["anchors"]] == [
        (pem, "manifest"), (pem, "tsa")]
    legacy = json.loads((tmp_path / "v1" / "c2pa-settings-legacy.json").read_text())
    assert legacy["trust"] == {"trust_anchors": pem}
    command = shlex.split(fetched.stdout.strip().splitlines()[-1])
    assert command[:2] == ["tech7-audit", "verify"]
    verified = _audit_command(*command[1:], cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout and "✓ revocation" in verified.stdout

    (tmp_path / "last.txt").write_bytes((tmp_path / "v1" / "checkpoint.txt").read_bytes())
    again = _audit_command("fetch", base + VERSION, "--out", "again", "--checkpoint", "last.txt",
                           cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    command = shlex.split(again.stdout.strip().splitlines()[-1])
    assert "--checkpoint" in command
    verified = _audit_command(*command[1:], cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "✓ consistency" in verified.stdout

    association = _audit_command("fetch", base + "/v1/associations/bitkom/versions/1", cwd=tmp_path)
    assert association.returncode == 0, association.stdout + association.stderr
    assert (tmp_path / "bitkom-v1" / "document.json").is_file()
    command = shlex.split(association.stdout.strip().splitlines()[-1])
    verified = _audit_command(*command[1:], cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "signed by registry for bitkom" in verified.stdout


def _http(method: str, url: str, token: str, **headers: str) -> urllib.request.Request:
    return urllib.request.Request(url, method=method,
                                  headers={"Authorization": f"Bearer {token}", **headers})


def test_history_verifies_every_version_and_its_links(served, tmp_path):
    base, data = served
    token = subprocess.run([REGISTRY, "tokens", "create", "--operator"],
                           env=registry_env(data.parent), check=True,
                           capture_output=True, text=True, timeout=60).stdout.strip()
    document = base + "/v1/recommendations/key-risks"
    for revision in (1, 2):
        with urllib.request.urlopen(document, timeout=10) as response:
            content = json.loads(response.read())
        content["title"] += f" (revision {revision})"
        put = _http("PUT", document + "/draft", token, **{"If-None-Match": "*",
                                                           "Content-Type": "application/json"})
        with urllib.request.urlopen(put, data=json.dumps(content).encode(), timeout=30) as answer:
            etag = answer.headers["ETag"]
        with urllib.request.urlopen(_http("POST", document + "/draft/publish", token,
                                          **{"If-Match": etag}), timeout=60) as answer:
            assert answer.status == 201

    checked = _audit_command("history", document + "/versions/2", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert [line for line in lines if line.startswith("✓ version")] == \
        ["✓ version 3", "✓ version 2", "✓ version 1"]
    assert sum("✓ parent: names version" in line for line in lines) == 2
    assert "VERIFIED: all 3 versions" in checked.stdout


def test_monitor_pins_the_key_and_catches_a_rewritten_leaf(served, tmp_path):
    base, data = served
    first = _audit_command("monitor", base, "--state", "state", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "trust on first use" in first.stdout
    stored = tmp_path / "state" / "checkpoint.txt"
    key = (tmp_path / "state" / "log.vkey").read_text().strip()
    with urllib.request.urlopen(base + "/v1/trust", timeout=10) as response:
        trust = json.loads(response.read())
    assert key == trust["log"]["verifier_key"]
    size = int(stored.read_text().split("\n")[1])
    assert f"all {size} entries re-hash to the signed root" in first.stdout

    second = _audit_command("monitor", base, "--state", "state", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "trust on first use" not in second.stdout
    assert "the same tree as your last checkpoint" in second.stdout

    # An attacker with access to the database rewrites an old entry (the trigger forbids it,
    # so they drop the trigger first).
    before = stored.read_bytes()
    database = sqlite3.connect(data / "registry.db")
    try:
        database.execute("DROP TRIGGER log_entries_no_update")
        leaf = database.execute('SELECT leaf FROM log_entries WHERE "index" = 3').fetchone()[0]
        record = json.loads(leaf)
        record["time"] = "2025-02-10T00:00:00.000Z"
        database.execute('UPDATE log_entries SET leaf = ? WHERE "index" = 3',
                         (json.dumps(record, separators=(",", ":"), sort_keys=True).encode(),))
        database.commit()
    finally:
        database.close()
    rewritten = _audit_command("monitor", base, "--state", "state", cwd=tmp_path)
    assert rewritten.returncode == 1, rewritten.stdout + rewritten.stderr
    assert "LOG REWRITTEN: entry 3 " in rewritten.stdout
    assert stored.read_bytes() == before, "the stored checkpoint is kept as it was"


# --- verify --policy: the witnesses' quorum -------------------------------------------------------


def _witness_keys(*names: str) -> dict[str, Ed25519Cosigner]:
    """Witness keys made for this run (never stored)."""
    return {name: Ed25519Cosigner(f"witness.example/{name}", Ed25519PrivateKey.generate())
            for name in names}


def _policy(log_vkey: str, witnesses: dict[str, Ed25519Cosigner], quorum: str) -> str:
    return "".join([f"log {log_vkey}\n"]
                   + [f"witness {name} {w.verifier_key()}\n" for name, w in witnesses.items()]
                   + [f"group members {quorum} {' '.join(witnesses)}\n", "quorum members\n"])


def _cosigned_receipt(receipt: str, *cosigners: Ed25519Cosigner) -> str:
    """``receipt`` with its checkpoint cosigned (C2SP tlog-cosignature) by ``cosigners``."""
    proof = parse_tlog_proof(receipt)
    text = proof.signed_checkpoint.split("\n\n", 1)[0] + "\n"
    lines = "".join(cosigner.cosign(text, int(time.time())) for cosigner in cosigners)
    return format_tlog_proof(proof.extra, proof.index, proof.proof_hashes,
                             proof.signed_checkpoint + lines)


def test_verify_with_a_policy_requires_its_quorum_and_names_the_missing_witnesses(files, tmp_path,
                                                                                  materials):
    witnesses = _witness_keys("assoc-a", "assoc-b", "assoc-c")
    policy = tmp_path / "pinned-policy.txt"
    policy.write_text(_policy(materials().verifier_key, witnesses, "2"))
    receipt = files["receipt"].read_text()

    files["receipt"].write_text(_cosigned_receipt(receipt, witnesses["assoc-b"]))
    refused = _run(_argv(files) + ["--policy", str(policy)])
    _failed(refused, "witnesses", "NOT QUORATE: the checkpoint is cosigned by assoc-b",
            "the policy's quorum is 2 of (assoc-a, assoc-b, assoc-c)",
            "missing cosignatures of assoc-a, assoc-c")

    files["receipt"].write_text(_cosigned_receipt(receipt, witnesses["assoc-a"], witnesses["assoc-c"]))
    passed = _run(_argv(files) + ["--policy", str(policy)])
    assert passed.exit_code == 0, passed.output
    assert "✓ witnesses" in passed.output
    assert "cosigned by assoc-a, assoc-c: the policy's quorum (2 of (assoc-a, assoc-b, assoc-c)) " \
           "holds" in passed.output
    # The trust list the registry served names no policy, or another one: a loud warning.
    assert "WARNING: the trust list" in passed.stderr and "serves no witness policy" in passed.stderr
    trust = json.loads(files["trust_list"].read_text())
    trust["log"]["witness_policy"] = "quorum none\n"
    files["trust_list"].write_text(json.dumps(trust))
    warned = _run(_argv(files) + ["--policy", str(policy)])
    assert warned.exit_code == 0 and "serves a witness policy that is not yours" in warned.stderr
    trust["log"]["witness_policy"] = policy.read_text()
    files["trust_list"].write_text(json.dumps(trust))
    same = _run(_argv(files) + ["--policy", str(policy)])
    assert same.exit_code == 0 and "WARNING" not in same.stderr

    # A cosignature that does not verify with the pinned key is no cosignature at all.
    impostor = _witness_keys("assoc-a")["assoc-a"]
    files["receipt"].write_text(_cosigned_receipt(receipt, impostor, witnesses["assoc-c"]))
    _failed(_run(_argv(files) + ["--policy", str(policy)]), "witnesses",
            "missing cosignatures of assoc-a, assoc-b")

    policy.write_text("quorum nobody\n")
    malformed = _run(_argv(files) + ["--policy", str(policy)])
    assert malformed.exit_code == 2 and "not a C2SP tlog-policy" in malformed.output
