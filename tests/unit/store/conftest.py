"""One contract, two stores: the ``harness`` fixture runs a test on memory and on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storenode.store import ChunkStore, DiskChunkStore, MemoryChunkStore


def chunk_file(store_path: Path, chunk_id: bytes) -> Path:
    """Where docs/specs/chunk-store.md puts a chunk's bytes."""
    name = chunk_id.hex()
    return store_path / "chunks" / name[:2] / name


class Harness:
    """Opens, reopens and damages a store of one kind."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self._store: ChunkStore | None = None

    def open(self, capacity: int = 1 << 20) -> ChunkStore:
        self.close()
        if self.kind == "memory":
            self._store = MemoryChunkStore(capacity=capacity)
        else:
            self._store = DiskChunkStore(self.path, capacity=capacity)
        return self._store

    def reopen(self) -> ChunkStore:
        """The store as a restarted process would see it (memory: the same object)."""
        assert self._store is not None
        if self.kind == "memory":
            return self._store
        return self.open(self._store.capacity)

    def corrupt(self, chunk_id: bytes) -> ChunkStore:
        """Flip every stored byte of a chunk behind the store's back; the store to use next."""
        store = self._store
        assert store is not None
        if isinstance(store, MemoryChunkStore):
            store.tamper(chunk_id, bytes(b ^ 0xFF for b in store.get(chunk_id)))
            return store
        capacity = store.capacity
        store.close()
        path = chunk_file(self.path, chunk_id)
        path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))
        return self.open(capacity)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


@pytest.fixture(params=["memory", "disk"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(request.param, tmp_path / "store")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def store(harness: Harness) -> ChunkStore:
    return harness.open()
