"""The ChunkStore contract, run against the memory and the disk store."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from storenode.coding.merkle import merkle_root
from storenode.store import (
    CapacityExceededError,
    CapacityInvalidError,
    ChunkCorruptError,
    ChunkIdInvalidError,
    ChunkMismatchError,
    ChunkNotFoundError,
    ChunkStore,
    ScrubPart,
    StoreClosedError,
    StoreError,
)

if TYPE_CHECKING:
    from conftest import Harness


def chunk(n: int, size: int = 3000) -> tuple[bytes, bytes]:
    """A distinct chunk (id, bytes) of ``size`` bytes."""
    data = (n.to_bytes(4, "big") * (size // 4 + 1))[:size]
    return merkle_root(data), data


def test_put_then_get_returns_the_same_bytes(store: ChunkStore) -> None:
    cid, data = chunk(1, 5000)
    store.put(cid, data)
    assert store.get(cid) == data
    assert store.has(cid)
    assert store.used_bytes == 5000
    assert store.chunk_count == 1


def test_put_accepts_any_bytes_like_value(store: ChunkStore) -> None:
    a, b = chunk(1), chunk(2)
    store.put(a[0], bytearray(a[1]))
    store.put(b[0], memoryview(b[1]))
    assert store.get(a[0]) == a[1]
    assert store.get(b[0]) == b[1]


def test_empty_chunk_can_be_stored(store: ChunkStore) -> None:
    cid = merkle_root(b"")
    store.put(cid, b"")
    assert store.get(cid) == b""
    assert store.used_bytes == 0
    assert store.chunk_count == 1


def test_put_refuses_bytes_that_do_not_match_id(store: ChunkStore) -> None:
    cid, data = chunk(1)
    with pytest.raises(ChunkMismatchError) as err:
        store.put(cid, data[:-1])
    assert err.value.chunk_id == cid
    assert err.value.actual == merkle_root(data[:-1])
    assert not store.has(cid)
    assert store.used_bytes == 0
    assert list(store.ids()) == []


def test_ids_that_are_not_32_bytes_are_refused(store: ChunkStore) -> None:
    for bad in (b"", b"\x00" * 31, b"\x00" * 33):
        with pytest.raises(ChunkIdInvalidError):
            store.get(bad)
        with pytest.raises(ChunkIdInvalidError):
            store.has(bad)
        with pytest.raises(ChunkIdInvalidError):
            store.delete(bad)
        with pytest.raises(ChunkIdInvalidError):
            store.put(bad, b"")


def test_get_of_an_absent_chunk_raises_not_found(store: ChunkStore) -> None:
    cid, _ = chunk(1)
    with pytest.raises(ChunkNotFoundError) as err:
        store.get(cid)
    assert err.value.chunk_id == cid
    assert not store.has(cid)


def test_putting_a_held_chunk_again_changes_nothing(store: ChunkStore) -> None:
    cid, data = chunk(1)
    store.put(cid, data)
    store.put(cid, data)
    store.put_many([(cid, data), (cid, data)])
    assert store.used_bytes == len(data)
    assert store.chunk_count == 1
    assert list(store.ids()) == [cid]


def test_delete_frees_space_and_says_whether_it_held_the_chunk(store: ChunkStore) -> None:
    (a, da), (b, db) = chunk(1, 1000), chunk(2, 2000)
    store.put_many([(a, da), (b, db)])
    assert store.delete(a) is True
    assert store.delete(a) is False
    assert not store.has(a)
    with pytest.raises(ChunkNotFoundError):
        store.get(a)
    assert store.used_bytes == 2000
    assert store.chunk_count == 1
    assert store.free_bytes == store.capacity - 2000


def test_ids_lists_held_chunks_in_ascending_order(store: ChunkStore) -> None:
    chunks = [chunk(n) for n in range(10)]
    store.put_many(chunks)
    store.delete(chunks[3][0])
    expected = sorted(cid for cid, _ in chunks if cid != chunks[3][0])
    assert list(store.ids()) == expected


def test_ids_is_a_snapshot_unaffected_by_later_writes(store: ChunkStore) -> None:
    store.put_many([chunk(n) for n in range(3)])
    ids = store.ids()
    first = next(ids)
    store.put(*chunk(99))
    store.delete(first)
    assert len([first, *ids]) == 3


def test_corrupted_chunk_is_never_served(harness: Harness, store: ChunkStore) -> None:
    cid, data = chunk(1)
    other, other_data = chunk(2)
    store.put_many([(cid, data), (other, other_data)])
    store = harness.corrupt(cid)
    with pytest.raises(ChunkCorruptError) as err:
        store.get(cid)
    assert err.value.chunk_id == cid
    assert "fetch it again" in str(err.value)
    assert store.has(cid)
    assert store.get(other) == other_data


def test_corrupt_chunk_is_refused_on_every_read(harness: Harness, store: ChunkStore) -> None:
    cid, data = chunk(1)
    store.put(cid, data)
    store = harness.corrupt(cid)
    for _ in range(3):
        with pytest.raises(ChunkCorruptError):
            store.get(cid)


def test_scrub_reports_corrupt_chunks(harness: Harness, store: ChunkStore) -> None:
    chunks = [chunk(n, 1000 + n) for n in range(6)]
    store.put_many(chunks)
    bad = sorted([chunks[1][0], chunks[4][0]])
    for cid in bad:
        store = harness.corrupt(cid)
    report = store.scrub()
    assert report.corrupt == tuple(bad)
    assert report.checked == 6
    assert report.bytes_checked == sum(len(d) for _, d in chunks)
    assert report.accounting_ok
    assert not report.clean
    assert store.has(bad[0]) and store.has(bad[1]), "scrub deletes nothing"


def test_scrub_of_a_healthy_store_is_clean(store: ChunkStore) -> None:
    store.put_many([chunk(n) for n in range(4)])
    store.delete(chunk(0)[0])
    report = store.scrub()
    assert report.clean
    assert (report.checked, report.bytes_checked, report.corrupt) == (3, 9000, ())


def test_deleting_a_corrupt_chunk_frees_its_size(harness: Harness, store: ChunkStore) -> None:
    cid, data = chunk(1)
    store.put(cid, data)
    store = harness.corrupt(cid)
    assert store.delete(cid)
    assert store.used_bytes == 0
    store.put(cid, data)
    assert store.get(cid) == data


def test_put_over_capacity_writes_nothing(harness: Harness) -> None:
    store = harness.open(capacity=5000)
    store.put(*chunk(1, 3000))
    cid, data = chunk(2, 2001)
    with pytest.raises(CapacityExceededError) as err:
        store.put(cid, data)
    assert (err.value.needed, err.value.used, err.value.free) == (2001, 3000, 2000)
    assert "3000 used, 2000 free" in str(err.value)
    assert "raise capacity in config or free space" in str(err.value)
    assert not store.has(cid)
    store = harness.reopen()
    assert not store.has(cid)
    assert store.used_bytes == 3000


def test_put_that_exactly_fills_capacity_is_accepted(harness: Harness) -> None:
    store = harness.open(capacity=5000)
    store.put_many([chunk(1, 3000), chunk(2, 2000)])
    assert store.free_bytes == 0
    store.put(*chunk(1, 3000))  # already held: still a no-op when full
    with pytest.raises(CapacityExceededError):
        store.put(merkle_root(b"x"), b"x")


def test_put_many_is_all_or_nothing_on_mismatch(store: ChunkStore) -> None:
    good = [chunk(n) for n in range(3)]
    bad_id, bad_data = chunk(9)
    with pytest.raises(ChunkMismatchError):
        store.put_many([*good, (bad_id, bad_data + b"x")])
    assert list(store.ids()) == []
    assert store.used_bytes == 0


def test_put_many_over_capacity_writes_nothing(harness: Harness) -> None:
    store = harness.open(capacity=10_000)
    store.put(*chunk(0, 4000))
    with pytest.raises(CapacityExceededError) as err:
        store.put_many([chunk(1, 3000), chunk(2, 3001), chunk(0, 4000)])
    assert err.value.needed == 6001
    assert list(store.ids()) == [chunk(0, 4000)[0]]
    assert store.used_bytes == 4000


def test_negative_capacity_is_refused(harness: Harness) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(CapacityInvalidError):
            harness.open(capacity=bad)


def test_closed_store_refuses_use(store: ChunkStore) -> None:
    cid, data = chunk(1)
    store.put(cid, data)
    store.close()
    store.close()
    for use in (
        lambda: store.get(cid),
        lambda: store.has(cid),
        lambda: store.put(cid, data),
        lambda: store.delete(cid),
        lambda: store.ids(),
        lambda: store.scrub(),
        lambda: store.used_bytes,
    ):
        with pytest.raises(StoreClosedError):
            use()


def test_context_manager_closes_the_store(store: ChunkStore) -> None:
    with store as s:
        s.put(*chunk(1))
    with pytest.raises(StoreClosedError):
        store.has(chunk(1)[0])


def test_every_store_error_is_a_store_error() -> None:
    from storenode import store as pkg

    errors = [getattr(pkg, n) for n in pkg.__all__ if n.endswith("Error")]
    assert len(errors) >= 12
    assert all(issubclass(e, StoreError) for e in errors)


def test_a_scrub_in_parts_checks_every_chunk_once_in_order(
    harness: Harness, store: ChunkStore
) -> None:
    chunks = [chunk(n, 1000 + 10 * n) for n in range(7)]
    store.put_many(chunks)
    bad = sorted([chunks[2][0], chunks[5][0]])
    for cid in bad:
        store = harness.corrupt(cid)
    seen: list[ScrubPart] = []
    after = None
    while True:
        part = store.scrub_part(after, max_bytes=2500)
        seen.append(part)
        if part.last is None:
            break
        after = part.last
    assert [p.checked for p in seen] == [3, 3, 1]  # 2500 bytes: three ~1 KB chunks a part
    assert sum(p.bytes_checked for p in seen) == sum(len(d) for _, d in chunks)
    assert [c for p in seen for c in p.corrupt] == bad
    assert store.has(bad[0]) and store.has(bad[1]), "a scrub deletes nothing"


def test_a_scrub_part_checks_at_least_one_chunk_and_ends_on_an_empty_store(
    store: ChunkStore,
) -> None:
    assert store.scrub_part(None, max_bytes=100) == ScrubPart(0, 0, (), None)
    big, small = chunk(1, 5000), chunk(2, 10)
    store.put_many([big, small])
    first = store.scrub_part(None, max_bytes=0)
    assert first.checked == 1 and first.last == min(big[0], small[0])
    rest = store.scrub_part(first.last, max_bytes=0)
    assert rest.checked == 1 and rest.last is None
    assert store.scrub_part(max(big[0], small[0]), max_bytes=1 << 20).checked == 0


def test_putting_a_damaged_chunk_again_replaces_it(harness: Harness, store: ChunkStore) -> None:
    (cid, data), other = chunk(1), chunk(2)
    store.put_many([(cid, data), other])
    store = harness.corrupt(cid)
    with pytest.raises(ChunkCorruptError):
        store.get(cid)
    used, count = store.used_bytes, store.chunk_count

    store.put_many([(cid, data), other])

    assert store.get(cid) == data and store.get(other[0]) == other[1]
    assert (store.used_bytes, store.chunk_count) == (used, count)
    assert store.scrub().clean
    store = harness.reopen()
    assert store.get(cid) == data, "the repair is durable"


def test_a_cached_read_gives_the_bytes_or_nothing_and_refuses_like_get(
    harness: Harness, store: ChunkStore
) -> None:
    cid, data = chunk(1, 40_000)
    bad, bad_data = chunk(2)
    store.put_many([(cid, data), (bad, bad_data)])
    store.get(cid)  # read once: in memory now, on any store
    assert store.get_cached(cid) == data
    with pytest.raises(ChunkNotFoundError):
        store.get_cached(chunk(3)[0])
    store = harness.corrupt(bad)
    store.get(cid)
    with pytest.raises(ChunkCorruptError):
        store.get(bad)  # the damaged bytes are in memory now too
    with contextlib.suppress(ChunkCorruptError):  # or None: get decides
        assert store.get_cached(bad) is None
    assert store.get_cached(cid) == data
