"""The chunk store: chunks held under their Merkle-root ids, verified in and out.

``ChunkStore`` is the interface; ``DiskChunkStore`` keeps chunks durably on
disk (a file per chunk, indexed in LevelDB; layout in
``docs/specs/chunk-store.md``), ``MemoryChunkStore`` in a dict for tests.
"""

from typing import TYPE_CHECKING

from storenode.store.disk import DiskChunkStore
from storenode.store.disk_layout import FORMAT_VERSION
from storenode.store.errors import (
    CapacityExceededError,
    CapacityInvalidError,
    ChunkCorruptError,
    ChunkIdInvalidError,
    ChunkMismatchError,
    ChunkNotFoundError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreIOError,
    StoreLockedError,
    StoreNotFoundError,
    StoreUnrecognizedError,
    StoreVersionError,
)
from storenode.store.memory import MemoryChunkStore
from storenode.store.protocol import (
    CHUNK_ID_SIZE,
    ChunkBytes,
    ChunkStore,
    ScrubPart,
    ScrubReport,
)

__all__ = [
    "CHUNK_ID_SIZE",
    "FORMAT_VERSION",
    "CapacityExceededError",
    "CapacityInvalidError",
    "ChunkBytes",
    "ChunkCorruptError",
    "ChunkIdInvalidError",
    "ChunkMismatchError",
    "ChunkNotFoundError",
    "ChunkStore",
    "DiskChunkStore",
    "MemoryChunkStore",
    "ScrubPart",
    "ScrubReport",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreIOError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreUnrecognizedError",
    "StoreVersionError",
]

if TYPE_CHECKING:  # both stores satisfy the protocol (checked by mypy)
    _memory: type[ChunkStore] = MemoryChunkStore
    _disk: type[ChunkStore] = DiskChunkStore
