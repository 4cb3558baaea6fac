"""The chunk store on LevelDB (plyvel). Key layout: ``docs/specs/chunk-store.md``.

Keys (format version 1), integers big endian::

    cs/meta/version   u32 format version (1)
    cs/meta/used      u64 sum of the sizes of the chunks held
    cs/meta/count     u64 number of chunks held
    cs/len/<id>       u64 size of chunk <id>; its presence means the chunk is held
    cs/data/<id>      the chunk's bytes

A put or delete writes the chunk's two records and both counters in one write
batch with ``sync=True``, so after a crash the counters match the chunks present.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import plyvel

from storenode.coding.merkle import merkle_root
from storenode.leveldb import ClosingDatabase, OpenErrors, open_leveldb, translated
from storenode.store.errors import (
    ChunkCorruptError,
    ChunkNotFoundError,
    StoreClosedError,
    StoreCorruptError,
    StoreIOError,
    StoreLockedError,
    StoreNotFoundError,
    StoreUnrecognizedError,
    StoreVersionError,
)
from storenode.store.protocol import (
    CHUNK_ID_SIZE,
    ChunkBytes,
    ScrubReport,
    check_capacity,
    check_fits,
    check_id,
    chunk_ok,
    verified,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
VERSION_KEY = b"cs/meta/version"
USED_KEY = b"cs/meta/used"
COUNT_KEY = b"cs/meta/count"
LEN_PREFIX = b"cs/len/"
DATA_PREFIX = b"cs/data/"

CHUNK_DB_OPTIONS: Final[dict[str, Any]] = {
    "compression": None,
    "write_buffer_size": 64 << 20,
    "max_file_size": 64 << 20,
}
"""Chunks are coded media, which does not compress, and large: snappy only
costs CPU, and LevelDB's 4 MiB memtable and 2 MiB tables flush and compact
every dozen chunks. Measured with one chunk service taking 600 chunks of
341 KiB over the wire (8 requests in flight): its CPU per chunk fell from
3.8 to 2.9 ms and its intake rose from 116 to 143–152 MB/s."""

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class LevelDBChunkStore(ClosingDatabase):
    """Implements :class:`~storenode.store.protocol.ChunkStore` in a LevelDB directory.

    ``path`` is created (with its parents) when ``create`` is true and nothing is
    there. One process at a time may hold a store open (LevelDB's lock).
    Thread-safe: writes are serialized, reads are not.
    """

    def __init__(self, path: str | os.PathLike[str], *, capacity: int, create: bool = True) -> None:
        self._capacity = check_capacity(capacity)
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._closed = True
        self._db: Any = self._open(create)
        try:
            self._used, self._count = self._load_or_init()
        except BaseException:
            self._db.close()
            raise
        self._closed = False
        if self._used > self._capacity:
            log.warning(
                "chunk store %s holds %d bytes, more than its capacity of %d: "
                "no new chunks will be accepted until capacity is raised or chunks deleted",
                self._path,
                self._used,
                self._capacity,
            )

    @property
    def path(self) -> str:
        return self._path

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def used_bytes(self) -> int:
        self._check_open()
        return self._used

    @property
    def free_bytes(self) -> int:
        self._check_open()
        return max(0, self._capacity - self._used)

    @property
    def chunk_count(self) -> int:
        self._check_open()
        return self._count

    def put(self, chunk_id: bytes, data: ChunkBytes) -> None:
        self.put_many([(chunk_id, data)])

    def put_many(self, chunks: Iterable[tuple[bytes, ChunkBytes]]) -> None:
        self._check_open()
        batch = verified(chunks)
        with self._lock, self._guard():
            self._check_open()
            new = {k: v for k, v in batch.items() if self._db.get(LEN_PREFIX + k) is None}
            if not new:
                return
            needed = sum(len(v) for v in new.values())
            check_fits(needed, self._used, self._capacity)
            used, count = self._used + needed, self._count + len(new)
            wb = self._db.write_batch(sync=True)
            for chunk_id, raw in new.items():
                wb.put(DATA_PREFIX + chunk_id, raw)
                wb.put(LEN_PREFIX + chunk_id, _U64.pack(len(raw)))
            wb.put(USED_KEY, _U64.pack(used))
            wb.put(COUNT_KEY, _U64.pack(count))
            wb.write()
            self._used, self._count = used, count

    def get(self, chunk_id: bytes) -> bytes:
        check_id(chunk_id)
        self._check_open()
        try:
            with self._guard():
                data: bytes | None = self._db.get(DATA_PREFIX + chunk_id)
                if data is None:
                    # Absent, or held with its bytes lost: ask one consistent snapshot.
                    with self._db.snapshot() as snap:
                        data = snap.get(DATA_PREFIX + chunk_id)
                        held = snap.get(LEN_PREFIX + chunk_id) is not None
                    if data is None:
                        if held:
                            raise ChunkCorruptError(chunk_id, "its bytes are missing")
                        raise ChunkNotFoundError(chunk_id)
        except StoreCorruptError as e:
            raise ChunkCorruptError(chunk_id, "LevelDB reports a damaged block") from e
        if merkle_root(data) != chunk_id:
            raise ChunkCorruptError(chunk_id)
        return data

    def has(self, chunk_id: bytes) -> bool:
        check_id(chunk_id)
        self._check_open()
        with self._guard():
            return self._db.get(LEN_PREFIX + chunk_id) is not None

    def delete(self, chunk_id: bytes) -> bool:
        check_id(chunk_id)
        with self._lock, self._guard():
            self._check_open()
            raw: bytes | None = self._db.get(LEN_PREFIX + chunk_id)
            if raw is None:
                return False
            size = self._u64(raw, "a chunk's size record")
            # Only tampering can make size exceed the counters; never go negative.
            used, count = max(0, self._used - size), max(0, self._count - 1)
            wb = self._db.write_batch(sync=True)
            wb.delete(DATA_PREFIX + chunk_id)
            wb.delete(LEN_PREFIX + chunk_id)
            wb.put(USED_KEY, _U64.pack(used))
            wb.put(COUNT_KEY, _U64.pack(count))
            wb.write()
            self._used, self._count = used, count
            return True

    def ids(self) -> Iterator[bytes]:
        self._check_open()
        return self._iter_ids()

    def _iter_ids(self) -> Iterator[bytes]:
        with self._guard(), self._db.snapshot() as snap:
            it = snap.iterator(prefix=LEN_PREFIX, include_value=False)
            with it:
                for key in it:
                    yield self._id_of(key)

    def scrub(self) -> ScrubReport:
        self._check_open()
        corrupt: list[bytes] = []
        checked = total = 0
        with self._guard(), self._db.snapshot() as snap:
            used = self._u64(snap.get(USED_KEY), "the used-bytes counter")
            count = self._u64(snap.get(COUNT_KEY), "the chunk counter")
            with snap.iterator(prefix=LEN_PREFIX) as it:
                for key, value in it:
                    chunk_id = self._id_of(key)
                    size = _U64.unpack(value)[0] if len(value) == _U64.size else -1
                    try:
                        data: bytes | None = snap.get(DATA_PREFIX + chunk_id)
                    except plyvel.CorruptionError:
                        data = None
                    if not chunk_ok(chunk_id, data, size):
                        corrupt.append(chunk_id)
                    checked += 1
                    total += max(size, 0)
        ok = total == used and checked == count
        return ScrubReport(checked, total, tuple(corrupt), accounting_ok=ok)

    def __repr__(self) -> str:
        return f"LevelDBChunkStore({self._path!r}, capacity={self._capacity})"

    # -- opening ---------------------------------------------------------------

    def _open(self, create: bool) -> Any:
        return open_leveldb(self._path, create=create, errors=_OPEN_ERRORS, **CHUNK_DB_OPTIONS)

    def _load_or_init(self) -> tuple[int, int]:
        with self._guard():
            raw: bytes | None = self._db.get(VERSION_KEY)
            if raw is None:
                with self._db.iterator(include_value=False) as it:
                    if next(it, None) is not None:
                        raise StoreUnrecognizedError(
                            self._path, "a LevelDB database without a chunk-store version"
                        )
                wb = self._db.write_batch(sync=True)
                wb.put(VERSION_KEY, _U32.pack(FORMAT_VERSION))
                wb.put(USED_KEY, _U64.pack(0))
                wb.put(COUNT_KEY, _U64.pack(0))
                wb.write()
                return 0, 0
            if len(raw) != _U32.size:
                raise StoreCorruptError(self._path, f"version record of {len(raw)} bytes")
            (version,) = _U32.unpack(raw)
            if version != FORMAT_VERSION:
                raise StoreVersionError(self._path, version, FORMAT_VERSION)
            used = self._u64(self._db.get(USED_KEY), "the used-bytes counter")
            count = self._u64(self._db.get(COUNT_KEY), "the chunk counter")
            return used, count

    # -- helpers ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate plyvel's errors into store errors."""
        try:
            with translated(self._path, _OPEN_ERRORS):
                yield
        except RuntimeError as e:
            # plyvel raises RuntimeError when the database was closed under us.
            if self._closed:
                raise StoreClosedError() from e
            raise

    def _u64(self, raw: bytes | None, what: str) -> int:
        if raw is None or len(raw) != _U64.size:
            raise StoreCorruptError(self._path, f"{what} is missing or malformed")
        value: int = _U64.unpack(raw)[0]
        return value

    def _id_of(self, key: bytes) -> bytes:
        chunk_id = key[len(LEN_PREFIX) :]
        if len(chunk_id) != CHUNK_ID_SIZE:
            raise StoreCorruptError(self._path, f"malformed key {key!r}")
        return chunk_id


_OPEN_ERRORS = OpenErrors(
    not_found=StoreNotFoundError,
    unrecognized=StoreUnrecognizedError,
    corrupt=StoreCorruptError,
    locked=StoreLockedError,
    io=StoreIOError,
)
