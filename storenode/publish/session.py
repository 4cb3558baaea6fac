"""What one publish carries through its steps, and what it gives back.

The steps of :mod:`storenode.publish.pipeline` (contracts in
:mod:`.contracting`, transactions in :mod:`.transactions`, the upload in
:mod:`.upload`) share a :class:`Work` (the file's bytes, its journal and
manifest, the chunks acknowledged so far) and a :class:`JournalSaver` (one
journal write at a time, off the event loop). A caller gives
:class:`PublishOptions` and a :class:`Progress`, and gets a
:class:`WorkResult` per work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from storenode.publish.journal import Journal, JournalStore, encode_journal
from storenode.publish.manifest import Manifest
from storenode.publish.works import WorkFile

PER_HOST: Final = 8
"""Chunks in flight to one host (sent in ``chunk.put_many`` requests)."""
PUT_TIMEOUT: Final = 30.0
"""Seconds a host has to acknowledge one chunk."""
RETRY_DELAY: Final = 0.5
"""Seconds before the second try of a request to a host; doubled before each further one."""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    k: int
    n: int
    windows: int
    """How many challenge windows the contracts last."""
    max_price: int
    """The most a host may ask, base units per GiB per window."""
    price: int | None = None
    """The work's price per download in base units (None: leave the listing alone)."""
    author: str = "unknown"
    per_host: int = PER_HOST
    put_timeout: float = PUT_TIMEOUT
    retry_delay: float = RETRY_DELAY


@dataclass(frozen=True, slots=True)
class WorkResult:
    """What a publish did for one work; ``status`` is ``published``, ``unchanged``
    (nothing was sent) or ``repriced`` (only a new price was)."""

    path: str
    name: str
    cid: bytes
    length: int
    stripes: int
    hosts: tuple[bytes, ...]
    """The hosts' addresses."""
    contracts: tuple[bytes, ...]
    cost: int
    """The escrow of the work's contracts, base units."""
    status: str
    note: str = ""
    upload_seconds: float | None = None
    """How long this run's upload took (None: nothing was uploaded)."""


class Progress(Protocol):
    """What the pipeline reports as it goes (the CLI draws a progress bar)."""

    def phase(self, work: WorkFile, what: str, total: int) -> None:
        """A phase of ``work`` begins: ``fingerprint``, ``coding``, ``contracts``,
        ``upload`` or ``manifest``; ``total`` bytes (0: a phase without a bar)."""

    def advance(self, amount: int) -> None:
        """``amount`` more bytes of the phase are done."""

    def finish(self, result: WorkResult) -> None:
        """The work is done."""


class NoProgress:
    def phase(self, work: WorkFile, what: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self, result: WorkResult) -> None:
        pass


@dataclass(slots=True)
class Work:
    """One work being published: its file and bytes, its journal and manifest."""

    file: WorkFile
    data: memoryview
    cid: bytes
    journal: Journal
    manifest: Manifest
    raw_manifest: bytes
    acked: list[set[int]] = field(default_factory=list)
    """Per host of the journal, the positions of its shards it acknowledged (kept
    here during the upload, written to the journal about once a second)."""
    dirty: bool = False
    """Something changed since the journal was last written."""
    upload_seconds: float | None = None

    def __post_init__(self) -> None:
        self.reset_acks()

    def reset_acks(self) -> None:
        """Take the acknowledged chunks from the journal's hosts."""
        self.acked = [set(h.acked) for h in self.journal.hosts]


class JournalSaver:
    """Writes journals one at a time (the writes share a temporary file name), in a
    worker thread (each is an fsync)."""

    def __init__(self, store: JournalStore) -> None:
        self.store = store
        self._lock = trio.Lock()

    async def save(self, journal: Journal) -> None:
        raw = encode_journal(journal)
        async with self._lock:
            await trio.to_thread.run_sync(self.store.write, bytes.fromhex(journal.cid), raw)

    async def save_acks(self, work: Work) -> None:
        """Write the chunks acknowledged so far into the work's journal, and save it."""
        for entry, acked in zip(work.journal.hosts, work.acked, strict=True):
            entry.acked = sorted(acked)
        work.dirty = False
        await self.save(work.journal)


__all__ = [
    "PER_HOST",
    "PUT_TIMEOUT",
    "RETRY_DELAY",
    "JournalSaver",
    "NoProgress",
    "Progress",
    "PublishOptions",
    "Work",
    "WorkResult",
]
