"""The DHT node as the service sees it: requests, validation, pings, lookups, maintenance."""

from __future__ import annotations

import random

import msgspec
import pytest

from storenode.dht import (
    DhtNode,
    FindNode,
    FindValue,
    LookupMode,
    Nodes,
    Ping,
    Pong,
    ReplyUnexpectedError,
    RequestUnknownError,
    SenderMismatchError,
    Store,
    Stored,
    Values,
    distance,
    key_position,
    sign_record,
)

from .conftest import NOW, contact_of, identity

T = int(NOW)


def make_node(n: int = 1) -> DhtNode:
    return DhtNode(identity(n), contact_of(identity(n), 4000 + n), now=NOW)


def peers(first: int, count: int) -> list[DhtNode]:
    return [make_node(n) for n in range(first, first + count)]


def test_a_request_whose_sender_is_not_the_authenticated_peer_is_refused() -> None:
    node = make_node()
    liar = contact_of(identity(2))
    with pytest.raises(SenderMismatchError):
        node.handle_request(identity(3).public_key, Ping(liar), NOW)
    assert liar.node_id not in node.table
    assert node.dropped["request.sender-mismatch"] == 1


def test_a_request_adds_its_sender_to_the_routing_table() -> None:
    node = make_node()
    peer = contact_of(identity(2))
    assert node.handle_request(peer.key, Ping(peer), NOW) == Pong()
    assert node.table.get(peer.node_id) == peer


def test_find_node_answers_the_k_closest_known_contacts_but_not_the_requester() -> None:
    node = make_node()
    others = [p.contact for p in peers(10, 30)]
    for c in others:
        node.observe(c, NOW)
    asker = others[0]
    target = b"\x42" * 20
    reply = node.handle_request(asker.key, FindNode(asker, target), NOW)
    assert isinstance(reply, Nodes)
    expected = sorted(others[1:], key=lambda c: distance(c.node_id, target))[:20]
    assert reply.contacts == expected


def test_store_then_find_value_returns_the_record() -> None:
    node = make_node()
    peer = contact_of(identity(2))
    record = sign_record(identity(2), b"chunk", b"v", created=T, ttl=600)
    assert node.handle_request(peer.key, Store(peer, record), NOW) == Stored(True, "stored")
    assert node.handle_request(peer.key, Store(peer, record), NOW) == Stored(True, "duplicate")
    reply = node.handle_request(peer.key, FindValue(peer, b"chunk"), NOW)
    assert isinstance(reply, Values)
    assert reply.records == [record]
    assert reply.contacts == []  # the only contact known is the requester


def test_an_invalid_stored_record_is_dropped_counted_and_answered() -> None:
    node = make_node()
    peer = contact_of(identity(2))
    record = sign_record(identity(2), b"chunk", b"v", created=T, ttl=600)
    forged = msgspec.structs.replace(record, value=b"evil")
    assert node.handle_request(peer.key, Store(peer, forged), NOW) == Stored(False, "bad-signature")
    future = sign_record(identity(2), b"chunk", b"v", created=T + 3600, ttl=600)
    assert node.handle_request(peer.key, Store(peer, future), NOW) == Stored(False, "future")
    assert node.store.get(b"chunk", NOW) == []
    assert node.dropped["record.bad-signature"] == 1
    assert node.dropped["record.future"] == 1


def test_a_struct_that_is_no_dht_request_is_refused() -> None:
    with pytest.raises(RequestUnknownError):
        make_node().handle_request(b"k" * 32, Pong(), NOW)  # type: ignore[arg-type]


def test_the_contact_must_carry_the_identitys_key() -> None:
    with pytest.raises(ValueError):
        DhtNode(identity(1), contact_of(identity(2)), now=NOW)


def test_full_buckets_ask_the_service_for_pings_once() -> None:
    node = make_node()
    # Many contacts on the far side of the keyspace from us fill a bucket that may
    # not split; a later one (once the head is no longer fresh) asks for a ping of
    # the bucket's head.
    for i in range(300):
        node.observe(contact_of(identity(100 + i)), NOW if i < 150 else NOW + 120)
    due = node.pings_due()
    assert due
    assert node.pings_due() == []  # drained
    head = due[0]
    assert head.node_id in node.table
    for _ in range(3):
        node.record_failure(head)
    assert head.node_id not in node.table


def test_lookup_replies_with_bad_records_are_filtered_and_counted() -> None:
    node = make_node()
    peer = contact_of(identity(2))
    node.observe(peer, NOW)
    lookup = node.find_value(b"chunk", NOW)
    assert lookup.mode is LookupMode.VALUE
    (asked,) = lookup.next_requests()
    assert asked == peer
    good = sign_record(identity(3), b"chunk", b"v", created=T, ttl=600)
    forged = msgspec.structs.replace(
        sign_record(identity(4), b"chunk", b"v", created=T, ttl=600), value=b"x"
    )
    expired = sign_record(identity(5), b"chunk", b"v", created=T - 700, ttl=600)
    other_key = sign_record(identity(6), b"other", b"v", created=T, ttl=600)
    node.on_lookup_reply(lookup, peer, Values([good, forged, expired, other_key], []), NOW)
    assert lookup.done
    assert lookup.result().records == [good]
    assert node.dropped == {
        "record.bad-signature": 1,
        "record.expired": 1,
        "record.key-mismatch": 1,
    }


def test_a_reply_of_the_wrong_type_counts_as_a_failure() -> None:
    node = make_node()
    peer = contact_of(identity(2))
    node.observe(peer, NOW)
    lookup = node.find_node(b"\x00" * 20, NOW)
    lookup.next_requests()
    with pytest.raises(ReplyUnexpectedError):
        node.on_lookup_reply(lookup, peer, Values([], []), NOW)
    assert lookup.done
    assert lookup.result().failed == 1
    assert node.table.failures(peer.node_id) == 1
    assert node.dropped["reply.unexpected"] == 1


def test_a_value_lookup_includes_the_local_records() -> None:
    node = make_node()
    record = node.publish(b"manifest", b"m", NOW, ttl=600)
    lookup = node.find_value(b"manifest", NOW)
    assert lookup.done  # nobody else known
    result = lookup.result()
    assert result.records == [record]
    assert result.closest == [node.contact]


def test_maintenance_republishes_refreshes_and_expires() -> None:
    node = make_node()
    rng = random.Random(2)
    for p in peers(10, 5):
        node.observe(p.contact, NOW)
    record = node.publish(b"k", b"v", NOW, ttl=600)
    stored = sign_record(identity(3), b"x", b"v", created=T, ttl=100)
    node.store.put(stored, NOW)
    early = node.maintenance(NOW + 10, rng)
    assert (early.refresh, early.republish, early.expired) == ([], [], 0)
    later = node.maintenance(NOW + 3600, rng)
    assert len(later.refresh) == len(node.table.buckets)
    assert [r.key for r in later.republish] == [record.key]
    assert later.expired == 2  # the stored record and our first version
    assert node.store.get(b"k", NOW + 3600) == later.republish


def test_a_provider_announcement_is_held_locally_and_parsed_back() -> None:
    node = make_node()
    record = node.announce_provider(b"chunk", NOW)
    assert record.owner == node.identity.public_key
    assert node.store.get(b"chunk", NOW) == [record]
    assert node.store_request(record) == Store(node.contact, record)
    assert key_position(b"chunk") == node.find_node(key_position(b"chunk"), NOW).target
