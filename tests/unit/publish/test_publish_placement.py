"""Placement: shard i of stripe s goes to a near, reputable host, one shard of a stripe per host."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.identity import dht_id, keccak256
from storenode.publish import (
    Candidate,
    NotEnoughHostsError,
    PlacementParamsError,
    place,
    shard_target,
)

CID = keccak256(b"a work")


def _hosts(count: int, seed: int = 0, reputation: int = 0) -> list[Candidate]:
    rng = random.Random(seed)
    return [Candidate(rng.randbytes(20), reputation) for _ in range(count)]


def _distance(node_id: bytes, target: bytes) -> int:
    return int.from_bytes(node_id) ^ int.from_bytes(target)


def test_the_target_is_dht_id_of_cid_stripe_u32_and_shard_u16() -> None:
    expected = dht_id(CID + (7).to_bytes(4, "big") + (3).to_bytes(2, "big"))

    assert shard_target(CID, 7, 3) == expected


def test_placement_is_deterministic_and_ignores_the_order_of_hosts() -> None:
    hosts = [Candidate(h.node_id, r) for r, h in enumerate(_hosts(30))]
    shuffled = hosts[:]
    random.Random(1).shuffle(shuffled)

    assert place(CID, 5, 12, hosts) == place(CID, 5, 12, hosts) == place(CID, 5, 12, shuffled)


@given(
    seed=st.integers(0, 2**32),
    stripes=st.integers(0, 6),
    n=st.integers(1, 16),
    extra=st.integers(0, 20),
    window=st.integers(1, 5),
    reputations=st.lists(st.integers(-5, 5), min_size=36, max_size=36),
)
def test_every_shard_is_placed_and_no_host_holds_two_shards_of_a_stripe(
    seed: int, stripes: int, n: int, extra: int, window: int, reputations: list[int]
) -> None:
    rng = random.Random(seed)
    hosts = [Candidate(rng.randbytes(20), reputations[j]) for j in range(n + extra)]

    placement = place(CID, stripes, n, hosts, window=window)

    assert set(placement) == {(s, i) for s in range(stripes) for i in range(n)}
    assert set(placement.values()) <= {h.node_id for h in hosts}
    for s in range(stripes):
        assert len({placement[(s, i)] for i in range(n)}) == n


def test_with_equal_reputations_each_shard_goes_to_the_closest_free_host() -> None:
    hosts = _hosts(40)

    placement = place(CID, 3, 12, hosts)

    for s in range(3):
        used: set[bytes] = set()
        for i in range(12):
            target = shard_target(CID, s, i)
            free = [h.node_id for h in hosts if h.node_id not in used]
            assert placement[(s, i)] == min(free, key=lambda h: _distance(h, target))
            used.add(placement[(s, i)])


def test_a_reputable_host_near_the_target_beats_a_closer_unknown_one() -> None:
    target = shard_target(CID, 0, 0)
    t = int.from_bytes(target)
    closest = Candidate((t ^ 1).to_bytes(20), 0)
    second = Candidate((t ^ 2).to_bytes(20), 0)
    reputable = Candidate((t ^ 4).to_bytes(20), 100)  # third closest: inside the window
    reputable_far = Candidate((t ^ (1 << 150)).to_bytes(20), 1000)  # outside the window

    placement = place(CID, 1, 1, [closest, second, reputable, reputable_far])
    plain = place(CID, 1, 1, [closest, second, reputable, reputable_far], window=1)

    assert placement[(0, 0)] == reputable.node_id
    assert plain[(0, 0)] == closest.node_id


def test_a_reputable_host_wins_more_shards_than_unknown_ones() -> None:
    unknown = _hosts(30, seed=2)
    trusted = _hosts(30, seed=3, reputation=50)

    placement = place(CID, 20, 12, unknown + trusted)

    trusted_ids = {h.node_id for h in trusted}
    on_trusted = sum(node in trusted_ids for node in placement.values())
    assert on_trusted > 0.7 * len(placement)


def test_fewer_hosts_than_n_is_refused_saying_how_many_are_needed() -> None:
    with pytest.raises(NotEnoughHostsError, match=r"needs 12 hosts.*9 did") as caught:
        place(CID, 4, 12, _hosts(9))

    assert (caught.value.needed, caught.value.available) == (12, 9)


def test_exactly_n_hosts_hold_one_shard_of_every_stripe_each() -> None:
    hosts = _hosts(12)

    placement = place(CID, 2, 12, hosts)

    for s in range(2):
        assert {placement[(s, i)] for i in range(12)} == {h.node_id for h in hosts}


@pytest.mark.parametrize(
    ("cid", "hosts"),
    [
        (b"short", _hosts(3)),
        (CID, [Candidate(b"\x01" * 19, 0), *_hosts(2)]),
        (CID, [*_hosts(2), _hosts(1)[0]]),  # the same host twice
    ],
)
def test_malformed_cids_and_hosts_are_refused(cid: bytes, hosts: list[Candidate]) -> None:
    with pytest.raises(PlacementParamsError):
        place(cid, 1, 3, hosts)


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(PlacementParamsError):
        place(CID, 1, 3, _hosts(3), window=0)
