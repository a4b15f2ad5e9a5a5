"""A log monitor's check: re-hash every entry the log serves and require the tree the signed
checkpoint commits to (:func:`check_log`)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Sequence

from tech7_tlog.merkle import HASH_SIZE, leaf_hash, parent_level, tree_root
from tech7_tlog.note import Checkpoint
from tech7_tlog.tiles import TILE_WIDTH, tile_hashes, tiles_for_size

from tech7_audit.verification import (
    LOG,
    VerificationFailure,
)


def check_log(leaves: Sequence[bytes], checkpoint: Checkpoint,
              tile: Callable[[int, int, int], bytes]) -> str:
    """Re-hash every entry of the log and require the tree to be the one ``checkpoint`` signs.

    ``leaves`` are all ``checkpoint.tree_size`` entries (from the entry bundles); ``tile(level,
    index, width)`` returns the log's stored hash tile (C2SP tlog-tiles). The root recomputed from
    the leaves must be the checkpoint's, and every tile must hold exactly the hashes recomputed
    from the leaves: the level-0 tiles are the leaf hashes themselves (RFC 9162 §2.1.1). Raises
    :class:`VerificationFailure` (step ``log``) with ``LOG REWRITTEN`` and the first difference.
    """
    if len(leaves) != checkpoint.tree_size:
        raise VerificationFailure(LOG, f"the log served {len(leaves)} entries for a tree of size "
                                       f"{checkpoint.tree_size}")
    levels = [b"".join(leaf_hash(leaf) for leaf in leaves)]
    while len(levels[-1]) >= 2 * HASH_SIZE:
        below = levels[-1]
        levels.append(parent_level(below[:len(below) // (2 * HASH_SIZE) * 2 * HASH_SIZE]))

    def hash_at(level: int, index: int) -> bytes:
        return levels[level][index * HASH_SIZE:(index + 1) * HASH_SIZE]

    for level, index, width in tiles_for_size(checkpoint.tree_size):
        expected = tile_hashes(level, index, width, hash_at)
        served = tile(level, index, width)
        if served != expected:
            raise VerificationFailure(LOG, "LOG REWRITTEN: " + _tile_difference(
                level, index, expected, served, leaves))
    root = tree_root(checkpoint.tree_size, hash_at)
    if root != checkpoint.root_hash:
        raise VerificationFailure(LOG, f"LOG REWRITTEN: the {checkpoint.tree_size} entries "
                                       f"re-hash to root {base64.b64encode(root).decode()}, the "
                                       f"signed checkpoint says "
                                       f"{base64.b64encode(checkpoint.root_hash).decode()}")
    return (f"all {checkpoint.tree_size} entries re-hash to the signed root, and every tile "
            f"matches them")


def _tile_difference(level: int, index: int, expected: bytes, served: bytes,
                     leaves: Sequence[bytes]) -> str:
    first = next((i for i in range(0, len(expected), HASH_SIZE)
                  if expected[i:i + HASH_SIZE] != served[i:i + HASH_SIZE]), 0) // HASH_SIZE
    if level == 0:
        entry = index * TILE_WIDTH + first
        what = ""
        with contextlib.suppress(ValueError, AttributeError, UnicodeDecodeError):
            what = f" ({json.loads(leaves[entry]).get('subject')})"
        return (f"entry {entry}{what} re-hashes to "
                f"{base64.b64encode(expected[first * HASH_SIZE:(first + 1) * HASH_SIZE]).decode()}"
                f" but the log's tile 0/{index} says "
                f"{base64.b64encode(served[first * HASH_SIZE:(first + 1) * HASH_SIZE]).decode()}"
                f": its leaf was changed after it was logged")
    return f"hash {first} of tile {level}/{index} is not the hash of the entries below it"
