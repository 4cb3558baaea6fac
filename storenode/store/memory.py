"""A chunk store in a dict, for tests. Same contract as the disk store, minus durability."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

from storenode.store.errors import ChunkCorruptError, ChunkNotFoundError, StoreClosedError
from storenode.store.protocol import (
    ChunkBytes,
    ScrubPart,
    ScrubReport,
    check_capacity,
    check_fits,
    check_id,
    chunk_ok,
    verified,
)


class MemoryChunkStore:
    """Implements :class:`~storenode.store.protocol.ChunkStore` in memory."""

    def __init__(self, *, capacity: int) -> None:
        self._capacity = check_capacity(capacity)
        self._data: dict[bytes, bytes] = {}
        self._sizes: dict[bytes, int] = {}
        self._used = 0
        self._lock = threading.Lock()
        self._closed = False

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
        return len(self._sizes)

    def put(self, chunk_id: bytes, data: ChunkBytes) -> None:
        self.put_many([(chunk_id, data)])

    def put_many(self, chunks: Iterable[tuple[bytes, ChunkBytes]]) -> None:
        self._check_open()
        batch = verified(chunks)
        with self._lock:
            self._check_open()
            for chunk_id, raw in batch.items():  # held, but damaged: the bytes put replace it
                size = self._sizes.get(chunk_id)
                if size is not None and not chunk_ok(chunk_id, self._data.get(chunk_id), size):
                    self._data[chunk_id] = raw
            new = {k: v for k, v in batch.items() if k not in self._sizes}
            if not new:
                return
            needed = sum(len(v) for v in new.values())
            check_fits(needed, self._used, self._capacity)
            for chunk_id, raw in new.items():
                self._data[chunk_id] = raw
                self._sizes[chunk_id] = len(raw)
            self._used += needed

    def get(self, chunk_id: bytes) -> bytes:
        check_id(chunk_id)
        self._check_open()
        size = self._sizes.get(chunk_id)
        if size is None:
            raise ChunkNotFoundError(chunk_id)
        data = self._data.get(chunk_id)
        if not chunk_ok(chunk_id, data, size):
            raise ChunkCorruptError(chunk_id)
        assert data is not None
        return data

    def get_cached(self, chunk_id: bytes) -> bytes:
        return self.get(chunk_id)  # all of it is in memory

    def has(self, chunk_id: bytes) -> bool:
        check_id(chunk_id)
        self._check_open()
        return chunk_id in self._sizes

    def delete(self, chunk_id: bytes) -> bool:
        check_id(chunk_id)
        with self._lock:
            self._check_open()
            size = self._sizes.pop(chunk_id, None)
            if size is None:
                return False
            self._data.pop(chunk_id, None)
            self._used -= size
            return True

    def ids(self) -> Iterator[bytes]:
        self._check_open()
        with self._lock:
            snapshot = sorted(self._sizes)
        return iter(snapshot)

    def scrub(self) -> ScrubReport:
        self._check_open()
        with self._lock:
            sizes = dict(self._sizes)
            data = dict(self._data)
            used = self._used
        corrupt = tuple(k for k in sorted(sizes) if not chunk_ok(k, data.get(k), sizes[k]))
        total = sum(sizes.values())
        return ScrubReport(len(sizes), total, corrupt, accounting_ok=total == used)

    def scrub_part(self, after: bytes | None, max_bytes: int) -> ScrubPart:
        self._check_open()
        if after is not None:
            check_id(after)
        with self._lock:
            sizes = dict(self._sizes)
            data = dict(self._data)
        corrupt: list[bytes] = []
        checked = total = 0
        last: bytes | None = None
        for chunk_id in sorted(k for k in sizes if after is None or k > after):
            if checked and total >= max_bytes:
                return ScrubPart(checked, total, tuple(corrupt), last)
            last = chunk_id
            if not chunk_ok(chunk_id, data.get(chunk_id), sizes[chunk_id]):
                corrupt.append(chunk_id)
            checked += 1
            total += sizes[chunk_id]
        return ScrubPart(checked, total, tuple(corrupt), None)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def tamper(self, chunk_id: bytes, data: bytes) -> None:
        """Replace a held chunk's bytes without verifying them: simulated bit rot, for tests."""
        check_id(chunk_id)
        with self._lock:
            if chunk_id not in self._sizes:
                raise ChunkNotFoundError(chunk_id)
            self._data[chunk_id] = bytes(data)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError()
