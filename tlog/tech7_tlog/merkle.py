"""RFC 9162 §2.1 Merkle Hash Trees with SHA-256: tree hashes, inclusion and consistency proofs.

The log never holds the whole tree in memory. Its storage keeps the hashes of *complete* subtrees
(perfect binary trees of ``2**level`` leaves starting at a multiple of ``2**level``), which is what
C2SP tlog-tiles publishes, and hands them to this module through a ``hash_at(level, index)``
callable returning the hash of the complete subtree of height ``level`` whose first leaf is
``index << level``. ``hash_at(0, i)`` is the leaf hash of entry ``i``.

Every tree hash the RFC definitions ask for, ``MTH(D[a:b])``, is either such a complete subtree or,
on the right edge of the tree, a run of them: the range ``[a, b)`` splits along the binary digits
of ``b - a`` into complete subtrees of decreasing size, and folding those from the right rebuilds
the RFC's recursive split (§2.1.1), because the RFC always splits at the largest power of two
smaller than the range. So the root, an inclusion proof and a consistency proof each cost
O(log n) ``hash_at`` calls and O(log n) hash computations, whatever the tree size.

Generation (§2.1.3.1, §2.1.4.1) and verification (§2.1.3.2, §2.1.4.2) are written independently:
the verifiers follow the RFC's numbered steps and never call the generators.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

HASH_SIZE = 32
"""Bytes in a SHA-256 hash, the only hash this log uses (C2SP tlog-tiles: "SHA-256")."""

HashAt = Callable[[int, int], bytes]
"""``hash_at(level, index)``: the hash of the complete subtree over leaves ``index << level`` to
``((index + 1) << level) - 1``."""

EMPTY_TREE_HASH = hashlib.sha256(b"").digest()
"""MTH({}) = HASH(), the root of the empty tree (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A Merkle proof, root or tree size failed verification; the message says which step failed."""


def leaf_hash(leaf: bytes) -> bytes:
    """Hash a log entry into a leaf: MTH({d(0)}) = HASH(0x00 || d(0)) (RFC 9162 §2.1.1).

    The 0x00 prefix keeps leaf hashes and interior node hashes in separate domains, so an interior
    node can never be passed off as an entry (second-preimage resistance).
    """
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child subtree hashes into their parent: HASH(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def parent_level(hashes: bytes) -> bytes:
    """Hash a run of concatenated sibling hashes up one level, each pair into HASH(0x01 || left || right).

    ``hashes`` holds an even number of 32-byte hashes, the left child of each pair at an even
    position (RFC 9162 §2.1.1 for a complete subtree: its hash is the hash of its two halves).
    Because the two children of a node are adjacent, each pair is hashed straight from one
    64-byte slice, which is about three times faster than splitting the run into hashes and
    calling :func:`node_hash`; rebuilding nodes from tiles spends most of its time here.
    """
    pair = 2 * HASH_SIZE
    if len(hashes) % pair:
        raise ValueError(f"a run of sibling pairs is a multiple of {pair} bytes, got {len(hashes)}")
    return b"".join(
        [hashlib.sha256(_NODE_PREFIX + hashes[i : i + pair]).digest() for i in range(0, len(hashes), pair)]
    )


def merkle_tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of a list of entries, computed literally from the definition in RFC 9162 §2.1.1.

    MTH({}) = HASH(); MTH({d(0)}) = HASH(0x00 || d(0)); for n > 1, with k the largest power of two
    smaller than n, MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])).

    It hashes every entry, so it is meant for tests and small trees; the log itself uses
    :func:`tree_root` over stored subtree hashes.
    """
    n = len(leaves)
    if n == 0:
        return EMPTY_TREE_HASH
    if n == 1:
        return leaf_hash(leaves[0])
    k = _largest_power_of_two_below(n)
    return node_hash(merkle_tree_hash(leaves[:k]), merkle_tree_hash(leaves[k:]))


def root_from_hashes(subtree_hashes: Sequence[bytes]) -> bytes:
    """Combine the complete subtrees that make up a range, given largest (leftmost) first, into its MTH.

    For a range whose size has binary digits 2**a > 2**b > ... the RFC 9162 §2.1.1 split takes
    the complete 2**a subtree on the left and recurses on the rest, so the range hash is
    HASH(0x01 || h_a || HASH(0x01 || h_b || ...)): a fold from the right. An empty list is the
    empty tree.
    """
    if not subtree_hashes:
        return EMPTY_TREE_HASH
    root = subtree_hashes[-1]
    for left in reversed(subtree_hashes[:-1]):
        root = node_hash(left, root)
    return root


def tree_root(tree_size: int, hash_at: HashAt) -> bytes:
    """MTH(D[tree_size]) from stored complete-subtree hashes (RFC 9162 §2.1.1), in O(log n) calls.

    The tree of size n is the complete subtrees given by the binary digits of n, one per set bit,
    combined by :func:`root_from_hashes`.
    """
    if tree_size < 0:
        raise ValueError(f"tree size must not be negative, got {tree_size}")
    return _range_hash(0, tree_size, hash_at)


def inclusion_proof(index: int, tree_size: int, hash_at: HashAt) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of leaf ``index`` in a tree of ``tree_size`` (RFC 9162 §2.1.3.1).

    The RFC defines, for n > 1 and k the largest power of two smaller than n::

        PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])       if m < k
        PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])   if m >= k

    with PATH(0, {d(0)}) = {}. This walks that recursion from the root down, narrowing the range
    that holds leaf m and collecting the hash of the half it leaves behind, then returns them
    leaf-sibling first, as the RFC's concatenation orders them. A left half is always a complete
    subtree (one ``hash_at`` call). A right half is complete too, except while the range still
    reaches the right edge of the tree, where it is a run of complete subtrees; that happens for
    at most one half, so the proof costs at most about 2·log2(n) ``hash_at`` calls.

    Raises ValueError if ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is not in a tree of size {tree_size}")
    siblings_top_down: list[bytes] = []
    lo, hi = 0, tree_size  # the range [lo, hi) that still holds leaf `index`
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            siblings_top_down.append(_range_hash(lo + k, hi, hash_at))
            hi = lo + k
        else:
            siblings_top_down.append(_range_hash(lo, lo + k, hash_at))
            lo = lo + k
    siblings_top_down.reverse()
    return siblings_top_down


def consistency_proof(first: int, second: int, hash_at: HashAt) -> list[bytes]:
    """PROOF(m, D[n]), the consistency proof from tree size ``first`` to ``second`` (RFC 9162 §2.1.4.1).

    The RFC defines PROOF(m, D[n]) = SUBPROOF(m, D[n], true), where SUBPROOF(m, D[m], true) = {},
    SUBPROOF(m, D[m], false) = {MTH(D[m])}, and for m < n, with k the largest power of two
    smaller than n::

        SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])              if m <= k
        SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])      if m > k

    As for :func:`inclusion_proof`, this walks the recursion from the root, collecting the hash of
    each half it leaves behind, and ends at the subtree D[lo:first] the old tree shares with the new
    one; that subtree's own hash is part of the proof unless it is the whole old tree (b still true),
    whose root the verifier already has. Only a right half that reaches the tree's right edge is
    not a complete subtree, so the proof costs O(log n) ``hash_at`` calls.

    A proof from size 0 or to the same size is empty: there is nothing to prove (§2.1.4.1 defines
    PROOF(m, D[n]) for 0 < m < n). Raises ValueError unless 0 <= first <= second.
    """
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from tree size {first} to tree size {second}")
    if first == 0 or first == second:
        return []
    proof_top_down: list[bytes] = []
    lo, hi = 0, second  # the range D[lo:hi] the recursion is in; D[lo:first] is its old part
    whole_old_tree = True  # the RFC's flag b: is D[lo:first] the whole old tree?
    while first < hi:
        k = _largest_power_of_two_below(hi - lo)
        if first - lo <= k:
            proof_top_down.append(_range_hash(lo + k, hi, hash_at))
            hi = lo + k
        else:
            proof_top_down.append(_range_hash(lo, lo + k, hash_at))
            lo = lo + k
            whole_old_tree = False
    if not whole_old_tree:
        # first == hi here and [lo, hi) was reached as a left half, so it is complete.
        proof_top_down.append(_range_hash(lo, hi, hash_at))
    proof_top_down.reverse()
    return proof_top_down


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` and ``root`` (RFC 9162 §2.1.3.2).

    Returns None when the proof verifies; raises :class:`ProofError` naming the failed step
    otherwise. The steps below are the RFC's, numbered as there.
    """
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root hash", root)
    for position, p in enumerate(proof):
        _check_hash(f"inclusion proof hash {position}", p)
    if index < 0:
        raise ProofError(f"leaf index {index} is negative")
    # 1. If leaf_index is greater than or equal to tree_size, fail.
    if index >= tree_size:
        raise ProofError(f"leaf index {index} is not in a tree of size {tree_size}")
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, tree_size - 1
    # 3. Set r to hash.
    r = leaf_hash
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError(f"inclusion proof has more hashes than a tree of size {tree_size} needs")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = node_hash(p, r)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            #     LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set r to HASH(0x01 || r || p).
        else:
            r = node_hash(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and the
    #    root_hash are equal, then the log has proven the inclusion of hash. Otherwise, fail.
    if sn != 0:
        raise ProofError(f"inclusion proof has fewer hashes than a tree of size {tree_size} needs")
    if not hmac.compare_digest(r, root):
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of the tree of size {tree_size}"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``second``, ``second_root``) extends the tree (``first``, ``first_root``).

    RFC 9162 §2.1.4.2 gives the algorithm for 0 < first < second; the steps below are the RFC's,
    numbered as there. Outside that range nothing needs proving and the proof must be empty: a tree
    is consistent with itself only if the roots are equal, and the empty tree (whose root must be
    MTH({}) = HASH()) is a prefix of every tree. A smaller second tree is never consistent.

    Returns None when the proof verifies; raises :class:`ProofError` naming the failure otherwise.
    """
    _check_hash("first root hash", first_root)
    _check_hash("second root hash", second_root)
    for position, c in enumerate(proof):
        _check_hash(f"consistency proof hash {position}", c)
    if first < 0 or second < first:
        raise ProofError(f"tree size {second} cannot extend tree size {first}")
    if first == second:
        if proof:
            raise ProofError("a consistency proof between trees of the same size must be empty")
        if not hmac.compare_digest(first_root, second_root):
            raise ProofError(f"two different roots for the same tree size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        if not hmac.compare_digest(first_root, EMPTY_TREE_HASH):
            raise ProofError("the root of the empty tree must be MTH({}) = SHA-256 of the empty string")
        return

    path = list(proof)
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not path:
        raise ProofError(f"empty consistency proof from tree size {first} to {second}")
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError(
                f"consistency proof has more hashes than tree sizes {first} and {second} need"
            )
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).
            fr = node_hash(c, fr)
            # ii. Set sr to HASH(0x01 || c || sr).
            sr = node_hash(c, sr)
            # iii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            #      LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set sr to HASH(0x01 || sr || c).
        else:
            sr = node_hash(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify that fr equals first_hash, sr equals second_hash and sn is 0; otherwise fail.
    if sn != 0:
        raise ProofError(f"consistency proof has fewer hashes than tree sizes {first} and {second} need")
    if not hmac.compare_digest(fr, first_root):
        raise ProofError(f"consistency proof does not lead to the root of the tree of size {first}")
    if not hmac.compare_digest(sr, second_root):
        raise ProofError(f"consistency proof does not lead to the root of the tree of size {second}")


def _largest_power_of_two_below(n: int) -> int:
    """The RFC 9162 §2.1.1 split point k: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_hash(start: int, end: int, hash_at: HashAt) -> bytes:
    """MTH(D[start:end]) for a range whose start is aligned to the largest power of two within its size.

    Every range the proof recursions visit has that property (it starts at a sum of larger powers
    of two), so it splits along the binary digits of its size into complete subtrees, each one
    ``hash_at`` call, which :func:`root_from_hashes` combines.
    """
    subtrees: list[bytes] = []
    position, remaining = start, end - start
    while remaining:
        level = remaining.bit_length() - 1
        subtrees.append(hash_at(level, position >> level))
        position += 1 << level
        remaining -= 1 << level
    return root_from_hashes(subtrees)


def _check_hash(what: str, value: bytes) -> None:
    """Reject anything that is not a SHA-256 hash before it enters a proof computation."""
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes")
