"""C2SP tlog-policy: which logs and witnesses to trust, and how many witnesses must agree.

A policy file is lines (C2SP tlog-policy "Policy file syntax and structure")::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> <k|any|all> <member>...
    quorum <name>

A checkpoint is valid under a policy when one of its logs signed it and its verified witness
cosignatures satisfy the quorum: a witness is satisfied by its cosignature, a group when at
least k of its members are, ``none`` always (C2SP tlog-policy "What is a policy?").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from tech7_tlog.cosignature import (
    CosignatureVerifier,
    parse_cosigner_key,
    verify_cosignatures,
)
from tech7_tlog.note import (
    Checkpoint,
    NoteError,
    Verifier,
    _raw_public_key,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    split_note,
)

NONE = "none"
"""The predefined name of the empty quorum; it may not be a group member (C2SP tlog-policy "What is a policy?")."""

_WHITESPACE = re.compile(r"[ \t]+")
_THRESHOLD = re.compile(r"[1-9][0-9]*")
# 0x09 (tab), 0x0A (newline), 0x20-0x7E and 0x80-0xFF only (C2SP tlog-policy "Character set").
_FORBIDDEN_OCTETS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")


class PolicyError(ValueError):
    """A policy file breaks the C2SP tlog-policy syntax or structure; the message names the line."""


@dataclass(frozen=True)
class PolicyLog:
    """A ``log`` line: the log's note verifier (its key name is the log's origin) and optional URL."""

    verifier: Verifier
    vkey: str
    url: str | None


@dataclass(frozen=True)
class PolicyWitness:
    """A ``witness`` line: its name in the policy, its cosignature verifier and optional URL."""

    name: str
    verifier: CosignatureVerifier
    vkey: str
    url: str | None


@dataclass(frozen=True)
class PolicyGroup:
    """A ``group`` line: satisfied when at least ``threshold`` of its ``members`` are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed tlog-policy: the logs, the witnesses and groups by name, and the quorum's name."""

    logs: tuple[PolicyLog, ...]
    witnesses: dict[str, PolicyWitness]
    groups: dict[str, PolicyGroup]
    quorum: str

    def satisfied_by(self, cosigners: AbstractSet[str]) -> bool:
        """Whether witnesses named ``cosigners`` (policy names, cosignatures verified) make the quorum."""
        return self._satisfied(self.quorum, cosigners)

    def cosigners(self, note: str | bytes) -> set[str]:
        """The policy names of the witnesses whose cosignatures on ``note`` verify.

        Raises :class:`~tech7_tlog.note.NoteError` if a known witness's cosignature fails.
        """
        verified = verify_cosignatures(note, [w.verifier for w in self.witnesses.values()])
        return {name for name, w in self.witnesses.items() if (w.verifier.name, w.verifier.key_id) in verified}

    def verify(self, note: str | bytes) -> tuple[Checkpoint, set[str]]:
        """Check ``note`` is signed by one of the policy's logs; its checkpoint and its cosigners.

        Whether the cosigners make the quorum is :meth:`satisfied_by`'s to say, so that a caller
        can report the witnesses that are missing. Raises :class:`~tech7_tlog.note.NoteError`.
        """
        text, _ = split_note(note)
        checkpoint = parse_checkpoint(text)
        # The key name of a log's vkey is its origin (C2SP tlog-policy "Defining a log"): a key of
        # another policy log does not vouch for this origin.
        open_note(note, [log.verifier for log in self.logs if log.verifier.name == checkpoint.origin])
        return checkpoint, self.cosigners(note)

    def _satisfied(self, name: str, cosigners: AbstractSet[str]) -> bool:
        if name == NONE:
            return True
        group = self.groups.get(name)
        if group is None:
            return name in cosigners
        return sum(self._satisfied(member, cosigners) for member in group.members) >= group.threshold


def parse_policy(data: str | bytes) -> Policy:
    """Read a tlog-policy file strictly (C2SP tlog-policy "Policy file syntax and structure").

    Lines end in a newline; items are separated by spaces and tabs; ``#`` starts a comment line
    and empty lines are allowed. Log keys are vkeys of type 0x01, witness keys of type 0x04;
    two logs or two witnesses with the same public key are refused. Witnesses and groups share
    one namespace, in which ``none`` is predefined; a group or the quorum names only what earlier
    lines define; a group lists n >= 1 distinct members and a threshold 1 <= k <= n (``any`` is 1,
    ``all`` is n). There is exactly one quorum line. Raises :class:`PolicyError`.
    """
    raw = data.encode() if isinstance(data, str) else data
    if _FORBIDDEN_OCTETS.search(raw):
        raise PolicyError("a policy file holds no control characters but tab and newline")
    if raw and not raw.endswith(b"\n"):
        raise PolicyError("every policy line ends in a newline")
    # Octets with the high bit set are opaque: surrogateescape keeps names exact octet strings.
    text = raw.decode("utf-8", errors="surrogateescape")
    logs: list[PolicyLog] = []
    witnesses: dict[str, PolicyWitness] = {}
    groups: dict[str, PolicyGroup] = {}
    quorum: str | None = None
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        items = _WHITESPACE.split(line.strip(" \t"))
        if items == [""] or items[0].startswith("#"):
            continue
        keyword, args = items[0], items[1:]
        try:
            if keyword == "log":
                logs.append(_log(args, logs))
            elif keyword == "witness":
                witness = _witness(args, witnesses, groups)
                witnesses[witness.name] = witness
            elif keyword == "group":
                group = _group(args, witnesses, groups)
                groups[group.name] = group
            elif keyword == "quorum":
                if quorum is not None:
                    raise PolicyError("a policy has exactly one quorum line")
                if len(args) != 1:
                    raise PolicyError("a quorum line is 'quorum <name>'")
                if args[0] != NONE and args[0] not in witnesses and args[0] not in groups:
                    raise PolicyError(f"quorum {args[0]!r} is not a witness or group defined above")
                quorum = args[0]
            else:
                raise PolicyError(f"unknown keyword {keyword!r}")
        except (PolicyError, NoteError) as exc:
            raise PolicyError(f"policy line {number}: {exc}") from exc
    if quorum is None:
        raise PolicyError("a policy has exactly one quorum line, and this one has none")
    return Policy(logs=tuple(logs), witnesses=witnesses, groups=groups, quorum=quorum)


def _log(args: list[str], logs: Iterable[PolicyLog]) -> PolicyLog:
    if len(args) not in (1, 2):
        raise PolicyError("a log line is 'log <vkey> [<url>]'")
    verifier = parse_verifier_key(args[0])
    if any(_raw_public_key(log.verifier.public_key) == _raw_public_key(verifier.public_key) for log in logs):
        raise PolicyError("two log lines have the same public key")
    return PolicyLog(verifier=verifier, vkey=args[0], url=args[1] if len(args) == 2 else None)


def _witness(
    args: list[str], witnesses: dict[str, PolicyWitness], groups: dict[str, PolicyGroup]
) -> PolicyWitness:
    if len(args) not in (2, 3):
        raise PolicyError("a witness line is 'witness <name> <vkey> [<url>]'")
    name = args[0]
    _check_new_name(name, witnesses, groups)
    verifier = parse_cosigner_key(args[1])
    if any(_raw_public_key(w.verifier.public_key) == _raw_public_key(verifier.public_key) for w in witnesses.values()):
        raise PolicyError("two witness lines have the same public key")
    return PolicyWitness(name=name, verifier=verifier, vkey=args[1], url=args[2] if len(args) == 3 else None)


def _group(
    args: list[str], witnesses: dict[str, PolicyWitness], groups: dict[str, PolicyGroup]
) -> PolicyGroup:
    if len(args) < 3:
        raise PolicyError("a group line is 'group <name> <k|any|all> <member>...' with one member or more")
    name, threshold_text, members = args[0], args[1], tuple(args[2:])
    _check_new_name(name, witnesses, groups)
    for member in members:
        if member not in witnesses and member not in groups:
            raise PolicyError(f"group member {member!r} is not a witness or group defined above")
    if len(set(members)) != len(members):
        raise PolicyError("a group lists each member once")
    if threshold_text == "any":
        threshold = 1
    elif threshold_text == "all":
        threshold = len(members)
    elif _THRESHOLD.fullmatch(threshold_text) and int(threshold_text) <= len(members):
        threshold = int(threshold_text)
    else:
        raise PolicyError(
            f"a group threshold is any, all or a decimal k with 1 <= k <= {len(members)}, got {threshold_text!r}"
        )
    return PolicyGroup(name=name, threshold=threshold, members=members)


def _check_new_name(name: str, witnesses: dict[str, PolicyWitness], groups: dict[str, PolicyGroup]) -> None:
    """Witnesses and groups share one namespace, in which ``none`` is already taken."""
    if name == NONE or name in witnesses or name in groups:
        raise PolicyError(f"the name {name!r} is already defined")

