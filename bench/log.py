"""Benchmark: inclusion proof generation + verification against logs of 10^3, 10^5 and 10^6 entries.

Run from the repository root: ``python bench/log.py``. For each size it builds an in-memory store
the way the storage layer keeps the tree: every complete subtree hash, and the C2SP tlog-tiles
tiles those hashes form. Leaf hashes are SHA-256 of the index, which is all the tree needs. It
then times, per proof, ``inclusion_proof`` + ``verify_inclusion`` for a few hundred random leaves
and prints the median in milliseconds, answering ``hash_at`` two ways:

* ``inclusion_proof_ms_<size>``: from the stored complete-subtree hashes (one lookup per node);
* ``inclusion_proof_ms_<size>_tiles``: from the tiles only, rebuilding each node from up to 128
  tile hashes as a tiles-only store must (:func:`tech7_tlog.tiles.hash_from_tile`).

A proof has ceil(log2 n) hashes, so the cost should grow like log2 n: the growth line compares
the 10^6 and 10^3 medians with log2(10^6) / log2(10^3) = 2. The goal is at most 1 ms at 10^6.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tech7_tlog.merkle import (
    HashAt,
    inclusion_proof,
    node_hash,
    tree_root,
    verify_inclusion,
)
from tech7_tlog.tiles import hash_from_tile, tile_hashes, tile_span, tiles_for_size

SIZES = {"1e3": 10**3, "1e5": 10**5, "1e6": 10**6}
SAMPLES = 300
GOAL_MS_1E6 = 1.0


def build_levels(size: int) -> list[list[bytes]]:
    """Every complete subtree hash of a log of ``size`` entries, level by level (0: leaf hashes)."""
    levels = [[hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size)]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


def build_tiles(size: int, hash_at: HashAt) -> dict[tuple[int, int], bytes]:
    """The tiles of the tree of ``size``, each at its width for that size, keyed by (level, index)."""
    return {
        (level, index): tile_hashes(level, index, width, hash_at)
        for level, index, width in tiles_for_size(size)
    }


def median_proof_ms(size: int, hash_at: HashAt, leaf_hashes: list[bytes], indices: list[int]) -> float:
    """Median wall time of one inclusion proof generation plus its verification, in milliseconds."""
    root = tree_root(size, hash_at)
    timings = []
    for index in indices:
        start = time.perf_counter()
        proof = inclusion_proof(index, size, hash_at)
        verify_inclusion(leaf_hashes[index], index, size, proof, root)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def main() -> None:
    """Build each store, time the proofs, print ``key=value`` lines."""
    rng = random.Random(9162)
    results: dict[str, float] = {}
    for label, size in SIZES.items():
        build_start = time.perf_counter()
        levels = build_levels(size)

        def direct(level: int, index: int, levels: list[list[bytes]] = levels) -> bytes:
            return levels[level][index]

        tiles = build_tiles(size, direct)

        def from_tiles(level: int, index: int, tiles: dict[tuple[int, int], bytes] = tiles) -> bytes:
            span = tile_span(level, index)
            return hash_from_tile(tiles[(span.tile_level, span.tile_index)], level, index)

        print(f"build_s_{label}={time.perf_counter() - build_start:.2f}", flush=True)
        indices = [rng.randrange(size) for _ in range(SAMPLES)]
        results[label] = median_proof_ms(size, direct, levels[0], indices)
        results[f"{label}_tiles"] = median_proof_ms(size, from_tiles, levels[0], indices)
        print(f"inclusion_proof_ms_{label}={results[label]:.4f}", flush=True)
        print(f"inclusion_proof_ms_{label}_tiles={results[f'{label}_tiles']:.4f}", flush=True)

    expected = math.log2(SIZES["1e6"]) / math.log2(SIZES["1e3"])
    print(f"inclusion_growth_1e6_over_1e3={results['1e6'] / results['1e3']:.2f}")
    print(f"inclusion_growth_1e6_over_1e3_tiles={results['1e6_tiles'] / results['1e3_tiles']:.2f}")
    print(f"inclusion_growth_expected_log2={expected:.2f}")
    met = results["1e6"] <= GOAL_MS_1E6 and results["1e6_tiles"] <= GOAL_MS_1E6
    print(f"inclusion_goal_ms_1e6={GOAL_MS_1E6} met={'yes' if met else 'no'}")


if __name__ == "__main__":
    main()
