"""The record store: one record per (key, owner), newer wins, bounded, expiring."""

from __future__ import annotations

import msgspec
import pytest

from storenode.dht import (
    PutOutcome,
    Record,
    RecordInvalidError,
    RecordStore,
    RecordValidator,
    parse_provider,
    provider_record,
    sign_record,
)
from storenode.identity import Identity

from .conftest import NOW, contact_of, identity

T = int(NOW)
KEY = b"chunk-1"


def store(**limits: int) -> RecordStore:
    return RecordStore(RecordValidator(), **limits)


def rec(owner: Identity, *, created: int = T, ttl: int = 3600, value: bytes = b"v") -> Record:
    return sign_record(owner, KEY, value, created=created, ttl=ttl)


def test_a_newer_record_of_the_same_owner_replaces_the_older() -> None:
    s = store()
    old, new = rec(identity(1), value=b"old"), rec(identity(1), created=T + 5, value=b"new")
    assert s.put(old, NOW) is PutOutcome.STORED
    assert s.put(new, NOW) is PutOutcome.REPLACED
    assert s.get(KEY, NOW) == [new]
    assert len(s) == 1


def test_an_older_or_equally_old_record_is_ignored() -> None:
    s = store()
    new = rec(identity(1), created=T + 5, value=b"new")
    s.put(new, NOW)
    assert s.put(rec(identity(1), value=b"old"), NOW) is PutOutcome.STALE
    same_time = rec(identity(1), created=T + 5, value=b"other")
    assert s.put(same_time, NOW) is PutOutcome.STALE
    assert s.put(new, NOW) is PutOutcome.DUPLICATE
    assert PutOutcome.DUPLICATE.accepted and not PutOutcome.STALE.accepted
    assert s.get(KEY, NOW) == [new]


def test_many_providers_of_one_chunk_are_all_returned() -> None:
    s = store()
    hosts = [identity(10 + i) for i in range(30)]
    for i, host in enumerate(hosts):
        assert s.put(provider_record(host, KEY, contact_of(host, 5000 + i), NOW), NOW).accepted
    found = s.get(KEY, NOW)
    assert len(found) == 30
    assert {parse_provider(r) for r in found} == {
        contact_of(h, 5000 + i) for i, h in enumerate(hosts)
    }


def test_a_full_key_gives_way_to_records_that_expire_later() -> None:
    s = store(max_per_key=3)
    a = rec(identity(1), ttl=100)
    b = rec(identity(2), ttl=200)
    c = rec(identity(3), ttl=300)
    for r in (a, b, c):
        s.put(r, NOW)
    assert s.put(rec(identity(4), ttl=50), NOW) is PutOutcome.KEY_FULL
    assert s.put(rec(identity(4), ttl=100), NOW) is PutOutcome.KEY_FULL  # not later
    d = rec(identity(4), ttl=400)
    assert s.put(d, NOW) is PutOutcome.STORED
    assert s.get(KEY, NOW) == [d, c, b]  # latest expiry first
    assert s.get(KEY, NOW, limit=2) == [d, c]


def test_the_store_refuses_records_beyond_its_limits() -> None:
    s = store(max_records=2)
    s.put(rec(identity(1)), NOW)
    s.put(rec(identity(2)), NOW)
    assert s.put(rec(identity(3)), NOW) is PutOutcome.STORE_FULL
    assert len(s) == 2
    r = rec(identity(1), value=b"x" * 1000)
    s2 = store(max_bytes=r.size * 2 - 1)
    assert s2.put(r, NOW) is PutOutcome.STORED
    assert s2.put(rec(identity(2), value=b"x" * 1000), NOW) is PutOutcome.STORE_FULL
    assert s2.bytes_used == r.size


def test_a_full_store_makes_room_by_purging_expired_records() -> None:
    s = store(max_records=1)
    s.put(rec(identity(1), ttl=10), NOW)
    later = rec(identity(2), created=T + 20)
    assert s.put(later, NOW + 20) is PutOutcome.STORED
    assert s.get(KEY, NOW + 20) == [later]


def test_expired_records_are_never_returned_and_are_purged() -> None:
    s = store()
    short, long = rec(identity(1), ttl=10), rec(identity(2), ttl=100)
    s.put(short, NOW)
    s.put(long, NOW)
    assert s.get(KEY, NOW + 10) == [long]
    assert len(s) == 2
    assert s.expire(NOW + 10) == 1
    assert len(s) == 1
    assert s.bytes_used == long.size
    assert s.expire(NOW + 100) == 1
    assert s.keys() == []
    assert s.bytes_used == 0


def test_invalid_records_raise_and_change_nothing() -> None:
    s = store()
    good = rec(identity(1))
    s.put(good, NOW)
    forged = msgspec.structs.replace(rec(identity(1), created=T + 1), value=b"evil")
    with pytest.raises(RecordInvalidError, match="bad-signature"):
        s.put(forged, NOW)
    with pytest.raises(RecordInvalidError, match="expired"):
        s.put(rec(identity(2), ttl=1), NOW + 1)
    assert s.get(KEY, NOW) == [good]
    assert len(s) == 1


def test_limits_are_positive() -> None:
    with pytest.raises(ValueError):
        store(max_per_key=0)
