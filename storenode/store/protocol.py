"""The :class:`ChunkStore` interface, its scrub report, and the checks every store shares.

A chunk is stored under its id, the Merkle root of its bytes
(:func:`storenode.coding.merkle.merkle_root`). A store verifies bytes against
the id when they come in (:meth:`ChunkStore.put`) and again when they go out
(:meth:`ChunkStore.get`), so it never serves corrupt bytes.

Capacity counts chunk bytes only. A put that would take ``used_bytes`` over
``capacity`` is refused whole. A store opened with a capacity below what it
already holds still opens and serves; ``free_bytes`` is then 0 and every put
of new bytes is refused until chunks are deleted or capacity is raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from storenode.coding.merkle import HASH_SIZE, merkle_root
from storenode.store.errors import (
    CapacityExceededError,
    CapacityInvalidError,
    ChunkIdInvalidError,
    ChunkMismatchError,
)

CHUNK_ID_SIZE = HASH_SIZE

ChunkBytes = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class ScrubReport:
    """What :meth:`ChunkStore.scrub` found. Scrubbing deletes nothing."""

    checked: int
    """Chunks verified."""
    bytes_checked: int
    """Sum of the recorded sizes of the chunks verified."""
    corrupt: tuple[bytes, ...]
    """Ids of chunks whose bytes are missing or no longer match the id, ascending."""
    accounting_ok: bool
    """The used-bytes and chunk counters equal the sums over the chunks present."""

    @property
    def clean(self) -> bool:
        return not self.corrupt and self.accounting_ok


@dataclass(frozen=True, slots=True)
class ScrubPart:
    """What :meth:`ChunkStore.scrub_part` found in one slice of the store."""

    checked: int
    """Chunks verified in this slice."""
    bytes_checked: int
    """Sum of their recorded sizes."""
    corrupt: tuple[bytes, ...]
    """Ids of those whose bytes are missing or no longer match the id, ascending."""
    last: bytes | None
    """The last id checked, to pass as ``after`` for the next slice; None when this
    slice reached the end of the store (the pass is complete)."""


class ChunkStore(Protocol):
    """Content-addressed chunk storage with a hard capacity.

    After :meth:`close`, every method and property but ``capacity`` raises
    ``StoreClosedError``. Every method taking an id raises ``ChunkIdInvalidError``
    for one that is not 32 bytes.
    """

    @property
    def capacity(self) -> int:
        """The operator's limit on chunk bytes."""
        ...

    @property
    def used_bytes(self) -> int:
        """Exact sum of the sizes of the chunks held."""
        ...

    @property
    def free_bytes(self) -> int:
        """``capacity - used_bytes``, or 0 when the store is over capacity."""
        ...

    @property
    def chunk_count(self) -> int:
        """Number of chunks held."""
        ...

    def put(self, chunk_id: bytes, data: ChunkBytes) -> None:
        """Store a chunk; durable when this returns. A chunk already held is a no-op.

        Raises ``ChunkMismatchError`` if ``merkle_root(data) != chunk_id`` and
        ``CapacityExceededError`` if it does not fit; either way nothing is written.
        """
        ...

    def put_many(self, chunks: Iterable[tuple[bytes, ChunkBytes]]) -> None:
        """Store many chunks atomically: all are durable when this returns, or none is written."""
        ...

    def get(self, chunk_id: bytes) -> bytes:
        """The chunk's bytes, checked against what was stored: its id, or a
        checksum recorded from bytes that matched it (the disk store's CRC-32).

        Raises ``ChunkNotFoundError`` if absent, ``ChunkCorruptError`` if the stored
        bytes fail the check.
        """
        ...

    def get_cached(self, chunk_id: bytes) -> bytes | bytearray | None:
        """:meth:`get` if the chunk's bytes are in memory and pass the store's quick
        check, so reading them waits for no disk; None otherwise (call :meth:`get`
        from a worker thread then: it decides). Never bytes :meth:`get` would
        refuse; raises ``ChunkNotFoundError`` like it, and may raise
        ``ChunkCorruptError``.

        For a caller on an event loop: a chunk read a moment ago, as a stream's
        are, is answered without the cost of a thread.
        """
        ...

    def has(self, chunk_id: bytes) -> bool:
        """Whether the store holds the chunk (without verifying its bytes)."""
        ...

    def delete(self, chunk_id: bytes) -> bool:
        """Remove a chunk (corrupt or not); durable when this returns. False if it was absent."""
        ...

    def ids(self) -> Iterator[bytes]:
        """The ids held, ascending bytewise, as of the call."""
        ...

    def scrub(self) -> ScrubReport:
        """Verify every chunk and the counters; report, delete nothing."""
        ...

    def scrub_part(self, after: bytes | None, max_bytes: int) -> ScrubPart:
        """Verify the chunks whose ids follow ``after`` (None: from the first), in
        ascending order, until ``max_bytes`` of them are checked (at least one
        chunk); report, delete nothing. A background scrub calls it again with
        the ``last`` it returned, a slice at a time, so that no call holds the
        disk for long."""
        ...

    def close(self) -> None:
        """Release the store. Closing twice is allowed."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_id(chunk_id: bytes) -> None:
    """Raise ``ChunkIdInvalidError`` unless ``chunk_id`` is 32 bytes."""
    if not isinstance(chunk_id, bytes) or len(chunk_id) != CHUNK_ID_SIZE:
        raise ChunkIdInvalidError(chunk_id)


def check_capacity(capacity: int) -> int:
    """``capacity`` if it is an int >= 0, else ``CapacityInvalidError``."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise CapacityInvalidError(capacity)
    return capacity


def verified(chunks: Iterable[tuple[bytes, ChunkBytes]]) -> dict[bytes, bytes]:
    """Copy and verify chunks against their ids; duplicates collapse to one.

    Raises ``ChunkMismatchError`` for the first chunk that does not match.
    """
    out: dict[bytes, bytes] = {}
    for chunk_id, data in chunks:
        check_id(chunk_id)
        if chunk_id in out:
            continue
        raw = bytes(data)
        root = merkle_root(raw)
        if root != chunk_id:
            raise ChunkMismatchError(chunk_id, root)
        out[chunk_id] = raw
    return out


def check_fits(needed: int, used: int, capacity: int) -> None:
    """Raise ``CapacityExceededError`` if ``needed`` more bytes do not fit."""
    if used + needed > capacity:
        raise CapacityExceededError(needed, used, capacity)


def chunk_ok(chunk_id: bytes, data: bytes | bytearray | None, size: int) -> bool:
    """Whether stored ``data`` is intact: present, of the recorded size, hashing to the id."""
    return data is not None and len(data) == size and merkle_root(data) == chunk_id
