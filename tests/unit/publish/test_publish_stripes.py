"""Cutting a work into stripes and joining them back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.publish import (
    StripeLengthError,
    StripeSizeError,
    cut_stripes,
    join_stripes,
    padded_size,
    stripe_count,
    stripe_size_for,
)


@given(
    data=st.binary(max_size=3000),
    k=st.integers(1, 12),
    blocks=st.integers(1, 40),
)
def test_cut_then_join_gives_the_work_back(data: bytes, k: int, blocks: int) -> None:
    stripe_size = k * blocks

    stripes = list(cut_stripes(data, stripe_size, k))

    assert len(stripes) == stripe_count(len(data), stripe_size)
    assert all(len(s) % k == 0 for s in stripes)
    assert all(len(s) == stripe_size for s in stripes[:-1])
    assert [len(s) for s in stripes] == [
        padded_size(len(data), stripe_size, k, i) for i in range(len(stripes))
    ]
    assert join_stripes(stripes, len(data)) == data


def test_the_last_stripe_is_padded_with_zeros_to_the_full_stripe_size() -> None:
    stripes = list(cut_stripes(b"abcdefghij", 8, 4))

    assert [bytes(s) for s in stripes] == [b"abcdefgh", b"ij" + bytes(6)]


def test_full_stripes_are_views_of_the_work_not_copies() -> None:
    data = bytearray(b"x" * 16)

    first = next(cut_stripes(data, 8, 4))
    data[0] = ord("y")

    assert isinstance(first, memoryview)
    assert bytes(first[:1]) == b"y"


def test_an_empty_work_has_no_stripes() -> None:
    assert list(cut_stripes(b"", 8, 4)) == []
    assert stripe_count(0, 8) == 0
    assert join_stripes([], 0) == b""


@pytest.mark.parametrize(("stripe_size", "k"), [(0, 4), (-8, 4), (10, 4), (8, 0)])
def test_a_stripe_size_that_does_not_split_into_k_blocks_is_refused(
    stripe_size: int, k: int
) -> None:
    with pytest.raises(StripeSizeError):
        list(cut_stripes(b"data", stripe_size, k))


def test_stripe_count_refuses_negative_lengths_and_empty_stripes() -> None:
    with pytest.raises(StripeSizeError):
        stripe_count(-1, 8)
    with pytest.raises(StripeSizeError):
        stripe_count(10, 0)
    assert stripe_count(17, 8) == 3


def test_padded_size_refuses_a_stripe_past_the_end() -> None:
    with pytest.raises(StripeSizeError, match="outside"):
        padded_size(17, 8, 4, 3)


def test_joining_stripes_shorter_than_the_work_is_refused() -> None:
    with pytest.raises(StripeLengthError, match="hold 8 bytes, the work has 9"):
        join_stripes([b"abcdefgh"], 9)


@pytest.mark.parametrize(
    ("k", "target", "size"),
    [(4, 1 << 20, 1 << 20), (3, 1 << 20, 1_047_552), (5, 1000, 5120), (1, 1 << 20, 1 << 20)],
)
def test_stripe_size_for_k_is_whole_segments_per_shard_near_the_target(
    k: int, target: int, size: int
) -> None:
    assert stripe_size_for(k, target) == size
    assert size % (k * 1024) == 0


def test_stripe_size_for_refuses_k_below_one() -> None:
    with pytest.raises(StripeSizeError):
        stripe_size_for(0)


@given(
    length=st.integers(min_value=1, max_value=1 << 30),
    k=st.integers(min_value=1, max_value=32),
    target=st.sampled_from([64 << 10, 1 << 20, 4 << 20]),
)
def test_stripe_size_for_a_length_keeps_the_stripe_count_and_pads_under_k_kib_per_stripe(
    length: int, k: int, target: int
) -> None:
    size = stripe_size_for(k, target, length=length)
    count = stripe_count(length, size)

    assert size % (k * 1024) == 0
    assert count == stripe_count(length, stripe_size_for(k, target))
    assert count * size - length < count * k * 1024
