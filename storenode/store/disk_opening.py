"""Opening a chunk store directory: create the index of a new store, refuse what is
not a store of ours, upgrade formats 1 and 2 in place, make the chunk
directories, and remove what a crash left behind.

A part of :class:`~storenode.store.disk.DiskChunkStore` (a mixin over the
store's state; :class:`_Store` is what it uses).
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, suppress
from typing import Any, Protocol

from storenode.files import sync_dir
from storenode.store.disk_layout import (
    COUNT_KEY,
    FANOUT,
    FORMAT_VERSION,
    ID_HEX_LEN,
    LEN_PREFIX,
    PART_SUFFIX,
    U32,
    U64,
    USED_KEY,
    V1_DATA_PREFIX,
    V1_FORMAT_VERSION,
    V2_FORMAT_VERSION,
    VERSION_KEY,
)
from storenode.store.errors import StoreCorruptError, StoreUnrecognizedError, StoreVersionError
from storenode.store.protocol import CHUNK_ID_SIZE

log = logging.getLogger("storenode.store.disk")
"""The store's logger: its lines carry one name whichever part of it speaks."""


class _Store(Protocol):
    """What opening uses of the store (:class:`~storenode.store.disk.DiskChunkStore`)."""

    _path: str
    _chunks: str
    _db: Any
    _from_version: int

    def _guard(self) -> AbstractContextManager[None]: ...
    def _u64(self, raw: bytes | None, what: str) -> int: ...
    def _write_part(self, chunk_id: bytes, data: bytes) -> str: ...
    def _file(self, chunk_id: bytes) -> str: ...
    def _indexed(self, name: str) -> bool: ...


class Opening:
    """The store's opening steps (see the module docstring)."""

    def _load_or_init(self: _Store) -> tuple[int, int]:
        with self._guard():
            raw: bytes | None = self._db.get(VERSION_KEY)
            if raw is None:
                with self._db.iterator(include_value=False) as it:
                    if next(it, None) is not None:
                        raise StoreUnrecognizedError(
                            self._path, "a LevelDB database without a chunk-store version"
                        )
                wb = self._db.write_batch(sync=True)
                wb.put(VERSION_KEY, U32.pack(FORMAT_VERSION))
                wb.put(USED_KEY, U64.pack(0))
                wb.put(COUNT_KEY, U64.pack(0))
                wb.write()
                return 0, 0
            if len(raw) != U32.size:
                raise StoreCorruptError(self._path, f"version record of {len(raw)} bytes")
            (version,) = U32.unpack(raw)
            if version not in (V1_FORMAT_VERSION, V2_FORMAT_VERSION, FORMAT_VERSION):
                raise StoreVersionError(self._path, version, FORMAT_VERSION)
            self._from_version = version
            used = self._u64(self._db.get(USED_KEY), "the used-bytes counter")
            count = self._u64(self._db.get(COUNT_KEY), "the chunk counter")
            return used, count

    def _upgrade_v1(self: _Store) -> None:
        """Move the chunk bytes of a format-1 store (``cs/data/<id>`` records) into
        files, then drop those records and write version 3 in one batch (its size
        records are valid format-3 records). A crash before that batch leaves a
        version-1 store, upgraded again at the next open."""
        log.info("chunk store %s: upgrading format 1 to 3 (chunk bytes to files)", self._path)
        moved = 0
        with self._guard():
            with self._db.iterator(prefix=V1_DATA_PREFIX) as it:
                for key, value in it:
                    chunk_id = key[len(V1_DATA_PREFIX) :]
                    if len(chunk_id) != CHUNK_ID_SIZE:
                        raise StoreCorruptError(self._path, f"malformed key {key!r}")
                    os.replace(self._write_part(chunk_id, value), self._file(chunk_id))
                    moved += 1
            for name in FANOUT:
                sync_dir(os.path.join(self._chunks, name))
            wb = self._db.write_batch(sync=True)
            with self._db.iterator(prefix=V1_DATA_PREFIX, include_value=False) as it:
                for key in it:
                    wb.delete(key)
            wb.put(VERSION_KEY, U32.pack(FORMAT_VERSION))
            wb.write()
        self._from_version = FORMAT_VERSION
        log.info("chunk store %s: upgraded, %d chunks moved to files", self._path, moved)

    def _upgrade_v2(self: _Store) -> None:
        """Format 2's records (a size, no CRC) are valid in format 3: write the new
        version. Each chunk gets its CRC at its first read."""
        with self._guard():
            self._db.put(VERSION_KEY, U32.pack(FORMAT_VERSION), sync=True)
        self._from_version = FORMAT_VERSION
        log.info(
            "chunk store %s: upgraded format 2 to 3 (chunk CRCs added as chunks are read)",
            self._path,
        )

    def _prepare_chunk_dirs(self: _Store) -> None:
        """Create ``chunks/00`` .. ``chunks/ff`` once, so a put never creates a directory."""
        created = False
        for name in (None, *FANOUT):
            directory = self._chunks if name is None else os.path.join(self._chunks, name)
            if not os.path.isdir(directory):
                os.makedirs(directory, exist_ok=True)
                created = True
        if created:
            sync_dir(self._chunks)
            sync_dir(self._path)

    def _remove_unindexed_files(self: _Store) -> None:
        """Remove what a crash left behind: ``.part`` files, and chunk files whose
        record was never committed or already deleted."""
        removed = 0
        with self._guard():
            for name in FANOUT:
                directory = os.path.join(self._chunks, name)
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.name.endswith(PART_SUFFIX) or not self._indexed(entry.name):
                            remove(entry.path)
                            removed += 1
        if removed:
            log.info("chunk store %s: removed %d unfinished or orphaned files", self._path, removed)

    def _indexed(self: _Store, name: str) -> bool:
        if len(name) != ID_HEX_LEN:
            return True  # not a file of ours: leave it alone
        try:
            chunk_id = bytes.fromhex(name)
        except ValueError:
            return True
        return self._db.get(LEN_PREFIX + chunk_id) is not None


def remove(path: str) -> None:
    """Remove a file that may already be gone."""
    with suppress(FileNotFoundError):
        os.unlink(path)


__all__ = ["Opening", "remove"]
