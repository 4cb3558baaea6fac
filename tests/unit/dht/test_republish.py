"""Own records: republished re-signed every ttl/2; without republishing they vanish."""

from __future__ import annotations

import pytest

from storenode.dht import OwnRecords, RecordStore, RecordValidator, parse_provider

from .conftest import NOW, contact_of, identity

KEY = b"manifest"


def test_a_record_is_due_again_at_half_its_ttl_re_signed_with_a_fresh_created() -> None:
    own = OwnRecords(identity(1))
    first = own.publish(KEY, b"v", NOW, ttl=600)
    assert own.due_republish(NOW + 299) == []
    assert own.next_due() == NOW + 300
    (again,) = own.due_republish(NOW + 300)
    assert again.created == int(NOW) + 300
    assert (again.key, again.value, again.ttl) == (first.key, first.value, first.ttl)
    assert again.signature != first.signature
    RecordValidator().check(again, NOW + 300)
    assert own.due_republish(NOW + 301) == []
    assert own.records() == [again]


def test_publishing_again_replaces_the_value_even_within_the_same_second() -> None:
    own = OwnRecords(identity(1))
    replica = RecordStore(RecordValidator())
    first = own.publish(KEY, b"v1", NOW, ttl=600)
    second = own.publish(KEY, b"v2", NOW + 0.5, ttl=600)
    assert second.created > first.created
    assert [r.value for r in own.records()] == [b"v2"]
    assert len(own) == 1
    replica.put(first, NOW)
    replica.put(second, NOW)
    assert replica.get(KEY, NOW) == [second]


def test_republishing_keeps_a_record_alive_and_without_it_the_record_vanishes() -> None:
    own = OwnRecords(identity(1))
    replica = RecordStore(RecordValidator())  # a node among the key's k closest
    last = own.publish(KEY, b"v", NOW, ttl=600)
    replica.put(last, NOW)
    now = NOW
    while now < NOW + 3600:  # an hour, six TTLs, the service's maintenance every minute
        now += 60
        for record in own.due_republish(now):
            replica.put(record, now)
            last = record
        replica.expire(now)
        assert [r.value for r in replica.get(KEY, now)] == [b"v"]
    assert last.created > NOW + 3000
    assert own.withdraw(KEY)
    assert KEY not in own
    assert own.due_republish(now + 3600) == []
    assert replica.get(KEY, last.expires - 1) == [last]
    assert replica.get(KEY, last.expires) == []
    assert replica.expire(last.expires) == 1
    assert len(replica) == 0


def test_provider_records_announce_the_owners_contact() -> None:
    host = identity(7)
    own = OwnRecords(host)
    record = own.publish_provider(b"chunk", contact_of(host, 9000), NOW)
    assert parse_provider(record) == contact_of(host, 9000)
    with pytest.raises(ValueError):
        own.publish_provider(b"chunk", contact_of(identity(8)), NOW)


def test_the_republish_fraction_is_between_zero_and_one() -> None:
    with pytest.raises(ValueError):
        OwnRecords(identity(1), fraction=1.0)
