"""The routing table: exact closest, splitting, pings of full buckets, eviction, refresh."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kademlia.node import Node
from kademlia.routing import RoutingTable as KademliaRoutingTable

from storenode.dht import Contact, PingRequired, RoutingTable, distance
from storenode.dht.ids import ID_SPACE, id_to_int, int_to_id
from storenode.dht.routing import Bucket

NOW = 1_000.0
OWN = bytes(20)  # id 0: the far half of the keyspace is every id with the top bit set


def contact(key: bytes, port: int = 4000) -> Contact:
    return Contact(key, "127.0.0.1", port)


def random_contacts(rng: random.Random, n: int) -> list[Contact]:
    return [contact(rng.randbytes(32)) for _ in range(n)]


def far_contacts(rng: random.Random, n: int) -> list[Contact]:
    """Contacts whose id has the top bit set (the far half from ``OWN``)."""
    out: list[Contact] = []
    while len(out) < n:
        c = contact(rng.randbytes(32))
        if c.node_id[0] & 0x80:
            out.append(c)
    return out


def table_with_full_far_bucket(rng: random.Random) -> tuple[RoutingTable, Bucket, list[Contact]]:
    """A table whose far-half bucket holds k contacts, with more than k contacts on
    our side so that the far bucket may not split."""
    table = RoutingTable(OWN, now=NOW)
    near: list[Contact] = []
    while len(near) < 25:
        c = contact(rng.randbytes(32))
        if not c.node_id[0] & 0x80:
            near.append(c)
    for c in near:
        assert table.add_contact(c, NOW) is None
    far = far_contacts(rng, 20)
    for i, c in enumerate(far):
        assert table.add_contact(c, NOW + i) is None
    bucket = table.buckets[-1]
    assert bucket.range == (ID_SPACE // 2, ID_SPACE - 1)
    assert bucket.contacts() == far
    return table, bucket, far


# -- closest --------------------------------------------------------------------------


@given(
    own=st.binary(min_size=20, max_size=20),
    keys=st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=300, unique=True),
    target=st.binary(min_size=20, max_size=20),
    k=st.integers(1, 40),
)
def test_closest_returns_exactly_the_k_nearest_contacts_in_the_table(
    own: bytes, keys: list[bytes], target: bytes, k: int
) -> None:
    table = RoutingTable(own, now=NOW)
    for key in keys:
        table.add_contact(contact(key), NOW)
    held = table.contacts()
    expected = sorted(held, key=lambda c: distance(c.node_id, target))[:k]
    assert table.closest(target, k) == expected


@given(
    own=st.binary(min_size=20, max_size=20),
    keys=st.lists(st.binary(min_size=32, max_size=32), min_size=21, max_size=300, unique=True),
)
def test_table_keeps_every_one_of_the_k_contacts_closest_to_itself(
    own: bytes, keys: list[bytes]
) -> None:
    table = RoutingTable(own, now=NOW)
    contacts = [contact(key) for key in keys]
    for c in contacts:
        table.add_contact(c, NOW)
    nearest = sorted(contacts, key=lambda c: distance(c.node_id, own))[:20]
    assert all(c.node_id in table for c in nearest)


def test_find_neighbors_of_the_package_is_exact_too() -> None:
    rng = random.Random(1)
    table = RoutingTable(OWN, now=NOW)
    for c in random_contacts(rng, 200):
        table.add_contact(c, NOW)
    target = rng.randbytes(20)
    neighbors = table.find_neighbors(Node(target), k=20)
    assert [n.id for n in neighbors] == [c.node_id for c in table.closest(target, 20)]


# -- buckets --------------------------------------------------------------------------


def test_buckets_cover_the_id_space_with_inclusive_ranges() -> None:
    rng = random.Random(2)
    table = RoutingTable(rng.randbytes(20), now=NOW)
    for c in random_contacts(rng, 400):
        table.add_contact(c, NOW)
    assert len(table.buckets) > 3
    assert table.buckets[0].range[0] == 0
    assert table.buckets[-1].range[1] == ID_SPACE - 1
    for left, right in zip(table.buckets, table.buckets[1:], strict=False):
        assert left.range[1] + 1 == right.range[0]
    for index, bucket in enumerate(table.buckets):
        assert len(bucket.nodes) <= 20
        for c in bucket.contacts():
            assert bucket.range[0] <= id_to_int(c.node_id) <= bucket.range[1]
        # An id equal to the upper bound belongs to this bucket, not the next one.
        assert table.get_bucket_for(Node(int_to_id(bucket.range[1]))) == index


def test_the_packages_bucket_lookup_is_off_by_one_at_the_upper_bound() -> None:
    # Why get_bucket_for is overridden: kademlia compares with `<` an inclusive bound.
    table = KademliaRoutingTable(None, 20, Node(OWN))
    table.split_bucket(0)
    midpoint = table.buckets[0].range[1]
    assert table.get_bucket_for(Node(int_to_id(midpoint))) == 1  # but its range is bucket 0's
    ours = RoutingTable(OWN, now=NOW)
    ours.split_bucket(0)
    upper = ours.buckets[0].range[1]
    assert ours.get_bucket_for(Node(int_to_id(upper))) == 0
    assert ours.get_bucket_for(Node(int_to_id(upper + 1))) == 1


def test_a_full_bucket_holding_our_own_id_splits() -> None:
    table = RoutingTable(OWN, now=NOW)
    for c in random_contacts(random.Random(3), 21):
        assert table.add_contact(c, NOW) is None
    assert len(table) == 21
    assert len(table.buckets) >= 2


def test_own_id_is_never_added() -> None:
    me = contact(b"\x07" * 32)
    table = RoutingTable(me.node_id, now=NOW)
    assert table.add_contact(me, NOW) is None
    assert len(table) == 0


def test_a_known_contact_is_moved_to_the_tail_with_its_new_address() -> None:
    rng = random.Random(4)
    table = RoutingTable(OWN, now=NOW)
    cs = random_contacts(rng, 5)
    for c in cs:
        table.add_contact(c, NOW)
    moved = Contact(cs[0].key, "127.9.9.9", 9999)
    table.add_contact(moved, NOW + 1)
    assert table.buckets[0].contacts() == [*cs[1:], moved]
    assert table.get(cs[0].node_id) == moved


# -- full buckets, pings, failures ------------------------------------------------------


def test_full_bucket_that_may_not_split_asks_to_ping_its_head() -> None:
    rng = random.Random(5)
    table, bucket, far = table_with_full_far_bucket(rng)
    newcomer = far_contacts(rng, 1)[0]
    assert table.add_contact(newcomer, NOW + 100) == PingRequired(far[0], newcomer)
    assert newcomer.node_id not in table
    assert bucket.replacements() == [newcomer]


def test_a_head_heard_from_lately_is_not_pinged_for_a_newcomer() -> None:
    rng = random.Random(6)
    table, bucket, far = table_with_full_far_bucket(rng)
    newcomer = far_contacts(rng, 1)[0]
    # The head (far[0]) was seen at NOW: within FRESH_FOR it is known to be alive.
    assert table.add_contact(newcomer, NOW + table.fresh_for - 1) is None
    assert newcomer.node_id not in table
    assert bucket.replacements() == [newcomer]
    later = far_contacts(rng, 1)[0]
    assert table.add_contact(later, NOW + table.fresh_for + 1) == PingRequired(far[0], later)


def test_one_ping_per_head_until_the_ping_timeout() -> None:
    rng = random.Random(6)
    table, _, far = table_with_full_far_bucket(rng)
    first, second, third = far_contacts(rng, 3)
    assert table.add_contact(first, NOW + 100) == PingRequired(far[0], first)
    assert table.add_contact(second, NOW + 101) is None  # the head's ping is outstanding
    assert table.add_contact(third, NOW + 100 + 61) == PingRequired(far[0], third)


def test_head_that_answers_stays_and_the_newcomer_waits() -> None:
    rng = random.Random(7)
    table, bucket, far = table_with_full_far_bucket(rng)
    newcomer = far_contacts(rng, 1)[0]
    ping = table.add_contact(newcomer, NOW + 100)
    assert ping is not None
    table.record_success(ping.head, NOW + 101)
    assert bucket.contacts() == [*far[1:], far[0]]
    assert bucket.replacements() == [newcomer]
    # The next newcomer makes the new head (far[1]) the one to ping.
    other = far_contacts(rng, 1)[0]
    assert table.add_contact(other, NOW + 102) == PingRequired(far[1], other)


def test_contact_is_evicted_only_after_three_consecutive_failures() -> None:
    rng = random.Random(8)
    table, bucket, far = table_with_full_far_bucket(rng)
    older, newer = far_contacts(rng, 2)
    table.add_contact(older, NOW + 100)
    table.add_contact(newer, NOW + 101)
    head = far[0]
    assert table.record_failure(head.node_id) is None
    assert table.record_failure(head.node_id) is None
    assert head.node_id in table
    assert table.failures(head.node_id) == 2
    assert table.record_failure(head.node_id) == head
    assert head.node_id not in table
    # The most recently seen replacement takes the place.
    assert bucket.contacts() == [*far[1:], newer]
    assert bucket.replacements() == [older]


def test_a_success_resets_the_failure_count() -> None:
    rng = random.Random(9)
    table = RoutingTable(OWN, now=NOW)
    c = random_contacts(rng, 1)[0]
    table.add_contact(c, NOW)
    table.record_failure(c.node_id)
    table.record_failure(c.node_id)
    table.record_success(c, NOW + 1)
    assert table.failures(c.node_id) == 0
    table.record_failure(c.node_id)
    table.record_failure(c.node_id)
    assert c.node_id in table


def test_a_failed_replacement_is_dropped_from_the_cache() -> None:
    rng = random.Random(10)
    table, bucket, _ = table_with_full_far_bucket(rng)
    waiting = far_contacts(rng, 1)[0]
    table.add_contact(waiting, NOW + 100)
    assert table.record_failure(waiting.node_id) is None
    assert bucket.replacements() == []


def test_failure_of_an_unknown_contact_is_ignored() -> None:
    table = RoutingTable(OWN, now=NOW)
    assert table.record_failure(b"\x01" * 20) is None


def test_suspects_are_skipped_on_request() -> None:
    rng = random.Random(11)
    table = RoutingTable(OWN, now=NOW)
    cs = random_contacts(rng, 10)
    for c in cs:
        table.add_contact(c, NOW)
    suspect = cs[3]
    table.record_failure(suspect.node_id)
    assert suspect in table.closest(OWN, 20)
    assert suspect not in table.closest(OWN, 20, skip_suspects=True)
    assert len(table.closest(OWN, 20, skip_suspects=True)) == 9


# -- refresh --------------------------------------------------------------------------


def test_buckets_no_lookup_targeted_for_an_hour_are_named_for_refresh() -> None:
    rng = random.Random(12)
    table = RoutingTable(OWN, now=NOW)
    for c in random_contacts(rng, 100):
        table.add_contact(c, NOW)
    assert table.stale_buckets(NOW + 3599, rng) == []
    far_target = b"\xff" * 20
    table.touch(far_target, NOW + 1000)
    stale = table.stale_buckets(NOW + 3600, rng)
    assert len(stale) == len(table.buckets) - 1
    for target, bucket in zip(stale, table.buckets[:-1], strict=True):
        assert bucket.range[0] <= id_to_int(target) <= bucket.range[1]
    assert len(table.stale_buckets(NOW + 4600, rng)) == len(table.buckets)


def test_a_routing_table_needs_sane_parameters() -> None:
    with pytest.raises(ValueError):
        RoutingTable(OWN, now=NOW, k=0)
    with pytest.raises(ValueError):
        RoutingTable(b"short", now=NOW)
