"""Random put/delete sequences keep the accounting exact on both stores."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from storenode.coding.merkle import merkle_root
from storenode.store import (
    CapacityExceededError,
    ChunkStore,
    DiskChunkStore,
    MemoryChunkStore,
)

CAPACITY = 8192


@dataclass(frozen=True)
class Put:
    """Put a batch of chunks, each given as (fill byte, size)."""

    chunks: list[tuple[int, int]]


@dataclass(frozen=True)
class Delete:
    """Delete the i-th chunk ever offered (modulo), held or not."""

    index: int


@dataclass(frozen=True)
class Reopen:
    """Restart the store (LevelDB; a no-op for memory)."""


Op = Put | Delete | Reopen

_sizes = st.tuples(st.integers(0, 15), st.integers(0, 3000))
ops_strategy = st.lists(
    st.one_of(
        st.builds(Put, st.lists(_sizes, min_size=1, max_size=3)),
        st.builds(Delete, st.integers(0, 40)),
        st.just(Reopen()),
    ),
    max_size=25,
)


def chunk_of(fill: int, size: int) -> tuple[bytes, bytes]:
    data = bytes([fill]) * size
    return merkle_root(data), data


def check_invariants(store: ChunkStore, model: dict[bytes, bytes]) -> None:
    assert store.used_bytes == sum(len(d) for d in model.values())
    assert store.used_bytes <= store.capacity
    assert store.free_bytes == store.capacity - store.used_bytes
    assert store.chunk_count == len(model)
    assert list(store.ids()) == sorted(model)
    for cid, data in model.items():
        assert store.get(cid) == data


def run_ops(ops: list[Op], path: Path | None) -> None:
    """Apply ``ops`` to a store (LevelDB at ``path``, else memory) and to a dict model."""

    def fresh() -> ChunkStore:
        if path is None:
            return MemoryChunkStore(capacity=CAPACITY)
        return DiskChunkStore(path, capacity=CAPACITY)

    store = fresh()
    model: dict[bytes, bytes] = {}
    offered: list[bytes] = []
    try:
        for op in ops:
            if isinstance(op, Put):
                batch = [chunk_of(fill, size) for fill, size in op.chunks]
                offered.extend(cid for cid, _ in batch)
                new = {cid: d for cid, d in batch if cid not in model}
                needed = sum(len(d) for d in new.values())
                try:
                    store.put_many(batch)
                except CapacityExceededError:
                    assert new and store.used_bytes + needed > CAPACITY, "refused although it fit"
                else:
                    model.update(new)
            elif isinstance(op, Delete) and offered:
                cid = offered[op.index % len(offered)]
                assert store.delete(cid) == (cid in model)
                model.pop(cid, None)
            elif isinstance(op, Reopen) and path is not None:
                store.close()
                store = fresh()
            check_invariants(store, model)
        assert store.scrub().clean
    finally:
        store.close()


@given(ops=ops_strategy)
def test_memory_store_accounting_is_exact(ops: list[Op]) -> None:
    run_ops(ops, None)


@given(ops=ops_strategy)
def test_disk_store_accounting_is_exact_across_reopens(ops: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_ops(ops, Path(tmp) / "s")
