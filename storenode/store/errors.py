"""Typed errors of the chunk store. Every one is a :class:`StoreError`.

Errors an operator may see say what to do about them.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error raised by :mod:`storenode.store`."""


class StoreClosedError(StoreError):
    """The store was used after :meth:`close`."""

    def __init__(self) -> None:
        super().__init__("the chunk store is closed")


class StoreNotFoundError(StoreError):
    """There is no store at the path and creating one was not asked for."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no chunk store at {path}: check the data directory in the config")


class StoreUnrecognizedError(StoreError):
    """The path holds something that is not a storenode chunk store."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(
            f"{path} is not a storenode chunk store ({why}): "
            "point the data directory at an empty or a storenode directory"
        )


class StoreVersionError(StoreError):
    """The store was written in a format version this program does not read."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"the chunk store at {path} has format version {found}, this storenode reads "
            f"version {supported}: run a storenode that supports version {found}"
        )


class StoreCorruptError(StoreError):
    """The LevelDB files or the store's own records are damaged."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(
            f"the chunk store at {path} is damaged ({why}): "
            "restore it from a backup, or move it aside and let the node start empty"
        )


class StoreLockedError(StoreError):
    """Another process (or another store object) has the store open."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"the chunk store at {path} is in use by another process: stop that node first"
        )


class StoreIOError(StoreError):
    """LevelDB failed to read or write (disk full, I/O error)."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"the chunk store at {path} failed: {why}; check the disk")


class CapacityInvalidError(StoreError, ValueError):
    """The capacity is not a whole number of bytes >= 0."""

    def __init__(self, capacity: object) -> None:
        self.capacity = capacity
        super().__init__(
            f"capacity {capacity!r} is not a whole number of bytes >= 0: fix it in the config"
        )


class CapacityExceededError(StoreError):
    """Storing the chunks would take the store over its capacity. Nothing was written."""

    def __init__(self, needed: int, used: int, capacity: int) -> None:
        self.needed = needed
        self.used = used
        self.capacity = capacity
        self.free = max(0, capacity - used)
        super().__init__(
            f"storing {needed} bytes would exceed the capacity of {capacity} bytes "
            f"({used} used, {self.free} free): raise capacity in config or free space"
        )


class ChunkIdInvalidError(StoreError, ValueError):
    """A chunk id is not 32 bytes."""

    def __init__(self, chunk_id: object) -> None:
        self.chunk_id = chunk_id
        super().__init__(f"a chunk id is 32 bytes, not {chunk_id!r}")


class ChunkMismatchError(StoreError, ValueError):
    """The bytes offered for a chunk do not hash to its id. Nothing was written."""

    def __init__(self, chunk_id: bytes, actual: bytes) -> None:
        self.chunk_id = chunk_id
        self.actual = actual
        super().__init__(f"bytes offered as chunk {chunk_id.hex()} have Merkle root {actual.hex()}")


class ChunkNotFoundError(StoreError):
    """The store does not hold the chunk."""

    def __init__(self, chunk_id: bytes) -> None:
        self.chunk_id = chunk_id
        super().__init__(f"chunk {chunk_id.hex()} is not in the store")


class ChunkCorruptError(StoreError):
    """The stored bytes of a chunk no longer match its id; they are never served."""

    def __init__(self, chunk_id: bytes, why: str = "its bytes no longer match its id") -> None:
        self.chunk_id = chunk_id
        super().__init__(
            f"chunk {chunk_id.hex()} is corrupt on disk ({why}): "
            "delete it and fetch it again from the network"
        )
