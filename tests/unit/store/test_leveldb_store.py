"""What only the LevelDB store does: persist, keep the documented layout, refuse strangers."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import plyvel
import pytest

from storenode.coding.merkle import merkle_root
from storenode.store import (
    CapacityExceededError,
    ChunkCorruptError,
    LevelDBChunkStore,
    StoreCorruptError,
    StoreLockedError,
    StoreNotFoundError,
    StoreUnrecognizedError,
    StoreVersionError,
)


def chunk(n: int, size: int = 3000) -> tuple[bytes, bytes]:
    data = (n.to_bytes(4, "big") * (size // 4 + 1))[:size]
    return merkle_root(data), data


def raw_db(path: Path) -> plyvel.DB:
    return plyvel.DB(str(path))


def test_chunks_and_used_bytes_survive_reopen(tmp_path: Path) -> None:
    chunks = [chunk(n, 1000 * (n + 1)) for n in range(4)]
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many(chunks[:3])
        store.put(*chunks[3])
        store.delete(chunks[0][0])
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        assert store.used_bytes == 2000 + 3000 + 4000
        assert store.chunk_count == 3
        assert sorted(store.ids()) == sorted(cid for cid, _ in chunks[1:])
        for cid, data in chunks[1:]:
            assert store.get(cid) == data
        assert store.scrub().clean


def test_raw_layout_matches_the_spec(tmp_path: Path) -> None:
    (a, da), (b, db_) = chunk(1, 1500), chunk(2, 10)
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put_many([(a, da), (b, db_)])
    db = raw_db(tmp_path / "s")
    try:
        assert dict(db.iterator()) == {
            b"cs/meta/version": b"\x00\x00\x00\x01",
            b"cs/meta/used": struct.pack(">Q", 1510),
            b"cs/meta/count": struct.pack(">Q", 2),
            b"cs/len/" + a: struct.pack(">Q", 1500),
            b"cs/len/" + b: struct.pack(">Q", 10),
            b"cs/data/" + a: da,
            b"cs/data/" + b: db_,
        }
    finally:
        db.close()


def test_a_new_store_is_created_with_parents(tmp_path: Path) -> None:
    with LevelDBChunkStore(tmp_path / "a" / "b", capacity=10) as store:
        assert (store.used_bytes, store.free_bytes, store.capacity) == (0, 10, 10)


def test_missing_store_is_not_created_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        LevelDBChunkStore(tmp_path / "nope", capacity=10, create=False)
    assert not (tmp_path / "nope").exists()
    LevelDBChunkStore(tmp_path / "yes", capacity=10).close()
    LevelDBChunkStore(tmp_path / "yes", capacity=10, create=False).close()


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    LevelDBChunkStore(tmp_path / "s", capacity=10).close()
    db = raw_db(tmp_path / "s")
    db.put(b"cs/meta/version", struct.pack(">I", 2))
    db.close()
    with pytest.raises(StoreVersionError) as err:
        LevelDBChunkStore(tmp_path / "s", capacity=10)
    assert (err.value.found, err.value.supported) == (2, 1)
    # The refused open released the database: it can be opened again.
    raw_db(tmp_path / "s").close()


def test_a_file_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello")
    with pytest.raises(StoreUnrecognizedError):
        LevelDBChunkStore(tmp_path / "f", capacity=10)


def test_a_directory_of_other_files_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(StoreUnrecognizedError, match="not a storenode chunk store"):
        LevelDBChunkStore(tmp_path / "d", capacity=10)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["notes.txt"]


def test_another_leveldb_database_is_not_a_store(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    db.put(b"ledger/x", b"y")
    db.close()
    with pytest.raises(StoreUnrecognizedError):
        LevelDBChunkStore(tmp_path / "other", capacity=10)


def test_second_open_of_the_same_store_is_refused(tmp_path: Path) -> None:
    with (
        LevelDBChunkStore(tmp_path / "s", capacity=10),
        pytest.raises(StoreLockedError, match="stop that node first"),
    ):
        LevelDBChunkStore(tmp_path / "s", capacity=10)


def test_damaged_counter_is_reported_on_open(tmp_path: Path) -> None:
    LevelDBChunkStore(tmp_path / "s", capacity=10).close()
    db = raw_db(tmp_path / "s")
    db.put(b"cs/meta/used", b"\x01")
    db.close()
    with pytest.raises(StoreCorruptError, match="used-bytes counter"):
        LevelDBChunkStore(tmp_path / "s", capacity=10)


def test_scrub_notices_counters_that_disagree_with_the_chunks(tmp_path: Path) -> None:
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(*chunk(1))
    db = raw_db(tmp_path / "s")
    db.put(b"cs/meta/used", struct.pack(">Q", 1))
    db.close()
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        report = store.scrub()
    assert report.corrupt == ()
    assert not report.accounting_ok


def test_chunk_whose_bytes_were_lost_is_corrupt_not_absent(tmp_path: Path) -> None:
    cid, data = chunk(1)
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
        store.put(cid, data)
    db = raw_db(tmp_path / "s")
    db.delete(b"cs/data/" + cid)
    db.close()
    with LevelDBChunkStore(tmp_path / "s", capacity=1 << 20) as store:
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
    with LevelDBChunkStore(tmp_path / "s", capacity=10_000) as store:
        store.put(*held)
    with (
        caplog.at_level(logging.WARNING),
        LevelDBChunkStore(tmp_path / "s", capacity=1000) as store,
    ):
        assert "more than its capacity" in caplog.text
        assert (store.used_bytes, store.free_bytes) == (4000, 0)
        assert store.get(held[0]) == held[1]
        store.put(*held)
        with pytest.raises(CapacityExceededError):
            store.put(*new)
        store.delete(held[0])
        store.put(*new)
