"""C2SP tlog-tiles: tile and entry bundle paths, which tiles a tree has, and tile contents."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tech7_tlog.merkle import (
    HashAt,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_tree_hash,
    node_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from tech7_tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileSpan,
    changed_tiles,
    entries_path,
    entry_bundle,
    hash_from_tile,
    parse_entries_path,
    parse_entry_bundle,
    parse_tile_path,
    tile_hashes,
    tile_path,
    tile_span,
    tile_width,
    tiles_for_size,
)

# --- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ((0, 1234067), "tile/0/x001/x234/067"),  # the example in the spec
        ((0, 0), "tile/0/000"),
        ((2, 999), "tile/2/999"),
        ((1, 1000), "tile/1/x001/000"),
        ((63, 5, 256), "tile/63/005"),
        ((0, 1234067, 112), "tile/0/x001/x234/067.p/112"),
        ((1, 0, 1), "tile/1/000.p/1"),
    ],
)
def test_tile_paths(args: tuple[int, ...], path: str) -> None:
    assert tile_path(*args) == path
    level, index, *width = args
    assert parse_tile_path(path) == (level, index, width[0] if width else TILE_WIDTH)


def test_entries_paths() -> None:
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(5, 3) == "tile/entries/005.p/3"
    assert parse_entries_path("tile/entries/x001/x234/067") == (1234067, TILE_WIDTH)
    assert parse_entries_path("tile/entries/005.p/3") == (5, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [((64, 0), "level"), ((-1, 0), "level"), ((0, -1), "index"), ((0, 0, 0), "width"), ((0, 0, 257), "width")],
)
def test_tile_path_rejects_impossible_tiles(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tile_path(*args)


@settings(max_examples=200, deadline=None)
@given(level=st.integers(0, 63), index=st.integers(0, 2**56), width=st.integers(1, 256))
def test_tile_paths_round_trip(level: int, index: int, width: int) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)
    assert parse_entries_path(entries_path(index, width)) == (index, width)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tile/0/",
        "/tile/0/000",
        "tiles/0/000",
        "tile/0/000/",
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/+1/000",
        "tile/x/000",
        "tile/0/1234067",
        "tile/0/01",
        "tile/0/0001",
        "tile/0/00a",
        "tile/0/x001",
        "tile/0/001/x002",
        "tile/0/x000/001",
        "tile/0/x1234/000",
        "tile/0/y001/000",
        "tile/0/\uff10\uff10\uff11",  # fullwidth digits are not ASCII decimals
        "tile/0/001.p",
        "tile/0/001.p/",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/007",
        "tile/0/001.p/5/6",
        "tile/0/001.q/5",
        "tile/entries/000",
    ],
)
def test_malformed_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match=r"tile|entry bundle"):
        parse_tile_path(path)


@pytest.mark.parametrize("path", ["tile/0/000", "tile/entries", "tile/entries/0", "tile/entries/001.p/300"])
def test_malformed_entries_paths_are_rejected(path: str) -> None:
    with pytest.raises(ValueError):
        parse_entries_path(path)


# --- which tiles a tree has -----------------------------------------------------------------------


def test_tiles_of_the_spec_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    tiles = tiles_for_size(70_000)
    assert [t for t in tiles if t[0] == 0] == [(0, i, 256) for i in range(273)] + [(0, 273, 112)]
    assert [t for t in tiles if t[0] > 0] == [(1, 0, 256), (1, 1, 17), (2, 0, 1)]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1."
    assert tiles_for_size(256) == [(0, 0, 256), (1, 0, 1)]
    assert tiles_for_size(0) == []
    assert tile_width(0, 273, 70_000) == 112
    assert tile_width(0, 274, 70_000) == 0
    assert tile_width(2, 0, 70_000) == 1


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 300_000), min_size=2, max_size=2).map(sorted))
def test_changed_tiles_are_exactly_the_tiles_that_differ(sizes: list[int]) -> None:
    old_size, new_size = sizes
    before = {(level, index): width for level, index, width in tiles_for_size(old_size)}
    after = {(level, index): width for level, index, width in tiles_for_size(new_size)}
    expected = sorted((level, index, width) for (level, index), width in after.items()
                      if before.get((level, index)) != width)
    assert changed_tiles(old_size, new_size) == expected
    assert all(before[key] <= width for key, width in after.items() if key in before)
    with pytest.raises(ValueError):
        changed_tiles(new_size + 1, new_size)


# --- tile contents and the node-to-tile mapping -----------------------------------------------------


def _levels(size: int) -> list[list[bytes]]:
    """Every complete subtree hash of a tree of ``size`` entries, level by level."""
    levels = [[leaf_hash(b"entry %d" % i) for i in range(size)]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)])
    return levels


# 256 * 256 + 300: full tiles at levels 0 and 1, partial tiles at levels 0, 1 and 2.
SIZE = 65_836
LEVELS = _levels(SIZE)


def _direct(level: int, index: int) -> bytes:
    return LEVELS[level][index]


def _tile_store(size: int, hash_at: HashAt) -> dict[tuple[int, int], bytes]:
    """The tiles storage keeps for a tree of ``size``: every tile, at its width for that size."""
    return {(level, index): tile_hashes(level, index, width, hash_at) for level, index, width in tiles_for_size(size)}


TILES = _tile_store(SIZE, _direct)


def _from_tiles(level: int, index: int) -> bytes:
    """hash_at answered from stored tiles only, through the node-to-tile mapping."""
    span = tile_span(level, index)
    return hash_from_tile(TILES[(span.tile_level, span.tile_index)], level, index)


def test_tile_contents_are_the_tree_hashes() -> None:
    assert TILES[(0, 0)] == b"".join(LEVELS[0][:256])
    assert TILES[(0, 257)] == b"".join(LEVELS[0][257 * 256 :])  # partial, width 44
    assert len(TILES[(0, 257)]) == 44 * 32
    # Level-1 tile hashes are the roots of full level-0 tiles: MTH of 256 entries each.
    level1 = TILES[(1, 0)]
    for i in (0, 1, 255):
        entries = [b"entry %d" % j for j in range(i * 256, (i + 1) * 256)]
        assert level1[i * 32 : (i + 1) * 32] == merkle_tree_hash(entries)
    assert len(TILES[(1, 1)]) == 1 * 32  # floor(65_836 / 256) mod 256 = 1
    # The one level-2 hash is the root of the first 65,536 entries.
    assert TILES[(2, 0)] == merkle_tree_hash([b"entry %d" % j for j in range(65_536)])


def test_tile_spans() -> None:
    assert tile_span(0, 1234) == TileSpan(tile_level=0, tile_index=4, start=210, count=1)
    assert tile_span(3, 5) == TileSpan(tile_level=0, tile_index=0, start=40, count=8)
    assert tile_span(8, 300) == TileSpan(tile_level=1, tile_index=1, start=44, count=1)
    assert tile_span(15, 3) == TileSpan(tile_level=1, tile_index=1, start=128, count=128)
    assert tile_span(15, 3).min_width == 256
    with pytest.raises(ValueError):
        tile_span(-1, 0)


def test_every_node_can_be_read_from_tiles() -> None:
    for level in range(len(LEVELS)):
        count = len(LEVELS[level])
        for index in sorted({0, 1, count // 2, count - 2, count - 1} & set(range(count))):
            assert _from_tiles(level, index) == LEVELS[level][index], (level, index)


def test_tile_backed_proofs_verify() -> None:
    root = tree_root(SIZE, _direct)
    assert tree_root(SIZE, _from_tiles) == root
    for index in (0, 255, 256, 65_535, 65_536, SIZE - 1):
        proof = inclusion_proof(index, SIZE, _from_tiles)
        assert proof == inclusion_proof(index, SIZE, _direct)
        verify_inclusion(LEVELS[0][index], index, SIZE, proof, root)
    for first in (1, 256, 300, 65_536, SIZE - 1):
        proof = consistency_proof(first, SIZE, _from_tiles)
        verify_consistency(first, SIZE, tree_root(first, _direct), root, proof)


def test_a_partial_tile_serves_the_nodes_it_covers() -> None:
    # At size 300 the level-0 tile 1 is partial with 44 hashes; its first 32 form a level-5 node.
    partial = tile_hashes(0, 1, tile_width(0, 1, 300), _direct)
    assert hash_from_tile(partial, 5, 8) == LEVELS[5][8]
    with pytest.raises(ValueError, match="needs 64"):
        hash_from_tile(partial, 6, 4)
    with pytest.raises(ValueError, match="whole number"):
        hash_from_tile(partial[:-1], 0, 256)


def test_tile_hashes_rejects_impossible_tiles() -> None:
    for args in [(0, 0, 0), (0, 0, 257), (-1, 0, 1), (64, 0, 1), (0, -1, 1)]:
        with pytest.raises(ValueError):
            tile_hashes(*args, _direct)
    assert TILE_WIDTH == 2**TILE_HEIGHT == 256


# --- entry bundles -----------------------------------------------------------------------------------


@given(entries=st.lists(st.binary(max_size=300), max_size=256))
def test_entry_bundles_round_trip(entries: list[bytes]) -> None:
    assert parse_entry_bundle(entry_bundle(entries)) == entries


def test_entry_bundle_format_and_limits() -> None:
    assert entry_bundle([b"", b"a"]) == b"\x00\x00\x00\x01a"
    with pytest.raises(ValueError, match="truncated"):
        parse_entry_bundle(b"\x00\x02a")
    with pytest.raises(ValueError, match="truncated"):
        parse_entry_bundle(b"\x00")
    with pytest.raises(ValueError, match="at most"):
        entry_bundle([b"x" * 65_536])
    with pytest.raises(ValueError, match="at most 256"):
        entry_bundle([b""] * 257)
    with pytest.raises(ValueError, match="more than 256"):
        parse_entry_bundle(b"\x00\x00" * 257)
