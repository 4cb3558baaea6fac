"""What only the disk store does: persist, keep the documented layout, clean up after a
crash, refuse strangers."""

from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storenode import files
from storenode.coding.merkle import merkle_root
from storenode.store import (
    CapacityExceededError,
    ChunkCorruptError,
    DiskChunkStore,
    StoreCorruptError,
    StoreIOError,
    StoreLockedError,
    StoreNotFoundError,
    StoreUnrecognizedError,
    StoreVersionError,
    disk,
    disk_scrub,
)
from storenode.store.protocol import chunk_ok


def chunk(n: int, size: int = 3000) -> tuple[bytes, bytes]:
    data = (n.to_bytes(4, "big") * (size // 4 + 1))[:size]
    return merkle_root(data), data


def raw_db(path: Path) -> plyvel.DB:
    return plyvel.DB(str(path))


def chunk_file(store_path: Path, chunk_id: bytes) -> Path:
    name = chunk_id.hex()
    return store_path / "chunks" / name[:2] / name


def files_under(store_path: Path) -> list[str]:
    return sorted(
        str(p.relative_to(store_path)) for p in (store_path / "chunks").rglob("*") if p.is_file()
    )


def test_chunks_and_used_bytes_survive_reopen(tmp_path: Path) -> None:
    chunks = [chunk(n, 1000 * (n + 1)) for n in range(4)]
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many(chunks[:3])
        store.put(*chunks[3])
        store.delete(chunks[0][0])
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert store.used_bytes == 2000 + 3000 + 4000
        assert store.chunk_count == 3
        assert sorted(store.ids()) == sorted(cid for cid, _ in chunks[1:])
        for cid, data in chunks[1:]:
            assert store.get(cid) == data
        assert store.scrub().clean


def test_raw_layout_matches_the_spec(tmp_path: Path) -> None:
    (a, da), (b, db_) = chunk(1, 1500), chunk(2, 10)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many([(a, da), (b, db_)])
    db = raw_db(tmp_path / "s")
    try:
        assert dict(db.iterator()) == {
            b"cs/meta/version": b"\x00\x00\x00\x03",
            b"cs/meta/used": struct.pack(">Q", 1510),
            b"cs/meta/count": struct.pack(">Q", 2),
            b"cs/len/" + a: struct.pack(">QI", 1500, zlib.crc32(da)),
            b"cs/len/" + b: struct.pack(">QI", 10, zlib.crc32(db_)),
        }
    finally:
        db.close()
    assert chunk_file(tmp_path / "s", a).read_bytes() == da
    assert chunk_file(tmp_path / "s", b).read_bytes() == db_
    assert files_under(tmp_path / "s") == sorted(f"chunks/{c.hex()[:2]}/{c.hex()}" for c in (a, b))
    assert len(list((tmp_path / "s" / "chunks").iterdir())) == 256


def test_a_delete_removes_the_file(tmp_path: Path) -> None:
    (a, da), (b, db_) = chunk(1), chunk(2)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many([(a, da), (b, db_)])
        assert store.delete(a)
        assert files_under(tmp_path / "s") == [f"chunks/{b.hex()[:2]}/{b.hex()}"]


def test_what_a_crash_leaves_behind_is_removed_on_open(tmp_path: Path) -> None:
    """A ``.part`` file (a put cut short before its rename) and a chunk file with no
    record (cut short before its commit, or a delete before its unlink) are
    removed; files that are not the store's are left alone."""
    (held, data), (orphan, orphan_data) = chunk(1), chunk(2)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(held, data)
    part = chunk_file(tmp_path / "s", orphan).with_name(orphan.hex() + ".1a2b3c4d.part")
    part.write_bytes(orphan_data[:100])
    chunk_file(tmp_path / "s", orphan).write_bytes(orphan_data)
    notes = tmp_path / "s" / "chunks" / "00" / "README"
    notes.write_text("an operator's note")
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert not part.exists()
        assert not chunk_file(tmp_path / "s", orphan).exists()
        assert notes.exists()
        assert not store.has(orphan)
        assert store.get(held) == data
        assert (store.used_bytes, store.chunk_count) == (len(data), 1)
        store.put(orphan, orphan_data)  # and it can be put properly afterwards
        assert store.get(orphan) == orphan_data


def test_a_failed_write_leaves_no_file_and_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-put: a typed error, nothing half-written, the held chunk intact."""
    (held, data), (new, new_data) = chunk(1), chunk(2)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(held, data)

        def full(fd: int, _data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        with monkeypatch.context() as m:
            m.setattr(os, "write", full)
            with pytest.raises(StoreIOError, match="No space left"):
                store.put(new, new_data)
        assert not store.has(new)
        assert files_under(tmp_path / "s") == [f"chunks/{held.hex()[:2]}/{held.hex()}"]
        assert (store.used_bytes, store.chunk_count) == (len(data), 1)
        assert store.free_bytes == (1 << 20) - len(data)  # the reservation was returned
        assert store.get(held) == data
        store.put(new, new_data)
        assert store.get(new) == new_data


@pytest.mark.parametrize("fails", ["the third write", "the second sync"])
def test_a_batch_that_fails_part_way_leaves_no_file_and_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """A put_many writes every chunk before it syncs any: a failure at any point,
    even after some files were written, removes them all and records none."""
    batch = [chunk(n, 5000) for n in range(4)]
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        calls = 0
        real_write, real_sync = os.write, os.fdatasync

        def failing_write(fd: int, data: object) -> int:
            nonlocal calls
            calls += 1
            if fails == "the third write" and calls == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)  # type: ignore[arg-type]

        def failing_sync(fd: int) -> None:
            nonlocal calls
            calls += 1
            if fails == "the second sync" and calls == len(batch) + 2:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_sync(fd)

        with monkeypatch.context() as m:
            m.setattr(os, "write", failing_write)
            m.setattr(os, "fdatasync", failing_sync)
            with pytest.raises(StoreIOError):
                store.put_many(batch)
        assert files_under(tmp_path / "s") == []
        assert (store.used_bytes, store.chunk_count) == (0, 0)
        assert store.free_bytes == 1 << 20
        store.put_many(batch)
        assert all(store.get(cid) == data for cid, data in batch)


def test_concurrent_puts_of_the_same_chunks_store_each_once(tmp_path: Path) -> None:
    chunks = [chunk(n, 5000) for n in range(24)]
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        with ThreadPoolExecutor(max_workers=6) as pool:
            for future in [pool.submit(store.put_many, chunks[i % 3 :: 3]) for i in range(12)]:
                future.result()
        assert (store.chunk_count, store.used_bytes) == (24, 24 * 5000)
        assert len(files_under(tmp_path / "s")) == 24
        assert store.scrub().clean


def test_capacity_counts_puts_still_being_written(tmp_path: Path) -> None:
    """Two puts racing for the last free bytes: one is refused, never both accepted."""
    a, b = chunk(1, 6000), chunk(2, 6000)
    with DiskChunkStore(tmp_path / "s", capacity=10_000) as store:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = [pool.submit(store.put, *c) for c in (a, b)]
            outcomes = [f.exception() for f in results]
        assert sum(isinstance(e, CapacityExceededError) for e in outcomes) == 1
        assert store.chunk_count == 1 and store.used_bytes == 6000


def test_a_format_1_store_is_upgraded_in_place_on_open(tmp_path: Path) -> None:
    """Format 1 kept chunk bytes in LevelDB (``cs/data/<id>``); opening it moves
    them to files and keeps every chunk and counter."""
    chunks = [chunk(n, 700 * (n + 1)) for n in range(3)]
    db = plyvel.DB(str(tmp_path / "s"), create_if_missing=True)
    db.put(b"cs/meta/version", struct.pack(">I", 1))
    db.put(b"cs/meta/used", struct.pack(">Q", sum(len(d) for _, d in chunks)))
    db.put(b"cs/meta/count", struct.pack(">Q", len(chunks)))
    for cid, data in chunks:
        db.put(b"cs/len/" + cid, struct.pack(">Q", len(data)))
        db.put(b"cs/data/" + cid, data)
    db.close()
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert store.chunk_count == 3
        for cid, data in chunks:
            assert store.get(cid) == data
        assert store.scrub().clean
    db = raw_db(tmp_path / "s")
    try:
        assert db.get(b"cs/meta/version") == struct.pack(">I", 3)
        assert list(db.iterator(prefix=b"cs/data/")) == []
    finally:
        db.close()
    assert len(files_under(tmp_path / "s")) == 3


def test_an_upgrade_cut_short_is_finished_at_the_next_open(tmp_path: Path) -> None:
    """A crash in the middle of the upgrade leaves a version-1 store with some
    chunk files (and perhaps a ``.part``) already written: the next open
    upgrades it again, and every chunk reads back."""
    chunks = [chunk(n, 900 * (n + 1)) for n in range(3)]
    db = plyvel.DB(str(tmp_path / "s"), create_if_missing=True)
    db.put(b"cs/meta/version", struct.pack(">I", 1))
    db.put(b"cs/meta/used", struct.pack(">Q", sum(len(d) for _, d in chunks)))
    db.put(b"cs/meta/count", struct.pack(">Q", len(chunks)))
    for cid, data in chunks:
        db.put(b"cs/len/" + cid, struct.pack(">Q", len(data)))
        db.put(b"cs/data/" + cid, data)
    db.close()
    (first, first_data), (second, second_data) = chunks[0], chunks[1]
    chunk_file(tmp_path / "s", first).parent.mkdir(parents=True)
    chunk_file(tmp_path / "s", first).write_bytes(first_data)
    chunk_file(tmp_path / "s", second).parent.mkdir(parents=True, exist_ok=True)
    part = chunk_file(tmp_path / "s", second).with_name(second.hex() + ".0badcafe.part")
    part.write_bytes(second_data[:10])
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        for cid, data in chunks:
            assert store.get(cid) == data
        assert store.scrub().clean
    assert not part.exists()
    assert len(files_under(tmp_path / "s")) == 3


def test_a_new_store_is_created_with_parents(tmp_path: Path) -> None:
    with DiskChunkStore(tmp_path / "a" / "b", capacity=10) as store:
        assert (store.used_bytes, store.free_bytes, store.capacity) == (0, 10, 10)


def test_missing_store_is_not_created_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        DiskChunkStore(tmp_path / "nope", capacity=10, create=False)
    assert not (tmp_path / "nope").exists()
    DiskChunkStore(tmp_path / "yes", capacity=10).close()
    DiskChunkStore(tmp_path / "yes", capacity=10, create=False).close()


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    DiskChunkStore(tmp_path / "s", capacity=10).close()
    db = raw_db(tmp_path / "s")
    db.put(b"cs/meta/version", struct.pack(">I", 4))
    db.close()
    with pytest.raises(StoreVersionError) as err:
        DiskChunkStore(tmp_path / "s", capacity=10)
    assert (err.value.found, err.value.supported) == (4, 3)
    # The refused open released the database: it can be opened again.
    raw_db(tmp_path / "s").close()


def test_a_file_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello")
    with pytest.raises(StoreUnrecognizedError):
        DiskChunkStore(tmp_path / "f", capacity=10)


def test_a_directory_of_other_files_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(StoreUnrecognizedError, match="not a storenode chunk store"):
        DiskChunkStore(tmp_path / "d", capacity=10)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["notes.txt"]


def test_another_leveldb_database_is_not_a_store(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    db.put(b"ledger/x", b"y")
    db.close()
    with pytest.raises(StoreUnrecognizedError):
        DiskChunkStore(tmp_path / "other", capacity=10)


def test_second_open_of_the_same_store_is_refused(tmp_path: Path) -> None:
    with (
        DiskChunkStore(tmp_path / "s", capacity=10),
        pytest.raises(StoreLockedError, match="stop that node first"),
    ):
        DiskChunkStore(tmp_path / "s", capacity=10)


def test_damaged_counter_is_reported_on_open(tmp_path: Path) -> None:
    DiskChunkStore(tmp_path / "s", capacity=10).close()
    db = raw_db(tmp_path / "s")
    db.put(b"cs/meta/used", b"\x01")
    db.close()
    with pytest.raises(StoreCorruptError, match="used-bytes counter"):
        DiskChunkStore(tmp_path / "s", capacity=10)


def test_scrub_notices_counters_that_disagree_with_the_chunks(tmp_path: Path) -> None:
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(*chunk(1))
    db = raw_db(tmp_path / "s")
    db.put(b"cs/meta/used", struct.pack(">Q", 1))
    db.close()
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        report = store.scrub()
    assert report.corrupt == ()
    assert not report.accounting_ok


def test_chunk_whose_bytes_were_lost_is_corrupt_not_absent(tmp_path: Path) -> None:
    cid, data = chunk(1)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
    chunk_file(tmp_path / "s", cid).unlink()
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert store.has(cid)
        with pytest.raises(ChunkCorruptError, match="missing"):
            store.get(cid)
        assert store.scrub().corrupt == (cid,)
        assert store.delete(cid)
        assert store.used_bytes == 0


def test_store_over_a_lowered_capacity_still_serves_but_accepts_nothing_new(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    held, new = chunk(1, 4000), chunk(2, 10)
    with DiskChunkStore(tmp_path / "s", capacity=10_000) as store:
        store.put(*held)
    with (
        caplog.at_level(logging.WARNING),
        DiskChunkStore(tmp_path / "s", capacity=1000) as store,
    ):
        assert "more than its capacity" in caplog.text
        assert (store.used_bytes, store.free_bytes) == (4000, 0)
        assert store.get(held[0]) == held[1]
        store.put(*held)
        with pytest.raises(CapacityExceededError):
            store.put(*new)
        store.delete(held[0])
        store.put(*new)


def _record(path: Path, cid: bytes) -> bytes | None:
    """The raw index record of chunk ``cid`` (the store must be closed)."""
    db = raw_db(path)
    try:
        raw: bytes | None = db.get(b"cs/len/" + cid)
        return raw
    finally:
        db.close()


def _set_record(path: Path, cid: bytes, raw: bytes) -> None:
    db = raw_db(path)
    try:
        db.put(b"cs/len/" + cid, raw)
    finally:
        db.close()


def _format_2_store(path: Path, chunks: list[tuple[bytes, bytes]]) -> None:
    """A store as format 2 left it: size records without a CRC."""
    with DiskChunkStore(path, capacity=1 << 20) as store:
        store.put_many(chunks)
    db = raw_db(path)
    try:
        db.put(b"cs/meta/version", struct.pack(">I", 2))
        for cid, data in chunks:
            db.put(b"cs/len/" + cid, struct.pack(">Q", len(data)))
    finally:
        db.close()


def test_a_format_2_store_opens_as_format_3_and_gains_crcs_as_chunks_are_read(
    tmp_path: Path,
) -> None:
    chunks = [chunk(n, 800 * (n + 1)) for n in range(3)]
    _format_2_store(tmp_path / "s", chunks)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert (store.chunk_count, store.used_bytes) == (3, 800 + 1600 + 2400)
        assert store.get(chunks[0][0]) == chunks[0][1]
        assert store.scrub().clean
    db = raw_db(tmp_path / "s")
    try:
        assert db.get(b"cs/meta/version") == struct.pack(">I", 3)
    finally:
        db.close()
    first, second = (_record(tmp_path / "s", cid) for cid, _ in chunks[:2])
    assert first == struct.pack(">QI", 800, zlib.crc32(chunks[0][1]))
    assert second == struct.pack(">Q", 1600), "a chunk not read yet keeps its format-2 record"


def test_a_format_2_chunk_with_damaged_bytes_is_still_refused(tmp_path: Path) -> None:
    """Without a CRC the Merkle root is checked, and bad bytes never get a CRC."""
    cid, data = chunk(1)
    _format_2_store(tmp_path / "s", [(cid, data)])
    damaged = bytearray(data)
    damaged[1234] ^= 0x01
    chunk_file(tmp_path / "s", cid).write_bytes(damaged)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        for _ in range(2):
            with pytest.raises(ChunkCorruptError):
                store.get(cid)
    assert _record(tmp_path / "s", cid) == struct.pack(">Q", len(data))


def test_a_damaged_crc_over_good_bytes_is_corrected_not_refused(tmp_path: Path) -> None:
    cid, data = chunk(1)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
    _set_record(tmp_path / "s", cid, struct.pack(">QI", len(data), zlib.crc32(data) ^ 1))
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert store.get(cid) == data
    assert _record(tmp_path / "s", cid) == struct.pack(">QI", len(data), zlib.crc32(data))


def test_a_record_of_the_wrong_length_is_a_corrupt_store(tmp_path: Path) -> None:
    cid, data = chunk(1)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
    _set_record(tmp_path / "s", cid, b"\x00" * 10)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        with pytest.raises(StoreCorruptError, match="record"):
            store.get(cid)
        assert store.scrub().corrupt == (cid,)


_DAMAGE_CHUNK = chunk(7, 5000)


@settings(max_examples=60, deadline=None)
@given(
    damage=st.lists(
        st.tuples(st.integers(0, 4999), st.integers(1, 255)),
        min_size=1,
        max_size=4,
        unique_by=lambda d: d[0],
    ),
    cut=st.sampled_from([None, 0, 1, 4999, 5001]),
)
def test_damaged_bytes_are_never_served(
    tmp_path_factory: pytest.TempPathFactory, damage: list[tuple[int, int]], cut: int | None
) -> None:
    """Any bytes flipped (up to four), or the file cut short or grown: a read refuses
    it, whether the CRC or the Merkle root catches it."""
    cid, data = _DAMAGE_CHUNK
    path = tmp_path_factory.mktemp("s") / "s"
    with DiskChunkStore(path, capacity=1 << 20) as store:
        store.put(cid, data)
    damaged = bytearray(data)
    for at, mask in damage:
        damaged[at] ^= mask
    if cut is not None:
        damaged = (damaged + b"x")[:cut]
    chunk_file(path, cid).write_bytes(damaged)
    with DiskChunkStore(path, capacity=1 << 20) as store:
        with pytest.raises(ChunkCorruptError):
            store.get(cid)
        assert store.scrub().corrupt == (cid,)


def test_a_chunk_with_a_crc_is_read_without_its_merkle_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid, data = chunk(1)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)

        def no_merkle(*args: object) -> bool:
            raise AssertionError("the Merkle root was computed on a read the CRC vouches for")

        monkeypatch.setattr("storenode.store.disk.chunk_ok", no_merkle)
        assert store.get(cid) == data


def test_a_delete_during_a_format_2_read_is_not_undone_by_its_crc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read checks the Merkle root, a delete commits meanwhile, then the read
    would record the CRC: the chunk must stay deleted."""
    cid, data = chunk(1)
    _format_2_store(tmp_path / "s", [(cid, data)])
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        real = chunk_ok

        def deleted_meanwhile(chunk_id: bytes, raw: bytes | None, size: int) -> bool:
            assert store.delete(chunk_id)
            return real(chunk_id, raw, size)

        monkeypatch.setattr(disk, "chunk_ok", deleted_meanwhile)
        assert store.get(cid) == data  # the bytes it had read
        assert not store.has(cid)
        assert (store.chunk_count, store.used_bytes) == (0, 0)
    assert _record(tmp_path / "s", cid) is None


def test_a_chunk_deleted_during_a_scrub_slice_is_not_reported_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A contract ends and its chunks are deleted while the background scrub reads
    them from its snapshot: a missing file is then a delete, not damage."""
    chunks = [chunk(n) for n in range(3)]
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many(chunks)
        gone = chunks[1][0]
        real = chunk_ok

        def deleted_meanwhile(chunk_id: bytes, raw: bytes | None, size: int) -> bool:
            if chunk_id == gone and store.has(gone):
                store.delete(gone)
                return False  # what the read of a file removed under it sees
            return real(chunk_id, raw, size)

        monkeypatch.setattr(disk_scrub, "chunk_ok", deleted_meanwhile)
        part = store.scrub_part(None, max_bytes=1 << 20)
        assert (part.checked, part.corrupt, part.last) == (3, (), None)
        assert not store.has(gone)


def _drop(path: Path) -> None:
    """Make the kernel drop ``path``'s pages from the page cache."""
    from storenode.files import drop_cache

    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # clean pages, so the kernel may drop them
        drop_cache(fd)
    finally:
        os.close(fd)


def test_a_cached_read_of_a_chunk_not_in_the_page_cache_is_none_until_read(
    tmp_path: Path,
) -> None:
    cid, data = chunk(1, 300_000)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
        assert store.get(cid) == data
        assert store.get_cached(cid) == bytearray(data)
        _drop(chunk_file(tmp_path / "s", cid))
        assert store.get_cached(cid) is None  # it would have waited for the disk
        assert store.get(cid) == data
        assert store.get_cached(cid) == bytearray(data)


def test_a_cached_read_of_a_file_longer_or_shorter_than_its_record_is_damage(
    tmp_path: Path,
) -> None:
    long_id, long_data = chunk(1, 5000)
    short_id, short_data = chunk(2, 5000)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many([(long_id, long_data), (short_id, short_data)])
    with open(chunk_file(tmp_path / "s", long_id), "ab") as f:
        f.write(b"x")
    with open(chunk_file(tmp_path / "s", short_id), "r+b") as f:
        f.truncate(4000)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        for chunk_id in (long_id, short_id):
            assert store.get_cached(chunk_id) is None  # whatever the page cache holds
            with pytest.raises(ChunkCorruptError):
                store.get(chunk_id)
            assert store.get_cached(chunk_id) is None


def test_a_page_aligned_chunk_whose_file_grew_is_never_served_from_the_cache(
    tmp_path: Path,
) -> None:
    cid, data = chunk(1, 8192)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
    path = chunk_file(tmp_path / "s", cid)
    with open(path, "ab") as f:
        f.write(b"x" * 4096)
    _drop(path)
    with open(path, "rb") as f:
        assert f.read(8192) == data  # the record's bytes cached, the grown tail not
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert store.get_cached(cid) is None
        with pytest.raises(ChunkCorruptError):
            store.get(cid)


def test_a_partly_cached_healthy_chunk_is_none_not_damage(tmp_path: Path) -> None:
    cid, data = chunk(3, 1 << 20)
    with DiskChunkStore(tmp_path / "s", capacity=4 << 20) as store:
        store.put(cid, data)
        path = chunk_file(tmp_path / "s", cid)
        _drop(path)
        with open(path, "rb", buffering=0) as f:
            f.read(4096)  # the first page back, and readahead's window: not all 1 MiB
        assert store.get_cached(cid) is None
        assert store.get(cid) == data
        assert store.get_cached(cid) == bytearray(data)


@pytest.mark.parametrize("how", ["no flag", "EOPNOTSUPP", "EINVAL"])
def test_a_file_system_that_cannot_read_without_waiting_is_asked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    calls = []

    def preadv(fd: int, buffers: list[bytearray], offset: int, flags: int = 0) -> int:
        calls.append(flags)
        raise OSError(errno.EOPNOTSUPP if how == "EOPNOTSUPP" else errno.EINVAL, how)

    cid, data = chunk(1, 5000)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
        if how == "no flag":
            monkeypatch.setattr(files, "_RWF_NOWAIT", None)
        else:
            monkeypatch.setattr(os, "preadv", preadv)
        assert store.get_cached(cid) is None
        assert store.get_cached(cid) is None
        assert store.get(cid) == data
    assert len(calls) == (0 if how == "no flag" else 1)


def test_the_background_scrub_leaves_chunks_readers_use_in_the_page_cache(
    tmp_path: Path,
) -> None:
    """The scrub reads what the disk holds (O_DIRECT), not the cache's copy, and does
    not evict it: a chunk listeners are reading stays on the host's fast path."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"probe")
    try:
        files.read_direct(probe)
    except files.DirectReadUnsupportedError:
        pytest.skip(f"{tmp_path}'s file system cannot read with O_DIRECT")
    cid, data = chunk(1, 300_000)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
        assert store.get(cid) == data
        assert store.get_cached(cid) == bytearray(data)
        assert store.scrub_part(None, max_bytes=1 << 20).checked == 1
        assert store.get_cached(cid) == bytearray(data), (
            "the scrub evicted a chunk readers had cached"
        )


def test_a_scrub_on_a_file_system_without_direct_reads_still_finds_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tries = []
    real_open = os.open

    def refusing_open(path: object, flags: int, *args: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            tries.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    good, bad = chunk(1, 5000), chunk(2, 5000)
    with DiskChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many([good, bad])
        chunk_file(tmp_path / "s", bad[0]).write_bytes(b"x" + bad[1][1:])
        monkeypatch.setattr(os, "open", refusing_open)
        with caplog.at_level(logging.INFO, logger="storenode.store.disk"):
            for _ in range(2):
                assert store.scrub_part(None, max_bytes=1 << 20).corrupt == (bad[0],)
    assert len(tries) == 1, "a file system without O_DIRECT is asked once"
    assert "cannot read past the page cache" in caplog.text
