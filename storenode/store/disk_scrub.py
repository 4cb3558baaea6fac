"""Scrubbing a chunk store directory: every chunk's file checked against its id (the
full Merkle check, whatever the CRC says), all at once (:meth:`Scrubbing.scrub`,
with the counters) or a slice at a time past the page cache
(:meth:`Scrubbing.scrub_part`, the host's background scrub).

A part of :class:`~storenode.store.disk.DiskChunkStore` (a mixin over the
store's state; :class:`_Store` is what it uses).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any, Protocol

from storenode.files import DirectReadUnsupportedError, drop_cache, read_direct
from storenode.store.disk_layout import (
    COUNT_KEY,
    LEN_END,
    LEN_PREFIX,
    RECORD_SIZES,
    U64,
    USED_KEY,
)
from storenode.store.protocol import ScrubPart, ScrubReport, check_id, chunk_ok

log = logging.getLogger("storenode.store.disk")
"""The store's logger: its lines carry one name whichever part of it speaks."""


class _Store(Protocol):
    """What scrubbing uses of the store (:class:`~storenode.store.disk.DiskChunkStore`)."""

    _path: str
    _db: Any
    _direct: bool

    def _check_open(self) -> None: ...
    def _guard(self) -> AbstractContextManager[None]: ...
    def _u64(self, raw: bytes | None, what: str) -> int: ...
    def _id_of(self, key: bytes) -> bytes: ...
    def _file(self, chunk_id: bytes) -> str: ...
    def _verify(
        self, chunk_id: bytes, record: bytes, *, uncached: bool = False
    ) -> tuple[int, bool]: ...


class Scrubbing:
    """The store's scrubs (see the module docstring)."""

    def scrub(self: _Store) -> ScrubReport:
        self._check_open()
        corrupt: list[bytes] = []
        checked = total = 0
        with self._guard(), self._db.snapshot() as snap:
            used = self._u64(snap.get(USED_KEY), "the used-bytes counter")
            count = self._u64(snap.get(COUNT_KEY), "the chunk counter")
            with snap.iterator(prefix=LEN_PREFIX) as it:
                for key, value in it:
                    chunk_id = self._id_of(key)
                    size, intact = self._verify(chunk_id, value)
                    if not intact:
                        corrupt.append(chunk_id)
                    checked += 1
                    total += max(size, 0)
        ok = total == used and checked == count
        return ScrubReport(checked, total, tuple(corrupt), accounting_ok=ok)

    def scrub_part(self: _Store, after: bytes | None, max_bytes: int) -> ScrubPart:
        self._check_open()
        if after is not None:
            check_id(after)
        corrupt: list[bytes] = []
        checked = total = 0
        last: bytes | None = None
        start = LEN_PREFIX if after is None else LEN_PREFIX + after
        with self._guard(), self._db.snapshot() as snap:
            it = snap.iterator(
                start=start, stop=LEN_END, include_start=after is None, fill_cache=False
            )
            with it:
                for key, value in it:
                    if checked and total >= max_bytes:
                        return ScrubPart(checked, total, tuple(corrupt), last)
                    last = self._id_of(key)
                    size, intact = self._verify(last, value, uncached=True)
                    # A chunk deleted since the snapshot is not damage.
                    if not intact and self._db.get(key) is not None:
                        corrupt.append(last)
                    checked += 1
                    total += max(size, 0)
        return ScrubPart(checked, total, tuple(corrupt), None)

    def _verify(
        self: _Store, chunk_id: bytes, record: bytes, *, uncached: bool = False
    ) -> tuple[int, bool]:
        """A held chunk's recorded size (-1 if its record is malformed) and whether its
        file holds exactly its bytes: the full Merkle check, whatever the CRC says.
        ``uncached``: read what the disk holds, not the page cache's copy, and leave
        the cache as the readers had it (for the background scrub): with ``O_DIRECT``,
        or where the file system cannot, by dropping the file's pages around the read
        (which leaves a chunk readers had cached to be read from the disk again)."""
        size = U64.unpack_from(record)[0] if len(record) in RECORD_SIZES else -1
        path = self._file(chunk_id)
        data: bytes | None = None
        try:
            if uncached and self._direct:
                try:
                    data = read_direct(path)
                except DirectReadUnsupportedError:
                    self._direct = False
                    log.info(
                        "The file system of %s cannot read past the page cache: the scrub "
                        "drops each chunk's cached pages to read it from the disk",
                        self._path,
                    )
            if data is None:
                with open(path, "rb") as f:
                    if uncached:
                        drop_cache(f.fileno())
                    data = f.read()
                    if uncached:
                        drop_cache(f.fileno())
        except OSError:
            data = None
        return size, chunk_ok(chunk_id, data, size)
