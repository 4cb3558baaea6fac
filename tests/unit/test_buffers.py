"""storenode.buffers: buffers allocated without zeroing, for their users to fill."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.buffers import unfilled


@given(st.integers(min_value=0, max_value=1 << 21))
def test_an_unfilled_buffer_is_a_bytearray_of_the_size_asked(size: int) -> None:
    buffer = unfilled(size)
    assert type(buffer) is bytearray
    assert len(buffer) == size
    buffer[:] = b"\x5a" * size  # writable, and holds what is written
    assert buffer == b"\x5a" * size


def test_buffers_are_distinct_objects() -> None:
    a, b = unfilled(4096), unfilled(4096)
    a[:] = bytes(4096)
    b[:] = b"\xff" * 4096
    assert a == bytes(4096) and b == b"\xff" * 4096


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="-1 bytes"):
        unfilled(-1)
