"""C2SP tlog-tiles: the log's Merkle tree cut into tiles of 256 hashes, their paths and contents.

C2SP tlog-tiles ("Merkle Tree") defines the n-th tile at level l as the 256 consecutive hashes
``MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])`` for i from 0 to 255: the hashes of
the complete subtrees of height ``8 * l``. A tile is therefore an 8-level slice of the tree; the
levels inside it are rebuilt by hashing its hashes together. The rightmost tile of a level may be
*partial* ("Partial Tiles"): a tree of size s has ``floor(s / 256**l) mod 256`` hashes in its
partial tile at level l, and a partial tile is never hashed into the level above.

In :mod:`tech7_tlog.merkle` terms, ``hash_at(level, index)`` is the complete subtree of height
``level`` whose first leaf is ``index << level``. This module maps such a node onto the tile that
holds it (:func:`tile_span`, :func:`hash_from_tile`), so storage that keeps only tiles can answer
``hash_at``, and computes a tile's contents from ``hash_at`` (:func:`tile_hashes`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tech7_tlog.merkle import HASH_SIZE, HashAt, parent_level

TILE_HEIGHT = 8
"""Tree levels per tile (C2SP tlog-tiles: tiles are subtrees of height 8)."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile, 256 (C2SP tlog-tiles: "Full tiles MUST be exactly 256 hashes wide")."""

MAX_TILE_LEVEL = 63
"""Highest tile level a path may name (C2SP tlog-tiles: "<L> ... between 0 and 63")."""

MAX_ENTRY_SIZE = 0xFFFF
"""Largest entry a bundle can hold: entries are uint16 length-prefixed (C2SP tlog-tiles "Log entries")."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_INNER_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST_ELEMENT = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class TileSpan:
    """Where a complete subtree's hash lives: the run of hashes in one tile that it is the root of.

    The node is the Merkle tree hash of ``tile[start:start + count]`` (``count`` is a power of two,
    at most 128), so any stored version of the tile at least ``start + count`` hashes wide,
    partial or full, can produce it.
    """

    tile_level: int
    tile_index: int
    start: int
    count: int

    @property
    def min_width(self) -> int:
        """The narrowest tile width that contains the whole span."""
        return self.start + self.count


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """The path of a Merkle tree tile, ``tile/<L>/<N>[.p/<W>]`` (C2SP tlog-tiles "Merkle Tree").

    ``index`` is written as zero-padded 3-digit path elements, all but the last prefixed with
    ``x`` (1234067 becomes ``x001/x234/067``), so tiles can be stored as files without a name ever
    being both a file and a directory. ``width`` None or 256 names the full tile; 1 to 255 names
    a partial tile.
    """
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"tile level must be between 0 and {MAX_TILE_LEVEL}, got {level}")
    return f"tile/{level}/{_encode_index(index)}{_width_suffix(width)}"


def entries_path(index: int, width: int | None = None) -> str:
    """The path of an entry bundle, ``tile/entries/<N>[.p/<W>]`` (C2SP tlog-tiles "Log entries").

    ``<N>`` and ``.p/<W>`` mean the same as in :func:`tile_path`: bundle N holds the entries whose
    leaf hashes make up level-0 tile N.
    """
    return f"tile/entries/{_encode_index(index)}{_width_suffix(width)}"


def parse_tile_path(path: str) -> tuple[int, int, int]:
    """Read ``tile/<L>/<N>[.p/<W>]`` back into ``(level, index, width)``, width 256 for a full tile.

    Only the canonical spelling :func:`tile_path` produces is accepted (C2SP tlog-tiles "Merkle
    Tree"): no leading zeroes in L or W, 3-digit elements with ``x`` on all but the last, no
    redundant leading ``x000`` element, L at most 63, W between 1 and 255. Anything else raises
    ValueError saying what is wrong, because tile paths arrive from clients.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise ValueError(f"not a tile path (expected tile/<L>/<N>[.p/<W>]): {path!r}")
    if parts[1] == "entries":
        raise ValueError(f"{path!r} is an entry bundle path, not a Merkle tree tile path")
    level = _parse_decimal(parts[1], "tile level", path)
    if level > MAX_TILE_LEVEL:
        raise ValueError(f"tile level must be at most {MAX_TILE_LEVEL} in {path!r}")
    index, width = _parse_index_and_width(parts[2:], path)
    return level, index, width


def parse_entries_path(path: str) -> tuple[int, int]:
    """Read ``tile/entries/<N>[.p/<W>]`` back into ``(index, width)``, as :func:`parse_tile_path` does."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile" or parts[1] != "entries":
        raise ValueError(f"not an entry bundle path (expected tile/entries/<N>[.p/<W>]): {path!r}")
    return _parse_index_and_width(parts[2:], path)


def tile_width(level: int, index: int, tree_size: int) -> int:
    """How many hashes tile ``(level, index)`` holds in a tree of ``tree_size``: 256, 1-255, or 0 (absent).

    Level l has ``floor(tree_size / 256**l)`` hashes in all (C2SP tlog-tiles "Partial Tiles"),
    filling tiles from the left.
    """
    hashes_at_level = tree_size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, hashes_at_level - index * TILE_WIDTH))


def tiles_for_size(tree_size: int) -> list[tuple[int, int, int]]:
    """Every tile ``(level, index, width)`` of the tree of ``tree_size``, by level then index.

    For example (C2SP tlog-tiles "Partial Tiles") a tree of 70,000 entries has 273 full level-0
    tiles and a partial one of width 112, a full level-1 tile and a partial one of width 17, and a
    partial level-2 tile of width 1.
    """
    return changed_tiles(0, tree_size)


def changed_tiles(old_size: int, new_size: int) -> list[tuple[int, int, int]]:
    """The tiles ``(level, index, width)`` created or widened by growing from ``old_size`` to ``new_size``.

    These are what storage must write after the append; every other tile of the new tree is
    unchanged. Listed by level, then index.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"a log grows, it cannot go from size {old_size} to {new_size}")
    tiles: list[tuple[int, int, int]] = []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        old_hashes = old_size >> (TILE_HEIGHT * level)
        new_hashes = new_size >> (TILE_HEIGHT * level)
        for index in range(old_hashes // TILE_WIDTH, -(-new_hashes // TILE_WIDTH)):
            width = tile_width(level, index, new_size)
            if width != tile_width(level, index, old_size):
                tiles.append((level, index, width))
        level += 1
    return tiles


def tile_hashes(level: int, index: int, width: int, hash_at: HashAt) -> bytes:
    """The contents of tile ``(level, index)`` at ``width`` hashes: the concatenated 32-byte hashes.

    Hash i of the tile is the complete subtree of height ``8 * level`` starting at leaf
    ``(index * 256 + i) * 256**level`` (C2SP tlog-tiles "Merkle Tree"), i.e.
    ``hash_at(8 * level, index * 256 + i)``.
    """
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"tile level must be between 0 and {MAX_TILE_LEVEL}, got {level}")
    if index < 0:
        raise ValueError(f"tile index must not be negative, got {index}")
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width must be between 1 and {TILE_WIDTH}, got {width}")
    first = index * TILE_WIDTH
    return b"".join(hash_at(TILE_HEIGHT * level, first + i) for i in range(width))


def tile_span(level: int, index: int) -> TileSpan:
    """Map the Merkle node ``hash_at(level, index)`` onto the tile hashes it is the root of.

    This is the mapping of C2SP tlog-tiles "Merkle Tree", read backwards.

    Tile level ``level // 8`` holds the hashes of height ``8 * (level // 8)``; the node covers the
    ``2**(level % 8)`` of them starting at hash ``index << (level % 8)`` of that level, which is
    tile ``(index << (level % 8)) // 256``, position ``(index << (level % 8)) % 256``. Because the
    run's length divides 256 and its start is a multiple of its length, it never crosses a tile
    boundary. When ``level`` is a multiple of 8 the run is the single stored hash.
    """
    if level < 0 or index < 0:
        raise ValueError(f"no Merkle node at level {level}, index {index}")
    tile_level, height_in_tile = divmod(level, TILE_HEIGHT)
    if tile_level > MAX_TILE_LEVEL:
        raise ValueError(f"Merkle level {level} is above the highest tile level")
    first = index << height_in_tile
    tile_index, start = divmod(first, TILE_WIDTH)
    return TileSpan(tile_level=tile_level, tile_index=tile_index, start=start, count=1 << height_in_tile)


def hash_from_tile(tile: bytes, level: int, index: int) -> bytes:
    """The Merkle node ``hash_at(level, index)`` computed from the tile :func:`tile_span` names.

    ``tile`` is that tile's stored contents, full or partial, and must be wide enough to hold the
    span. The span's hashes are combined pairwise ``level % 8`` times (RFC 9162 §2.1.1: a
    complete subtree's hash is the hash of its two halves), at most 127 hash computations.
    """
    span = tile_span(level, index)
    if len(tile) % HASH_SIZE:
        raise ValueError(f"a tile is a whole number of {HASH_SIZE}-byte hashes, got {len(tile)} bytes")
    if len(tile) // HASH_SIZE < span.min_width:
        raise ValueError(
            f"tile {span.tile_level}/{span.tile_index} has {len(tile) // HASH_SIZE} hashes; "
            f"the node at level {level}, index {index} needs {span.min_width}"
        )
    run = bytes(tile[span.start * HASH_SIZE : span.min_width * HASH_SIZE])
    while len(run) > HASH_SIZE:
        run = parent_level(run)
    return run


def entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Encode up to 256 entries as an entry bundle (C2SP tlog-tiles "Log entries").

    Each entry is written as its length, a big-endian uint16, followed by its bytes.
    """
    parts: list[bytes] = []
    for position, entry in enumerate(entries):
        if position >= TILE_WIDTH:
            raise ValueError(f"an entry bundle holds at most {TILE_WIDTH} entries")
        if len(entry) > MAX_ENTRY_SIZE:
            raise ValueError(
                f"entry {position} is {len(entry)} bytes; bundle entries are at most {MAX_ENTRY_SIZE}"
            )
        parts.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(parts)


def parse_entry_bundle(bundle: bytes) -> list[bytes]:
    """Decode an entry bundle into its entries, rejecting truncated data or more than 256 entries."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(bundle):
        if len(entries) == TILE_WIDTH:
            raise ValueError(f"entry bundle holds more than {TILE_WIDTH} entries")
        if offset + 2 > len(bundle):
            raise ValueError(f"entry bundle is truncated in the length of entry {len(entries)}")
        size = int.from_bytes(bundle[offset : offset + 2], "big")
        offset += 2
        if offset + size > len(bundle):
            raise ValueError(f"entry bundle is truncated in entry {len(entries)}")
        entries.append(bytes(bundle[offset : offset + size]))
        offset += size
    return entries


def _encode_index(index: int) -> str:
    """Write a tile index as 3-digit path elements, all but the last prefixed with ``x``."""
    if index < 0:
        raise ValueError(f"tile index must not be negative, got {index}")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    elements = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{e}" for e in elements[:-1]] + [elements[-1]])


def _width_suffix(width: int | None) -> str:
    """``.p/<W>`` for a partial tile, nothing for a full one."""
    if width is None or width == TILE_WIDTH:
        return ""
    if not 1 <= width < TILE_WIDTH:
        raise ValueError(f"tile width must be between 1 and {TILE_WIDTH}, got {width}")
    return f".p/{width}"


def _parse_decimal(text: str, what: str, path: str) -> int:
    """An ASCII decimal with no leading zeroes, as tile paths spell L and W."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"{what} must be an ASCII decimal without leading zeroes, not {text!r}, in {path!r}")
    return int(text)


def _parse_index_and_width(elements: list[str], path: str) -> tuple[int, int]:
    """Parse the ``<N>[.p/<W>]`` tail of a tile or entry bundle path."""
    width = TILE_WIDTH
    if len(elements) >= 2 and elements[-2].endswith(".p"):
        width = _parse_decimal(elements[-1], "partial tile width", path)
        if not 1 <= width < TILE_WIDTH:
            raise ValueError(f"partial tile width must be 1 to {TILE_WIDTH - 1}, not {width}, in {path!r}")
        elements = elements[:-2] + [elements[-2].removesuffix(".p")]
    *inner, last = elements
    for element in inner:
        if not _INNER_ELEMENT.fullmatch(element):
            raise ValueError(f"tile index element {element!r} must be 'x' and 3 digits in {path!r}")
    if not _LAST_ELEMENT.fullmatch(last):
        raise ValueError(f"last tile index element {last!r} must be 3 digits in {path!r}")
    if inner and inner[0] == "x000":
        raise ValueError(f"tile index has a redundant leading x000 element in {path!r}")
    index = int("".join(element.removeprefix("x") for element in inner) + last)
    return index, width
