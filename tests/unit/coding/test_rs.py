"""Reed–Solomon: any k of the n shards give back the stripe; bad input gets a typed error."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storenode.coding import kernel
from storenode.coding.errors import (
    CodingError,
    CodingParamsError,
    DuplicateShardError,
    NotEnoughShardsError,
    ShardCorruptError,
    ShardIndexError,
    ShardSizeError,
)
from storenode.coding.merkle import SEGMENT_SIZE, merkle_root
from storenode.coding.rs import ReedSolomon

# Shard lengths: the awkward ones by name, then anything up to 2000 bytes.
SIZES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 1023, 1024, 1025, 1999, 2000]),
    st.integers(0, 2000),
)
SEEDS = st.integers(0, 2**32 - 1)


def make_blocks(seed: int, k: int, size: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(k)]


def as_bytes(views: Sequence[memoryview]) -> list[bytes]:
    return [bytes(v) for v in views]


@st.composite
def codes(draw: st.DrawFn) -> tuple[ReedSolomon, list[bytes]]:
    """A code (mostly small, sometimes up to n=255) and a stripe of k random blocks."""
    n = draw(st.one_of(st.integers(1, 16), st.integers(1, 255)))
    k = draw(st.integers(1, n))
    # Keep big codes short so a run stays fast; small codes get every size.
    size = draw(SIZES if k <= 32 else st.integers(0, 64))
    return ReedSolomon(k, n), make_blocks(draw(SEEDS), k, size)


@pytest.fixture(scope="module")
def gf256() -> Any:
    """GF(2^8) with ISA-L's polynomial 0x11D, from galois (the oracle; ~1.5 s to build)."""
    import galois

    return galois.GF(2**8, irreducible_poly=0x11D, primitive_element=2)


@contextmanager
def gf_backend(backend: kernel.GfBackend) -> Iterator[None]:
    """Run with one GF(2^8) kernel forced, restoring the process-wide choice after."""
    saved = kernel._backend
    kernel._backend = backend
    try:
        yield
    finally:
        kernel._backend = saved


# -- any k of n -----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(code=codes(), data=st.data())
def test_any_k_distinct_shards_in_any_order_recover_the_blocks(
    code: tuple[ReedSolomon, list[bytes]], data: st.DataObject
) -> None:
    rs, blocks = code
    shards = rs.encode(blocks)
    picked = data.draw(st.permutations(range(rs.n)))[: rs.k]

    out = rs.decode(picked, [shards[i] for i in picked])

    assert as_bytes(out) == blocks


@settings(max_examples=100, deadline=None)
@given(code=codes(), data=st.data())
def test_more_than_k_shards_in_any_order_recover_the_blocks(
    code: tuple[ReedSolomon, list[bytes]], data: st.DataObject
) -> None:
    rs, blocks = code
    shards = rs.encode(blocks)
    count = data.draw(st.integers(rs.k, rs.n))
    picked = data.draw(st.permutations(range(rs.n)))[:count]

    out = rs.decode(picked, [bytes(shards[i]) for i in picked])

    assert as_bytes(out) == blocks


@settings(max_examples=100, deadline=None)
@given(code=codes())
def test_first_k_shards_are_the_source_blocks(code: tuple[ReedSolomon, list[bytes]]) -> None:
    rs, blocks = code
    before = list(blocks)

    shards = rs.encode(blocks)

    assert len(shards) == rs.n
    assert as_bytes(shards[: rs.k]) == blocks
    assert {len(s) for s in shards} == {len(blocks[0])}
    assert blocks == before


@settings(max_examples=100, deadline=None)
@given(code=codes(), data=st.data())
def test_stripe_round_trips_through_encode_stripe_and_decode_stripe(
    code: tuple[ReedSolomon, list[bytes]], data: st.DataObject
) -> None:
    rs, blocks = code
    stripe = b"".join(blocks)
    picked = data.draw(st.permutations(range(rs.n)))[: rs.k]

    shards = rs.encode_stripe(stripe)

    assert as_bytes(shards) == as_bytes(rs.encode(blocks))
    assert rs.decode_stripe(picked, [shards[i] for i in picked]) == stripe


@pytest.mark.parametrize(("k", "n"), [(4, 12), (3, 10), (5, 9), (1, 6), (6, 6)])
def test_every_k_subset_of_a_small_code_decodes(k: int, n: int) -> None:
    """MDS: for the default k=4, n=12 any 8 hosts may vanish and the stripe survives."""
    rs = ReedSolomon(k, n)
    blocks = make_blocks(k * 1000 + n, k, 101)
    shards = rs.encode(blocks)

    for picked in itertools.combinations(range(n), k):
        out = rs.decode(picked, [shards[i] for i in picked])
        assert as_bytes(out) == blocks, f"shards {picked} did not decode"


def test_decode_with_every_data_shard_returns_those_bytes() -> None:
    rs = ReedSolomon(4, 12)
    blocks = make_blocks(7, 4, 1025)
    shards = [bytearray(s) for s in rs.encode(blocks)]

    indices = [11, 3, 0, 2, 9, 1]  # every data shard, some parity, out of order
    out = rs.decode(indices, [shards[i] for i in indices])

    assert as_bytes(out) == blocks


def test_large_code_decodes_from_its_last_128_shards() -> None:
    rs = ReedSolomon(128, 255)
    blocks = make_blocks(255, 128, 257)
    shards = rs.encode(blocks)

    picked = list(range(127, 255))  # one data shard, 127 parity shards
    out = rs.decode(picked, [shards[i] for i in picked])

    assert as_bytes(out) == blocks


# -- the shards themselves ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(code=codes())
def test_parity_is_the_cauchy_generator_times_the_blocks(
    gf256: Any,
    code: tuple[ReedSolomon, list[bytes]],
) -> None:
    """Parity row i (i >= k) is sum_j blocks[j] / (i XOR j), computed here with galois."""
    rs, blocks = code
    k, n, size = rs.k, rs.n, len(blocks[0])
    x = gf256(np.arange(k, n, dtype=np.uint8))
    y = gf256(np.arange(k, dtype=np.uint8))
    cauchy = gf256(1) / (x[:, None] + y[None, :])
    source = gf256(np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(k, size))
    expected = np.asarray(cauchy @ source, dtype=np.uint8)

    parity = rs.encode(blocks)[k:]

    assert [bytes(p) for p in parity] == [row.tobytes() for row in expected]


@pytest.mark.parametrize(
    ("k", "n", "size"),
    [(1, 1, 5), (1, 3, 1), (4, 12, 0), (4, 12, 1), (4, 12, 31), (4, 12, 1025), (10, 14, 2000),
     (3, 10, 33), (17, 40, 999), (64, 255, 129), (128, 255, 1000), (200, 255, 17)],
)  # fmt: skip
def test_isal_and_numpy_kernels_give_identical_shards(k: int, n: int, size: int) -> None:
    isal = kernel.load_isal()
    if isal is None:
        pytest.skip("no ISA-L library on this machine: only the numpy kernel exists")
    rs = ReedSolomon(k, n)
    blocks = make_blocks(size, k, size)
    picked = list(range(n - k, n))  # as many parity shards as possible: real arithmetic

    results = []
    for backend in (kernel.NumpyBackend(), isal):
        with gf_backend(backend):
            assert kernel.backend() is backend
            shards = as_bytes(rs.encode(blocks))
            decoded = as_bytes(rs.decode(picked, [shards[i] for i in picked]))
            results.append((shards, decoded))

    (numpy_shards, numpy_decoded), (isal_shards, isal_decoded) = results
    assert numpy_shards == isal_shards
    assert numpy_decoded == isal_decoded == blocks


# -- repair ---------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(code=codes(), data=st.data())
def test_rebuild_returns_exactly_the_lost_shards(
    code: tuple[ReedSolomon, list[bytes]], data: st.DataObject
) -> None:
    rs, blocks = code
    shards = as_bytes(rs.encode(blocks))
    order = data.draw(st.permutations(range(rs.n)))
    lost_count = data.draw(st.integers(0, rs.n - rs.k))
    lost, kept = order[:lost_count], order[lost_count:]

    rebuilt = rs.rebuild(kept, [shards[i] for i in kept], lost)

    assert as_bytes(rebuilt) == [shards[i] for i in lost]


def test_rebuild_of_lost_data_and_parity_chunks_matches_the_originals() -> None:
    rs = ReedSolomon(4, 12)
    shards = as_bytes(rs.encode(make_blocks(12, 4, 3000)))
    kept = [1, 5, 8, 11]
    lost = [10, 0, 3, 6]  # two parity and two data chunks went away with their hosts

    rebuilt = rs.rebuild(kept, [shards[i] for i in kept], lost)

    assert as_bytes(rebuilt) == [shards[i] for i in lost]
    assert [merkle_root(r) for r in rebuilt] == [merkle_root(shards[i]) for i in lost]


def test_rebuild_with_nothing_wanted_returns_an_empty_list() -> None:
    rs = ReedSolomon(3, 7)
    shards = rs.encode(make_blocks(3, 3, 10))

    assert rs.rebuild([4, 5, 6], [shards[4], shards[5], shards[6]], []) == []


@pytest.mark.parametrize("wanted", [-1, 7, 255])
def test_rebuild_of_a_shard_outside_the_code_is_refused(wanted: int) -> None:
    rs = ReedSolomon(3, 7)
    shards = rs.encode(make_blocks(3, 3, 10))

    with pytest.raises(ShardIndexError):
        rs.rebuild([0, 1, 2], shards[:3], [3, wanted])


# -- parameters and shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n"), [(5, 4), (0, 4), (-1, 4), (0, 0), (1, 256), (256, 256), (4, 300), (2, 1)]
)
def test_impossible_code_parameters_are_refused(k: int, n: int) -> None:
    with pytest.raises(CodingParamsError):
        ReedSolomon(k, n)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 255), (255, 255), (4, 12)])
def test_extreme_code_parameters_are_accepted(k: int, n: int) -> None:
    rs = ReedSolomon(k, n)
    assert (rs.k, rs.n) == (k, n)


@pytest.mark.parametrize("length", [1, 10, 13, 4001])
def test_stripe_that_does_not_split_into_k_blocks_is_refused(length: int) -> None:
    rs = ReedSolomon(4, 12)

    with pytest.raises(ShardSizeError):
        rs.encode_stripe(bytes(length))
    with pytest.raises(ShardSizeError):
        rs.split(bytes(length))


def test_blocks_of_unequal_length_are_refused() -> None:
    rs = ReedSolomon(3, 5)

    with pytest.raises(ShardSizeError):
        rs.encode([b"abc", b"abc", b"ab"])


@pytest.mark.parametrize("count", [0, 2, 4])
def test_wrong_number_of_blocks_is_refused(count: int) -> None:
    rs = ReedSolomon(3, 5)

    with pytest.raises(ShardSizeError):
        rs.encode([b"abc"] * count)


def test_shards_of_unequal_length_are_refused() -> None:
    rs = ReedSolomon(3, 6)
    shards = as_bytes(rs.encode(make_blocks(1, 3, 20)))
    shards[4] = shards[4][:-1]

    with pytest.raises(ShardSizeError):
        rs.decode([0, 4, 5], [shards[0], shards[4], shards[5]])


@pytest.mark.parametrize("bad", [-1, 6, 7, 255, 1000])
def test_shard_index_outside_the_code_is_refused(bad: int) -> None:
    rs = ReedSolomon(3, 6)
    shards = rs.encode(make_blocks(1, 3, 20))

    with pytest.raises(ShardIndexError):
        rs.decode([0, bad, 5], [shards[0], shards[1], shards[5]])


def test_same_shard_given_twice_is_refused() -> None:
    rs = ReedSolomon(3, 6)
    shards = rs.encode(make_blocks(1, 3, 20))

    with pytest.raises(DuplicateShardError):
        rs.decode([4, 1, 4], [shards[4], shards[1], shards[4]])
    with pytest.raises(DuplicateShardError):  # even when k distinct ones are there too
        rs.decode([0, 1, 2, 0], [shards[0], shards[1], shards[2], shards[0]])


@pytest.mark.parametrize("count", [0, 1, 2])
def test_fewer_than_k_shards_is_refused(count: int) -> None:
    rs = ReedSolomon(3, 6)
    shards = rs.encode(make_blocks(1, 3, 20))
    picked = [5, 3][:count]

    with pytest.raises(NotEnoughShardsError):
        rs.decode(picked, [shards[i] for i in picked])
    with pytest.raises(NotEnoughShardsError):
        rs.rebuild(picked, [shards[i] for i in picked], [0])


def test_indices_and_shards_of_different_counts_are_refused() -> None:
    rs = ReedSolomon(3, 6)
    shards = rs.encode(make_blocks(1, 3, 20))

    with pytest.raises(ShardSizeError):
        rs.decode([0, 1, 2, 3], shards[:3])
    with pytest.raises(ShardSizeError):
        rs.decode([0, 1, 2], shards[:4])


def test_every_refusal_is_a_coding_error() -> None:
    """Callers can catch one base class at the boundary."""
    for error in (
        CodingParamsError,
        ShardSizeError,
        ShardIndexError,
        DuplicateShardError,
        NotEnoughShardsError,
        ShardCorruptError,
    ):
        assert issubclass(error, CodingError)


# -- verified decoding ----------------------------------------------------------------------------


def corrupt(shard: bytes, position: int) -> bytearray:
    bad = bytearray(shard)
    bad[position] ^= 0x01
    return bad


@pytest.mark.parametrize("victim", [0, 2, 4, 7])
@pytest.mark.parametrize("where", ["first", "last", "second segment"])
def test_corrupt_shard_is_named_by_its_merkle_root(victim: int, where: str) -> None:
    rs = ReedSolomon(3, 8)
    size = 2 * SEGMENT_SIZE + 77
    shards = as_bytes(rs.encode(make_blocks(victim, 3, size)))
    roots = [merkle_root(s) for s in shards]
    position = {"first": 0, "last": size - 1, "second segment": SEGMENT_SIZE + 5}[where]
    picked = [5, victim, 1]
    given = [bytearray(shards[i]) for i in picked]
    given[picked.index(victim)] = corrupt(shards[victim], position)
    given_before = [bytes(g) for g in given]
    roots_before = list(roots)

    for call in (
        lambda: rs.decode(picked, given, roots=roots),
        lambda: rs.decode_stripe(picked, given, roots=roots),
        lambda: rs.rebuild(picked, given, [6], roots=roots),
    ):
        with pytest.raises(ShardCorruptError) as raised:
            call()
        assert raised.value.index == victim
        assert str(victim) in str(raised.value)

    assert [bytes(g) for g in given] == given_before
    assert roots == roots_before


def test_clean_shards_decode_when_checked_against_their_roots() -> None:
    rs = ReedSolomon(4, 12)
    blocks = make_blocks(3, 4, 1500)
    shards = as_bytes(rs.encode(blocks))
    roots = [merkle_root(s) for s in shards]
    picked = [11, 6, 2, 9]

    out = rs.decode(picked, [shards[i] for i in picked], roots=roots)

    assert as_bytes(out) == blocks


def test_roots_for_a_different_number_of_shards_are_refused() -> None:
    rs = ReedSolomon(2, 4)
    shards = as_bytes(rs.encode(make_blocks(3, 2, 10)))
    roots = [merkle_root(s) for s in shards]

    with pytest.raises(ShardSizeError):
        rs.decode([0, 1], shards[:2], roots=roots[:3])
