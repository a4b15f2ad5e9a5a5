"""RFC 9162 §2.1 Merkle tree hashes, proof generation from stored subtrees, and proof verification.

The fixed vectors are the 8-leaf reference tree that Certificate Transparency implementations test
against (as published in transparency-dev/merkle's proof tests, themselves from RFC 6962 tooling).
The properties compare generated proofs with a literal transcription of the RFC's recursive
definitions and check that every corruption of a proof is caught.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tech7_tlog.merkle import (
    EMPTY_TREE_HASH,
    HashAt,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_tree_hash,
    node_hash,
    parent_level,
    root_from_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# ROOTS[n - 1] is MTH(LEAVES[:n]).
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# (zero-based leaf index, tree size, proof); the published vectors number leaves from 1.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (first size, second size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _subtree_store(leaves: list[bytes]) -> HashAt:
    """A hash_at over every complete subtree of ``leaves``, as tile storage would provide.

    It fails loudly when asked for anything but a complete subtree, so a generator that needed
    an incomplete node would fail these tests.
    """
    levels = [[leaf_hash(leaf) for leaf in leaves]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)])

    def hash_at(level: int, index: int) -> bytes:
        assert 0 <= level < len(levels) and 0 <= index < len(levels[level]), f"no complete subtree ({level}, {index})"
        return levels[level][index]

    return hash_at


def _counting(hash_at: HashAt) -> tuple[HashAt, list[tuple[int, int]]]:
    """Wrap ``hash_at`` to record every request."""
    calls: list[tuple[int, int]] = []

    def counted(level: int, index: int) -> bytes:
        calls.append((level, index))
        return hash_at(level, index)

    return counted, calls


def _split(n: int) -> int:
    """The RFC's k: the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) transcribed from RFC 9162 §2.1.3.1, recursion and all."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _rfc_path(m, leaves[:k]) + [merkle_tree_hash(leaves[k:])]
    return _rfc_path(m - k, leaves[k:]) + [merkle_tree_hash(leaves[:k])]


def _rfc_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) transcribed from RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [merkle_tree_hash(leaves)]
    k = _split(n)
    if m <= k:
        return _rfc_subproof(m, leaves[:k], whole) + [merkle_tree_hash(leaves[k:])]
    return _rfc_subproof(m - k, leaves[k:], False) + [merkle_tree_hash(leaves[:k])]


def _hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def _flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


# --- hashes ------------------------------------------------------------------------------------


def test_leaf_and_node_hashes_are_domain_separated_sha256() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_TREE_HASH
    assert merkle_tree_hash([]) == EMPTY_TREE_HASH


def test_parent_level_hashes_adjacent_pairs() -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES]
    assert parent_level(b"".join(hashes)) == b"".join(node_hash(hashes[i], hashes[i + 1]) for i in range(0, 8, 2))
    assert parent_level(parent_level(parent_level(b"".join(hashes)))) == ROOTS[7]
    assert parent_level(b"") == b""
    with pytest.raises(ValueError, match="multiple of 64"):
        parent_level(b"".join(hashes[:3]))


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_reference_tree(size: int) -> None:
    assert merkle_tree_hash(LEAVES[:size]) == ROOTS[size - 1]
    assert tree_root(size, _subtree_store(LEAVES)) == ROOTS[size - 1]


def test_tree_root_of_the_empty_tree_and_root_from_hashes() -> None:
    hash_at = _subtree_store(LEAVES)
    assert tree_root(0, hash_at) == EMPTY_TREE_HASH
    assert root_from_hashes([]) == EMPTY_TREE_HASH
    # Size 7 = 4 + 2 + 1: the complete subtrees, largest first, fold into the root.
    assert root_from_hashes([hash_at(2, 0), hash_at(1, 2), hash_at(0, 6)]) == ROOTS[6]
    with pytest.raises(ValueError):
        tree_root(-1, hash_at)


# --- inclusion proofs ----------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proof_vectors(index: int, size: int, expected: list[str]) -> None:
    proof = inclusion_proof(index, size, _subtree_store(LEAVES))
    assert proof == _hexes(expected)
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("index", "size", "expected"), [v for v in INCLUSION_VECTORS if v[2]])
def test_corrupted_inclusion_vectors_fail(index: int, size: int, expected: list[str]) -> None:
    proof, root, leaf = _hexes(expected), ROOTS[size - 1], leaf_hash(LEAVES[index])
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, leaf_hash(b"WrongLeaf"), proof),
        (index, size, EMPTY_TREE_HASH, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, proof + [root]),
        (index, size, root, leaf, [root] + proof),
        (index, size, root, leaf, proof[:-1]),
        (index, size, root, leaf, proof[:1] + [SOME_HASH] + proof[1:]),
    ]
    probes += [(index, size, root, leaf, proof[:i] + [_flip(p, 3)] + proof[i + 1 :]) for i, p in enumerate(proof)]
    for probe_index, probe_size, probe_root, probe_leaf, probe_proof in probes:
        with pytest.raises(ProofError):
            verify_inclusion(probe_leaf, probe_index, probe_size, probe_proof, probe_root)


def test_inclusion_proof_length_must_match_the_tree() -> None:
    proof = inclusion_proof(5, 8, _subtree_store(LEAVES))
    leaf = leaf_hash(LEAVES[5])
    with pytest.raises(ProofError, match="more hashes than a tree of size 8 needs"):
        verify_inclusion(leaf, 5, 8, proof + [SOME_HASH], ROOTS[7])
    with pytest.raises(ProofError, match="fewer hashes than a tree of size 8 needs"):
        verify_inclusion(leaf, 5, 8, proof[:-1], ROOTS[7])
    with pytest.raises(ProofError, match="more hashes"):
        verify_consistency(6, 8, ROOTS[5], ROOTS[7], consistency_proof(6, 8, _subtree_store(LEAVES)) + [SOME_HASH])


def test_inclusion_of_the_only_leaf() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(b"", 0, 1, [], leaf)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(leaf, 0, 1, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (8, 8), (-1, 8)])
def test_inclusion_out_of_range(index: int, size: int) -> None:
    with pytest.raises(ValueError, match=r"not in a tree|negative"):
        inclusion_proof(index, size, _subtree_store(LEAVES))
    with pytest.raises(ProofError):
        verify_inclusion(SOME_HASH, index, size, [], EMPTY_TREE_HASH)


def test_inclusion_rejects_proof_hashes_of_the_wrong_size() -> None:
    proof = inclusion_proof(1, 8, _subtree_store(LEAVES))
    with pytest.raises(ProofError, match="inclusion proof hash 1 must be 32 bytes"):
        verify_inclusion(leaf_hash(LEAVES[1]), 1, 8, [proof[0], proof[1][:31], proof[2]], ROOTS[7])


# --- consistency proofs --------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proof_vectors(first: int, second: int, expected: list[str]) -> None:
    proof = consistency_proof(first, second, _subtree_store(LEAVES))
    assert proof == _hexes(expected)
    verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


@pytest.mark.parametrize(("first", "second", "expected"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_corrupted_consistency_vectors_fail(first: int, second: int, expected: list[str]) -> None:
    proof, root1, root2 = _hexes(expected), ROOTS[first - 1], ROOTS[second - 1]
    probes = [
        (first - 1, second, root1, root2, proof),
        (first + 1, second, root1, root2, proof),
        (first ^ 2, second, root1, root2, proof),
        (first, second * 2, root1, root2, proof),
        (first, second // 2, root1, root2, proof),
        (first, second, SOME_HASH, root2, proof),
        (first, second, root1, SOME_HASH, proof),
        (first, second, root2, root1, proof),
        (first, second, root1, root2, []),
        (first, second, root1, root2, proof + [root1]),
        (first, second, root1, root2, proof + [root2]),
        (first, second, root1, root2, [root1] + proof),
        (first, second, root1, root2, [root2] + proof),
        (first, second, root1, root2, [proof[0]] + proof),
        (first, second, root1, root2, proof[:-1]),
    ]
    probes += [(first, second, root1, root2, proof[:i] + [_flip(p, 4)] + proof[i + 1 :]) for i, p in enumerate(proof)]
    for probe_first, probe_second, probe_root1, probe_root2, probe_proof in probes:
        with pytest.raises(ProofError):
            verify_consistency(probe_first, probe_second, probe_root1, probe_root2, probe_proof)


def test_consistency_edge_cases() -> None:
    # Sizes that are consistent without a proof.
    verify_consistency(0, 0, EMPTY_TREE_HASH, EMPTY_TREE_HASH, [])
    verify_consistency(0, 5, EMPTY_TREE_HASH, ROOTS[4], [])
    verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    assert consistency_proof(0, 5, _subtree_store(LEAVES)) == []
    assert consistency_proof(5, 5, _subtree_store(LEAVES)) == []
    # Same size, different roots: a fork.
    with pytest.raises(ProofError, match="two different roots"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    # The empty tree has exactly one root.
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, SOME_HASH, ROOTS[4], [])
    # Nothing to prove, so a proof is an error.
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(0, 5, EMPTY_TREE_HASH, ROOTS[4], [EMPTY_TREE_HASH])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[2], [ROOTS[2]])
    # Time travel.
    with pytest.raises(ProofError, match="cannot extend"):
        verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])
    with pytest.raises(ProofError, match="cannot extend"):
        verify_consistency(-1, 1, ROOTS[1], ROOTS[0], [])
    with pytest.raises(ValueError):
        consistency_proof(2, 1, _subtree_store(LEAVES))
    with pytest.raises(ValueError):
        consistency_proof(-1, 1, _subtree_store(LEAVES))
    # A real step with no proof.
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])
    with pytest.raises(ProofError, match="32 bytes"):
        verify_consistency(1, 2, ROOTS[0], b"short", [LEAVES[1]])


# --- cost: generation asks only for complete subtrees, O(log n) of them --------------------------


def _fake_hash_at(tree_size: int) -> tuple[HashAt, list[tuple[int, int]]]:
    """A hash_at for a huge tree that returns a stand-in hash but checks each request is a complete subtree."""

    def hash_at(level: int, index: int) -> bytes:
        assert (index + 1) << level <= tree_size, f"({level}, {index}) is not complete in a tree of {tree_size}"
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    return _counting(hash_at)


@pytest.mark.parametrize("tree_size", [2**40 - 1, 2**40, 2**40 + 1, 1_234_567_891_011, 10**6])
def test_generation_costs_logarithmic_hash_at_calls(tree_size: int) -> None:
    bound = 2 * tree_size.bit_length() + 2
    for index in [0, 1, tree_size // 3, tree_size - 2, tree_size - 1]:
        hash_at, calls = _fake_hash_at(tree_size)
        proof = inclusion_proof(index, tree_size, hash_at)
        assert len(proof) <= tree_size.bit_length()
        assert len(calls) <= bound, (index, len(calls))
    for first in [1, 2, tree_size // 3, tree_size - 1]:
        hash_at, calls = _fake_hash_at(tree_size)
        consistency_proof(first, tree_size, hash_at)
        assert len(calls) <= bound, (first, len(calls))
    hash_at, calls = _fake_hash_at(tree_size)
    tree_root(tree_size, hash_at)
    assert len(calls) == bin(tree_size).count("1")


# --- properties over random trees -----------------------------------------------------------------


def _leaves(size: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(size)]


def _must_fail(check: Callable[[list[bytes]], None], proof: list[bytes], data: st.DataObject) -> None:
    """Every single-bit flip, dropped hash and inserted hash must make ``check`` raise ProofError."""
    for i, p in enumerate(proof):
        bit = data.draw(st.integers(0, 255), label=f"bit flipped in hash {i}")
        with pytest.raises(ProofError):
            check(proof[:i] + [_flip(p, bit)] + proof[i + 1 :])
        with pytest.raises(ProofError):
            check(proof[:i] + proof[i + 1 :])
    extra = data.draw(st.binary(min_size=32, max_size=32), label="inserted hash")
    position = data.draw(st.integers(0, len(proof)), label="insert position")
    with pytest.raises(ProofError):
        check(proof[:position] + [extra] + proof[position:])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.integers(1, 300))
def test_every_inclusion_proof_verifies_and_resists_tampering(data: st.DataObject, size: int) -> None:
    leaves = _leaves(size)
    index = data.draw(st.integers(0, size - 1), label="index")
    root = merkle_tree_hash(leaves)
    proof = inclusion_proof(index, size, _subtree_store(leaves))
    assert proof == _rfc_path(index, leaves)
    leaf = leaf_hash(leaves[index])
    verify_inclusion(leaf, index, size, proof, root)

    def check(candidate: list[bytes]) -> None:
        verify_inclusion(leaf, index, size, candidate, root)

    _must_fail(check, proof, data)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other index") if size > 1 else None
    if other is not None:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, root)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), second=st.integers(1, 300))
def test_every_consistency_proof_verifies_and_resists_tampering(data: st.DataObject, second: int) -> None:
    leaves = _leaves(second)
    first = data.draw(st.integers(0, second), label="first")
    first_root, second_root = merkle_tree_hash(leaves[:first]), merkle_tree_hash(leaves)
    proof = consistency_proof(first, second, _subtree_store(leaves))
    if 0 < first < second:
        assert proof == _rfc_subproof(first, leaves, True)
    else:
        assert proof == []
    verify_consistency(first, second, first_root, second_root, proof)

    def check(candidate: list[bytes]) -> None:
        verify_consistency(first, second, first_root, second_root, candidate)

    _must_fail(check, proof, data)
    if 0 < first < second:
        with pytest.raises(ProofError):
            verify_consistency(first, second, leaf_hash(b"not the root"), second_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(first, second, first_root, leaf_hash(b"not the root"), proof)
