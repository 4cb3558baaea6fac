"""The shard index forgets the slots of contracts the host let go."""

from __future__ import annotations

import pytest

from storenode.host.chunks import ShardIndex
from storenode.host.messages import Placement

CID, OTHER = bytes([1]) * 32, bytes([2]) * 32
ZERO, DATA = bytes([9]) * 32, bytes([8]) * 32  # a chunk of zero padding, a chunk of data


def test_a_removed_slot_is_forgotten_and_a_chunk_in_another_slot_stays_readable() -> None:
    index = ShardIndex()
    index.add(ZERO, Placement(CID, 0, 0, 2, 4), 2048)
    index.add(ZERO, Placement(CID, 1, 0, 2, 4), 2048)  # the same bytes in another stripe
    index.add(ZERO, Placement(OTHER, 0, 1, 2, 4), 2048)
    index.add(DATA, Placement(CID, 0, 1, 2, 4), 2048)

    assert index.remove(CID, 0, 0) == ZERO
    assert index.works_of(ZERO) == {CID, OTHER}  # still shard 0 of stripe 1
    assert index.shards_of(CID, 0)[2] == {1: DATA}
    assert index.remove(CID, 1, 0) == ZERO
    assert index.works_of(ZERO) == {OTHER}
    with pytest.raises(KeyError):
        index.shards_of(CID, 1)  # the stripe holds nothing any more
    assert index.remove(CID, 1, 0) is None and index.remove(CID, 7, 0) is None
    assert index.remove(OTHER, 0, 1) == ZERO and index.works_of(ZERO) == frozenset()
