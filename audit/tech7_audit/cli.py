"""``tech7-audit``: verify a registry document offline, fetch what that needs, monitor the log.

* ``verify`` runs :func:`~tech7_audit.pipeline.audit_document` on files only — no network —
  and prints each step with its reason. Exit status 0 when every step passes, 1 when one fails,
  2 on a usage error.
* ``fetch`` downloads a version or an export, its manifest and receipt, the trust anchors, the
  trust list and the log key (and a consistency proof from the auditor's last checkpoint), saves
  c2pa settings for those anchors in both forms (split per ``trust_kind``, and the older single
  list), then prints the ``verify`` command to run. It talks to the given URL's host only, and
  writes its folder whole or not at all.
* ``history`` fetches every version of a document, newest back to 1, with their manifests and
  receipts, and verifies them all (:func:`~tech7_audit.history.audit_history`): each version as
  ``verify`` would, each link naming its parent exactly, every checkpoint consistent with the
  log's current one. A broken link is named.
* ``monitor`` follows the log: it checks the new checkpoint against the pinned log key, its
  consistency with the stored checkpoint, and re-hashes every entry through the C2SP tiles. It
  keeps the new checkpoint only when all of that holds.

Every download goes through :mod:`tech7_audit.fetching`, which talks to the given URL's origin
only; this module holds the commands and what they print.

A witness policy (C2SP tlog-policy) is trust, like the log key: a registry that has been taken
over could serve ``quorum none``, or witnesses of its own. So ``verify --policy`` and ``monitor
--policy`` take the auditor's pinned file, refuse a checkpoint without its quorum of
cosignatures, and warn loudly when the policy the registry serves (``/v1/trust``) is not it.
``fetch`` saves the served policy as ``witness-policy.txt``, for the auditor to compare and pin.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Sequence
from email.message import Message
from pathlib import Path
from typing import Any

import click
from tech7_tlog.note import NoteError, parse_verifier_key
from tech7_tlog.policy import Policy, PolicyError, parse_policy

from tech7_audit.fetching import (
    FAILED,
    Fetcher,
    FetchError,
    all_entries,
    fetch_versions,
    link_targets,
    tile_reader,
    trust_anchors,
)
from tech7_audit.history import audit_history
from tech7_audit.manifests import legacy_trust_settings, trust_settings, verifier_settings
from tech7_audit.monitor import check_log
from tech7_audit.pipeline import audit_document
from tech7_audit.verification import (
    CHECKPOINT,
    CONSISTENCY,
    LOG,
    WITNESSES,
    Step,
    VerificationFailure,
    check_consistency,
    check_quorum,
    read_receipt,
    verify_checkpoint,
)

USAGE_ERROR = 2


def main() -> None:
    """Entry point of the ``tech7-audit`` console script."""
    audit(prog_name="tech7-audit")


@click.group()
def audit() -> None:
    """Verify TECH7 registry documents and watch its transparency log."""


# --- verify -------------------------------------------------------------------------------------


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def _json_object(path: str | None, option: str) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(Path(path).read_bytes())
    except (UnicodeDecodeError, ValueError) as error:
        raise click.BadParameter(f"{path} is not a JSON file: {error}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{path} does not hold a JSON object", param_hint=option)
    return value


_FILE = click.Path(exists=True, dir_okay=False)
POLICY_FILE = "witness-policy.txt"
"""Where ``fetch`` saves the witness policy ``/v1/trust`` serves."""


def _pinned_policy(path: str | None) -> tuple[Policy, bytes] | tuple[None, None]:
    """The auditor's pinned policy file, parsed strictly (C2SP tlog-policy), and its bytes."""
    if path is None:
        return None, None
    raw = Path(path).read_bytes()
    try:
        return parse_policy(raw), raw
    except PolicyError as error:
        raise click.BadParameter(f"{path} is not a C2SP tlog-policy: {error}",
                                 param_hint="--policy") from None


def _warn_if_policy_differs(pinned: bytes, served: Any, where: str) -> None:
    """Warn loudly, on stderr, when the policy the registry serves is not the pinned one."""
    if served is None:
        served_text = None
    elif isinstance(served, str):
        served_text = served.encode("utf-8", errors="surrogateescape")
    else:
        served_text = b""
    if served_text == pinned:
        return
    what = "serves no witness policy" if served is None else "serves a witness policy that is not yours"
    click.echo(f"WARNING: {where} {what}. Your pinned --policy is the one applied; find out why "
               "the registry's changed before you trust anything it says about its witnesses.",
               err=True)


def _served_policy(trust_list: Any) -> Any:
    """``log.witness_policy`` of a ``/v1/trust`` body (None when absent)."""
    log = trust_list.get("log") if isinstance(trust_list, dict) else None
    return log.get("witness_policy") if isinstance(log, dict) else None


@audit.command()
@click.argument("file", type=_FILE)
@click.option("--manifest", type=_FILE, help="The sidecar C2PA manifest (omit for a PDF).")
@click.option("--trust", "anchors", type=_FILE, required=True,
              help="The trust anchors (PEM), from /v1/trust/anchors.pem.")
@click.option("--log-key", type=_FILE, required=True,
              help="A file holding the log's C2SP verifier key (GET /v1/trust: log.verifier_key).")
@click.option("--receipt", type=_FILE, required=True,
              help="The version's receipt (c2sp.org/tlog-proof), from …/versions/N/receipt.")
@click.option("--checkpoint", type=_FILE,
              help="Your last checkpoint of the log (a signed note): the log must extend it.")
@click.option("--consistency", type=_FILE,
              help="Consistency proof (JSON from /v1/log/proofs/consistency) between your "
                   "checkpoint and the receipt's.")
@click.option("--trust-list", type=_FILE,
              help="The trust list (GET /v1/trust as JSON): check certificates and revocations.")
@click.option("--policy", "policy_file", type=_FILE,
              help="Your pinned witness policy (C2SP tlog-policy): the receipt's checkpoint must "
                   "carry its quorum of witness cosignatures.")
@click.option("--media-type", help="Read FILE as this media type (default: from the record).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(file: str, manifest: str | None, anchors: str, log_key: str, receipt: str,
           checkpoint: str | None, consistency: str | None, trust_list: str | None,
           policy_file: str | None, media_type: str | None, as_json: bool) -> None:
    """Prove, offline, that FILE is what the registry published and logged."""
    if consistency is not None and checkpoint is None:
        raise click.UsageError("--consistency proves a step from your --checkpoint: give both.")
    policy, pinned = _pinned_policy(policy_file)
    anchors_pem = Path(anchors).read_bytes()
    if b"-----BEGIN CERTIFICATE-----" not in anchors_pem:
        raise click.BadParameter(f"{anchors} holds no PEM certificate", param_hint="--trust")
    verifier_key = _verifier_key(Path(log_key).read_bytes(), "--log-key")
    trust = _json_object(trust_list, "--trust-list")
    if pinned is not None and trust is not None:
        _warn_if_policy_differs(pinned, _served_policy(trust), f"the trust list {trust_list}")
    report = audit_document(
        Path(file).read_bytes(), _read(manifest), Path(receipt).read_bytes(),
        trust_anchors_pem=anchors_pem,
        verifier_key=verifier_key, media_type=media_type, filename=file,
        last_checkpoint=_read(checkpoint),
        consistency_proof=_json_object(consistency, "--consistency"),
        trust_list=trust, policy=policy)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        _print_steps(report.steps)
        if report.ok:
            record = report.record
            assert record is not None  # a verified file was found in the log
            whose = f" for {record['association']}" if record.get("association") else ""
            click.echo(f"VERIFIED: {file} is {record['subject']}, signed by "
                       f"{record['signer']}{whose} at {report.time}, entry {report.index} of the "
                       f"log's tree of size {report.checkpoint_size}.")
        else:
            failure = report.failure
            assert failure is not None  # not verified: a step failed
            click.echo(f"NOT VERIFIED: {failure.name} failed: {failure.detail}")
    sys.exit(0 if report.ok else FAILED)


def _verifier_key(raw: bytes, option: str) -> str:
    try:
        text = raw.decode("utf-8").strip()
        parse_verifier_key(text)
    except (UnicodeDecodeError, NoteError) as error:
        raise click.BadParameter(f"not a C2SP verifier key: {error}", param_hint=option) from None
    return text


def _marks() -> tuple[str, str]:
    """✓/✗ where the terminal can print them, else OK/FAIL."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "OK  ", "FAIL"
    return "✓", "✗"


def _print_steps(steps: Sequence[Step]) -> None:
    passed, failed = _marks()
    width = max((len(step.name) for step in steps), default=0)
    for step in steps:
        click.echo(f"{passed if step.ok else failed} {step.name:<{width}}  {step.detail}")


# --- fetch ---------------------------------------------------------------------------------------


_EXTENSIONS = {"application/json": "json", "application/pdf": "pdf", "text/csv": "csv"}


@audit.command()
@click.argument("url")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder to write into, new or empty (default: named after the version or "
                   "export).")
@click.option("--checkpoint", type=_FILE,
              help="Your last checkpoint: also fetch the consistency proof from it.")
def fetch(url: str, out: str | None, checkpoint: str | None) -> None:
    """Download what `verify` needs for the version or export at URL, from URL's host only.

    Everything is written into a temporary folder beside the target and renamed to it at the
    end, so a fetch that fails leaves nothing behind.
    """
    fetcher = Fetcher(url)
    body, headers = fetcher.get(url)
    version_url = fetcher.url(headers.get("Content-Location") or url, url)
    target = Path(out or _folder_name(version_url))
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise FetchError(f"{target} exists and is not an empty folder; give another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        lines = _fetch_into(staging, target, fetcher, url, version_url, body, headers,
                            checkpoint)
        # rename(2) replaces an empty folder, so an empty --out is taken over whole.
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for line in lines:
        click.echo(line)


def _fetch_into(folder: Path, target: Path, fetcher: Fetcher, url: str, version_url: str,
                body: bytes, headers: Message, checkpoint: str | None) -> list[str]:
    """Write into ``folder`` the file at ``url`` (``body`` and ``headers``, served as
    ``version_url``) and what verifying it needs; return the lines to print, which name the
    files as they will be in ``target``."""
    links = link_targets(headers)
    extension = _EXTENSIONS.get(headers.get_content_type(), "bin")
    written = {"file": _write(folder / f"document.{extension}", body)}
    if "c2pa-manifest" in links:
        written["manifest"] = _write(folder / "manifest.c2pa",
                                     fetcher.get(links["c2pa-manifest"], url)[0])
    receipt, _ = fetcher.get(links.get("receipt") or version_url.rstrip("/") + "/receipt", url)
    written["receipt"] = _write(folder / "receipt.tlog", receipt)
    trust_body, _ = fetcher.get("/v1/trust")
    written["trust_list"] = _write(folder / "trust.json", trust_body)
    try:
        verifier_key = json.loads(trust_body)["log"]["verifier_key"]
    except (ValueError, KeyError, TypeError):
        raise FetchError(f"{fetcher.base}/v1/trust names no log verifier key") from None
    written["log_key"] = _write(folder / "log.vkey", (verifier_key + "\n").encode())
    served_policy = _served_policy(json.loads(trust_body))
    if isinstance(served_policy, str):
        written["policy"] = _write(folder / POLICY_FILE,
                                   served_policy.encode("utf-8", errors="surrogateescape"))
    try:
        parsed = read_receipt(receipt)
        receipt_checkpoint = verify_checkpoint(parsed.signed_checkpoint, verifier_key)
    except VerificationFailure as failure:
        raise FetchError(f"the receipt from {fetcher.base} does not verify: {failure.reason}") \
            from None
    _write(folder / "checkpoint.txt", parsed.signed_checkpoint.encode())
    anchors = trust_anchors(fetcher, parsed.record.get("association"))
    written["trust"] = _write(folder / "anchors.pem", anchors)
    _write_c2pa_settings(folder, anchors, f"{fetcher.base}/v1/trust/anchors.pem")

    def final(name: str) -> str:
        return str(target / written[name].name)

    command = ["tech7-audit", "verify", final("file")]
    if "manifest" in written:
        command += ["--manifest", final("manifest")]
    command += ["--trust", final("trust"), "--log-key", final("log_key"),
                "--receipt", final("receipt"), "--trust-list", final("trust_list")]
    if "policy" in written:
        command += ["--policy", final("policy")]
    if checkpoint is not None:
        command += ["--checkpoint", checkpoint]
        try:
            last = verify_checkpoint(Path(checkpoint).read_bytes(), verifier_key)
        except VerificationFailure as failure:
            raise FetchError(f"{checkpoint} is not a checkpoint of this log: {failure.reason}") \
                from None
        if last.tree_size != receipt_checkpoint.tree_size:
            first, second = sorted((last.tree_size, receipt_checkpoint.tree_size))
            proof, _ = fetcher.get(f"/v1/log/proofs/consistency?first={first}&second={second}")
            written["consistency"] = _write(folder / "consistency.json", proof)
            command += ["--consistency", final("consistency")]
    policy_line = ([f"The registry's witness policy is in {final('policy')}: compare it with one "
                    "obtained another way (from the associations) before you rely on it."]
                   if "policy" in written else [])
    return [f"Fetched {version_url} and what verifying it needs into {target}/.",
            f"The receipt's checkpoint (tree size {receipt_checkpoint.tree_size}) is in "
            f"{target / 'checkpoint.txt'}: keep it as your last checkpoint once verified.",
            f"For another C2PA verifier: {target / 'c2pa-settings.json'} (c2pa-rs 0.91.3 and "
            f"later, trust.anchors per trust_kind) or {target / 'c2pa-settings-legacy.json'} "
            "(older releases, trust.trust_anchors).",
            *policy_line,
            "Verify offline with:",
            "  " + shlex.join(command)]


def _write_c2pa_settings(folder: Path, anchors: bytes, trust_uri: str) -> None:
    """Save ready c2pa settings that trust ``anchors``, in both forms: the split
    ``trust.anchors`` (one entry per ``trust_kind``, which c2pa-rs 0.92 needs to trust a
    timestamp) and the older single ``trust.trust_anchors``."""
    for name, trust in (("c2pa-settings.json", trust_settings(anchors, trust_uri=trust_uri)),
                        ("c2pa-settings-legacy.json", legacy_trust_settings(anchors))):
        _write(folder / name, (json.dumps(verifier_settings(trust), indent=2) + "\n").encode())


def _folder_name(version_url: str) -> str:
    parts = [p for p in urllib.parse.urlsplit(version_url).path.split("/") if p]
    if len(parts) >= 2 and parts[-2] == "versions":
        return f"{parts[-3]}-v{parts[-1]}"
    if len(parts) >= 2 and parts[-2] == "exports":
        return f"export-{parts[-1]}"
    return parts[-1] if parts else "document"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- history -------------------------------------------------------------------------------------


@audit.command()
@click.argument("url")
@click.option("--policy", "policy_file", type=_FILE,
              help="Your pinned witness policy (C2SP tlog-policy): the checkpoint that every "
                   "version and link is checked against must carry its quorum of cosignatures.")
def history(url: str, policy_file: str | None) -> None:
    """Fetch and verify every version of the document at URL, newest back to version 1.

    Each version's link to its parent carries an inclusion proof in the checkpoint of its
    signing; all of them are proven consistent with the log's current checkpoint. With
    ``--policy`` that one checkpoint must be witnessed, so the whole chain rests on a quorum.
    """
    policy, pinned = _pinned_policy(policy_file)
    fetcher = Fetcher(url)
    document_url, versions, association = fetch_versions(fetcher, url)
    trust = fetcher.get_json("/v1/trust")
    try:
        verifier_key = trust["log"]["verifier_key"]
    except (KeyError, TypeError):
        raise FetchError(f"{fetcher.base}/v1/trust names no log verifier key") from None
    if pinned is not None:
        _warn_if_policy_differs(pinned, _served_policy(trust), f"{fetcher.base}/v1/trust")
    # Fetched after every receipt, so that it holds all of them.
    checkpoint = fetcher.get("/v1/log/checkpoint")[0]

    def consistency(first: int, second: int) -> dict[str, Any]:
        return fetcher.get_json(f"/v1/log/proofs/consistency?first={first}&second={second}")

    try:
        report = audit_history(versions, signed_checkpoint=checkpoint,
                               consistency_proof=consistency,
                               trust_anchors_pem=trust_anchors(fetcher, association),
                               verifier_key=verifier_key)
    except VerificationFailure as failure:
        raise FetchError(f"the log's checkpoint does not verify: {failure.reason}") from None
    passed, failed = _marks()
    witnessed: Step | None = None
    if policy is not None:
        try:
            witnessed = Step(WITNESSES, True, check_quorum(checkpoint, policy)[0])
        except VerificationFailure as failure:
            witnessed = Step(WITNESSES, False, failure.reason)
    for audited in report.versions:
        steps = [*audited.report.steps, *([audited.link] if audited.link else [])]
        ok = all(step.ok for step in steps)
        click.echo(f"{passed if ok else failed} version {audited.number}")
        for step in steps:
            if not step.ok or step.name == "parent":
                click.echo(f"    {passed if step.ok else failed} {step.name}: {step.detail}")
    if witnessed is not None:
        click.echo(f"{passed if witnessed.ok else failed} {witnessed.name}: {witnessed.detail}")
    if report.ok and (witnessed is None or witnessed.ok):
        click.echo(f"VERIFIED: all {len(report.versions)} versions of {document_url}, each "
                   f"linked to the one before, consistent with the log's tree of size "
                   f"{report.checkpoint_size}.")
    else:
        click.echo("NOT VERIFIED:")
        for problem in report.problems:
            click.echo(f"  {problem}")
        if witnessed is not None and not witnessed.ok:
            click.echo(f"  the log's checkpoint: {witnessed.detail}")
    sys.exit(0 if report.ok and (witnessed is None or witnessed.ok) else FAILED)


# --- monitor -------------------------------------------------------------------------------------


@audit.command()
@click.argument("url")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), required=True,
              help="Folder keeping the pinned log key (log.vkey) and the last checkpoint.")
@click.option("--policy", "policy_file", type=_FILE,
              help="Your pinned witness policy (C2SP tlog-policy): each new checkpoint must "
                   "carry its quorum of witness cosignatures.")
def monitor(url: str, state_dir: str, policy_file: str | None) -> None:
    """Check that the log at URL only grew since the last run, re-hashing every entry."""
    policy, pinned = _pinned_policy(policy_file)
    fetcher = Fetcher(url)
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    key_file, stored_file = state / "log.vkey", state / "checkpoint.txt"
    steps: list[Step] = []
    if key_file.exists():
        verifier_key = _verifier_key(key_file.read_bytes(), "--state")
        steps.append(Step("key", True, f"the pinned log key {verifier_key.split('+')[0]}"))
    trust = fetcher.get_json("/v1/trust") if pinned is not None or not key_file.exists() else None
    if pinned is not None:
        _warn_if_policy_differs(pinned, _served_policy(trust), f"{fetcher.base}/v1/trust")
    if not key_file.exists():
        assert trust is not None  # fetched above whenever no key is pinned
        try:
            verifier_key = _verifier_key(str(trust["log"]["verifier_key"]).encode(), "URL")
        except (KeyError, TypeError):
            raise FetchError(f"{fetcher.base}/v1/trust names no log verifier key") from None
        _write(key_file, (verifier_key + "\n").encode())
        steps.append(Step("key", True, f"trust on first use: pinned the log key {verifier_key} "
                                       f"from {fetcher.base}/v1/trust in {key_file}; compare "
                                       f"it with one obtained another way"))
    note, _ = fetcher.get("/v1/log/checkpoint")
    try:
        checkpoint = verify_checkpoint(note, verifier_key)
        steps.append(Step(CHECKPOINT, True, f"signed by the pinned key, tree size "
                                            f"{checkpoint.tree_size}"))
        if stored_file.exists():
            try:
                stored = verify_checkpoint(stored_file.read_bytes(), verifier_key)
            except VerificationFailure as failure:
                raise VerificationFailure(CONSISTENCY, f"the stored checkpoint {stored_file} "
                                                       f"does not verify: {failure.reason}") \
                    from None
            if checkpoint.tree_size < stored.tree_size:
                raise VerificationFailure(CONSISTENCY, f"LOG REWRITTEN: the log's tree shrank "
                                                       f"from size {stored.tree_size} to "
                                                       f"{checkpoint.tree_size}")
            proof = None
            if checkpoint.tree_size != stored.tree_size:
                proof = fetcher.get_json(f"/v1/log/proofs/consistency?first={stored.tree_size}"
                                         f"&second={checkpoint.tree_size}")
            steps.append(Step(CONSISTENCY, True, check_consistency(
                checkpoint, stored_file.read_bytes(), verifier_key, proof)))
        else:
            steps.append(Step(CONSISTENCY, True, "first run: no earlier checkpoint to compare"))
        if policy is not None:
            steps.append(Step(WITNESSES, True, check_quorum(note, policy)[0]))
        steps.append(Step(LOG, True, check_log(all_entries(fetcher, checkpoint.tree_size),
                                               checkpoint, tile_reader(fetcher))))
    except VerificationFailure as failure:
        steps.append(Step(failure.step, False, failure.reason))
        _print_steps(steps)
        click.echo(f"NOT VERIFIED: {failure.reason} (kept {stored_file} as it was)")
        sys.exit(FAILED)
    _write_atomically(stored_file, note)
    _print_steps(steps)
    click.echo(f"OK: the log at {fetcher.base} has {checkpoint.tree_size} entries and only grew; "
               f"stored its checkpoint in {stored_file}.")


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
