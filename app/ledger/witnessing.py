"""Collecting the witnesses' cosignatures on the log's checkpoints (C2SP tlog-witness, the log's side).

The policy file named by ``TECH7_WITNESS_POLICY`` (C2SP tlog-policy) lists the witnesses and
their submission URLs. A round brings every witness to the log's latest checkpoint: it sends
``add-checkpoint`` with the consistency proof from the size the witness last cosigned, learns the
witness's size from a 409 and tries again, and stores each cosignature once it has verified it
with the witness's key from the policy. Publishing never waits for a round: a witness that is
down delays its cosignature, never a version.

Each process runs rounds on one background thread: every ``interval`` seconds, and at once when
a transaction that appended to the log commits in this process (:meth:`Witnessing.wake`), so a
new checkpoint is cosigned within a round trip to the witnesses rather than an interval.

Rounds run under a lease in the database, so exactly one process, across workers and hosts on
one database, talks to the witnesses at a time; two submitters would otherwise trade 409s and
send proofs from stale sizes. A round releases the lease when it ends, so the worker that
committed the next entry can start the next round at once; a process that dies holding it loses
it when it expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from tech7_audit.times import isoformat
from tech7_tlog.cosignature import verify_cosignatures
from tech7_tlog.note import NoteError
from tech7_tlog.policy import Policy, PolicyWitness, parse_policy
from tech7_tlog.witness import TLOG_SIZE_CONTENT_TYPE, add_cosignatures, format_add_checkpoint, parse_tlog_size

from app.core.db import Database, utcnow
from app.core.errors import NotFound
from app.ledger.models import WitnessCosignature, WitnessLease, WitnessState
from app.ledger.service import TransparencyLog

LEASE_NAME = "witness-submitter"
_ATTEMPTS = 3  # a first try, and retries after learning the witness's size from a 409
_QUORUM_SEARCH = 50  # cosigned sizes a receipt looks through for a quorate checkpoint
_BUSY_RETRY = 0.1  # seconds between tries for the lease after a wake, while another round runs
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessReport:
    """What operators see of one witness: the size it last cosigned, its last error and when."""

    witness: str
    tree_size: int
    last_error: str | None
    updated_at: datetime | None

    def as_json(self) -> dict:
        """As served by ``/v1/log/witnesses`` and in ``/readyz``."""
        return {"witness": self.witness, "tree_size": self.tree_size, "last_error": self.last_error,
                "updated_at": isoformat(self.updated_at) if self.updated_at else None}


def load_policy_text(path: str) -> str | None:
    """The text of the policy file at ``path``, or None when no path is configured."""
    if not path:
        return None
    return Path(path).read_text(encoding="utf-8", errors="surrogateescape")


class Witnessing:
    """The log's witnesses: submitting checkpoints to them, and the cosignatures they gave."""

    def __init__(self, db: Database, log: TransparencyLog, policy_text: str, *, timeout: float,
                 lease_seconds: float = 60.0, holder: str | None = None):
        """``policy_text`` is a C2SP tlog-policy; a malformed one raises
        :class:`~tech7_tlog.policy.PolicyError`, so the registry refuses to start on it."""
        self.db = db
        self.log = log
        self.policy_text = policy_text
        self.policy: Policy = parse_policy(policy_text.encode("utf-8", errors="surrogateescape"))
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._background: threading.Thread | None = None
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._starting = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------

    def cosigned_checkpoint(self) -> str:
        """The log's latest checkpoint with every cosignature stored for it appended."""
        note = self.log.checkpoint()
        return self._with_cosignatures(note, int(note.split("\n", 2)[1]))

    def _with_cosignatures(self, note: str, tree_size: int) -> str:
        with self.db.sessions() as session:
            lines = session.scalars(sa.select(WitnessCosignature.signature_line)
                                    .where(WitnessCosignature.tree_size == tree_size)
                                    .order_by(WitnessCosignature.witness)).all()
        return note + "".join(lines)

    def receipt_checkpoint(self, index: int) -> tuple[str, bool]:
        """The checkpoint a receipt for entry ``index`` carries, and whether it is quorate.

        The newest checkpoint holding the entry whose cosignatures, verified again with the
        current policy's keys, make its quorum; where there is none (yet), the newest checkpoint
        with the cosignatures it has, marked as not quorate. Only the newest
        :data:`_QUORUM_SEARCH` cosigned sizes are tried.
        """
        with self.db.sessions() as session:
            sizes = session.scalars(sa.select(WitnessCosignature.tree_size).distinct()
                                    .where(WitnessCosignature.tree_size > index)
                                    .order_by(WitnessCosignature.tree_size.desc())
                                    .limit(_QUORUM_SEARCH)).all()
        for tree_size in sizes:
            note = self._with_cosignatures(self.log.checkpoint(tree_size), tree_size)
            if self.policy.satisfied_by(self.policy.cosigners(note)):
                return note, True
        note = self.cosigned_checkpoint()
        return note, self.policy.satisfied_by(self.policy.cosigners(note))

    def reports(self) -> list[WitnessReport]:
        """Every policy witness's state, in policy order; one never reached reads size 0."""
        with self.db.sessions() as session:
            states = {s.witness: s for s in session.scalars(sa.select(WitnessState))}
        return [WitnessReport(name, states[name].tree_size, states[name].last_error,
                              states[name].updated_at) if name in states
                else WitnessReport(name, 0, None, None) for name in self.policy.witnesses]

    # -- submitting ------------------------------------------------------------------------------

    def submit(self) -> bool:
        """One round: bring every witness to the latest checkpoint; False if another process holds
        the lease (and so does the round itself)."""
        if not self._take_lease():
            return False
        try:
            try:
                note = self.log.checkpoint()
            except NotFound:
                return True  # an empty log has nothing to witness yet
            tree_size = int(note.split("\n", 2)[1])
            for witness in self.policy.witnesses.values():
                self._bring_forward(witness, note, tree_size)
            return True
        finally:
            self._release_lease()

    def _bring_forward(self, witness: PolicyWitness, note: str, tree_size: int) -> None:
        with self.db.sessions() as session:
            state = session.get(WitnessState, witness.name)
            known = state.tree_size if state else 0
            have = session.get(WitnessCosignature, (tree_size, witness.name)) is not None
        if have:
            return
        if witness.url is None:
            self._record(witness.name, known, "the policy gives this witness no URL")
            return
        for _ in range(_ATTEMPTS):
            if known > tree_size:
                self._record(witness.name, known, f"the witness has cosigned size {known}, beyond "
                             f"the log's {tree_size}: it saw another history, or this one rolled back")
                return
            proof = self.log.consistency_proof(known, tree_size) if 0 < known < tree_size else []
            try:
                status, content_type, body = self._post(witness.url, format_add_checkpoint(known, proof, note))
            except OSError as exc:
                self._record(witness.name, known, f"unreachable: {exc}")
                return
            if status == 409 and content_type.startswith(TLOG_SIZE_CONTENT_TYPE):
                try:
                    known = parse_tlog_size(body)
                except NoteError as exc:
                    self._record(witness.name, known, f"a 409 without a size: {exc}")
                    return
                continue
            if status != 200:
                self._record(witness.name, known, f"HTTP {status}: {body[:300].decode(errors='replace')}")
                return
            self._store(witness, note, tree_size, known, body)
            return
        self._record(witness.name, known, f"the witness's size kept changing over {_ATTEMPTS} tries")

    def _store(self, witness: PolicyWitness, note: str, tree_size: int, known: int, body: bytes) -> None:
        """Verify the witness's answer with its policy key and keep its cosignature lines."""
        try:
            add_cosignatures(note, body)  # the answer is signature lines, or this raises
            lines = [line for line in body.decode().splitlines(keepends=True)
                     if verify_cosignatures(note + line, [witness.verifier])]
            if not lines:
                raise NoteError("the answer holds no cosignature of this witness's policy key")
        except NoteError as exc:
            self._record(witness.name, known, f"an answer that does not verify: {exc}")
            return
        with self.db.write() as session:
            if session.get(WitnessCosignature, (tree_size, witness.name)) is None:
                session.add(WitnessCosignature(tree_size=tree_size, witness=witness.name,
                                               signature_line="".join(lines), created_at=utcnow()))
            self._set_state(session, witness.name, tree_size, None)

    def _record(self, name: str, tree_size: int, error: str) -> None:
        _log.warning("witness %s: %s", name, error)
        with self.db.write() as session:
            self._set_state(session, name, tree_size, error)

    @staticmethod
    def _set_state(session, name: str, tree_size: int, error: str | None) -> None:
        state = session.get(WitnessState, name)
        if state is None:
            session.add(WitnessState(witness=name, tree_size=tree_size, last_error=error,
                                     updated_at=utcnow()))
        else:
            state.tree_size, state.last_error, state.updated_at = tree_size, error, utcnow()

    def _post(self, url: str, body: bytes) -> tuple[int, str, bytes]:
        request = urllib.request.Request(url.rstrip("/") + "/add-checkpoint", data=body, method="POST")
        try:  # the URL is the operator's, from the policy file
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers.get("Content-Type", ""), error.read()

    def _take_lease(self) -> bool:
        """Take or renew the lease: a conditional UPDATE, atomic on SQLite and PostgreSQL alike."""
        now = utcnow()
        until = now + timedelta(seconds=self.lease_seconds)
        try:
            with self.db.write() as session:
                taken = cast(sa.CursorResult, session.execute(
                    sa.update(WitnessLease)
                    .where(WitnessLease.name == LEASE_NAME,
                           sa.or_(WitnessLease.holder == self.holder, WitnessLease.expires_at < now))
                    .values(holder=self.holder, expires_at=until)))
                if taken.rowcount:
                    return True
                if session.get(WitnessLease, LEASE_NAME) is not None:
                    return False
                session.add(WitnessLease(name=LEASE_NAME, holder=self.holder, expires_at=until))
        except IntegrityError:
            return False  # another process inserted it first
        return True

    def _release_lease(self) -> None:
        """Let the lease expire now if this process holds it, so any process may run the next round."""
        with self.db.write() as session:
            session.execute(sa.update(WitnessLease)
                            .where(WitnessLease.name == LEASE_NAME, WitnessLease.holder == self.holder)
                            .values(expires_at=utcnow() - timedelta(seconds=1)))

    # -- in the background -----------------------------------------------------------------------

    def start_background(self, interval: float) -> None:
        """Run rounds on a daemon thread of this process, every ``interval`` seconds, until
        :meth:`stop_background`. A failing round is logged and retried at the next one."""
        with self._starting:  # called by every request, maybe on several threads at once
            if self._background is None or not self._background.is_alive():
                self._background = threading.Thread(target=self._loop, args=(interval,),
                                                    name="witness-submitter", daemon=True)
                self._background.start()

    def wake(self) -> None:
        """Start a round now rather than at the next interval; returns at once.

        Called after every commit that appended to the log (:attr:`TransparencyLog.appended`),
        so it never waits on a witness, the database or the lease.
        """
        self._woken.set()

    def _loop(self, interval: float) -> None:
        retry_until = 0.0
        while not self._stop.is_set():
            if self._woken.is_set():
                self._woken.clear()
                retry_until = time.monotonic() + interval
            try:
                done = self.submit()
            except Exception:  # noqa: BLE001 - the next round retries; publishing goes on
                _log.exception("witness round failed")
                done = True
            if not done and time.monotonic() < retry_until:
                # Another process holds the lease, in a round that may have read the checkpoint
                # before this commit: try again shortly (a round releases the lease when it
                # ends), for one interval at most, then at the interval as always.
                self._stop.wait(_BUSY_RETRY)
                continue
            retry_until = 0.0
            self._woken.wait(interval)

    def stop_background(self, timeout: float = 30.0) -> None:
        """End the background rounds after the current one (within ``timeout`` seconds)."""
        self._stop.set()
        self._woken.set()
        if self._background is not None:
            self._background.join(timeout)
