"""A :class:`~storenode.client.content.ContentSource` over works held in memory.

The gateway's tests serve works through it instead of a network of hosts,
and use its knobs to make it fail the way the real fetcher can: a CID it does
not know (not found), an error for a CID (payment required, unavailable,
corrupt) and a failure part way through a read. It records every read, so a
test can check what a request made the node fetch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from storenode.client.content import (
    ContentError,
    ContentInfo,
    ContentNotFoundError,
    ContentUnavailableError,
)
from storenode.identity import keccak256

DEFAULT_PIECE = 16 * 1024


@dataclass(frozen=True, slots=True)
class MemoryWork:
    name: str
    media_type: str
    data: bytes


class MemoryContentSource:
    """Works by CID, read in pieces of ``piece`` bytes.

    Knobs (plain attributes; change them between requests):

    * ``errors[cid]``: :meth:`open` raises this error for the CID.
    * ``fail_at[cid]``: a read raises :class:`ContentUnavailableError` once it
      has yielded every byte before this offset of the work (a host that
      vanished mid-stream).
    * ``before_piece``: awaited with ``(cid, offset)`` before each piece is
      yielded, to hold a read at a chosen point.
    * ``reads``: every ``(cid, start, end)`` read so far, in order.
    * ``unregistered``: CIDs that open as works the registry does not vouch for
      (``ContentInfo.registered`` false); the others open as registered.
    """

    def __init__(
        self,
        works: Mapping[bytes, tuple[str, str, bytes]] | None = None,
        *,
        piece: int = DEFAULT_PIECE,
    ) -> None:
        if piece <= 0:
            raise ValueError(f"piece must be a positive number of bytes, not {piece}")
        self.works: dict[bytes, MemoryWork] = {
            cid: MemoryWork(name, media_type, data)
            for cid, (name, media_type, data) in (works or {}).items()
        }
        self.piece = piece
        self.errors: dict[bytes, ContentError] = {}
        self.fail_at: dict[bytes, int] = {}
        self.before_piece: Callable[[bytes, int], Awaitable[None]] | None = None
        self.reads: list[tuple[bytes, int, int]] = []
        self.bulk_reads: list[bool] = []
        """Whether each read of :attr:`reads` was asked as a bulk read."""
        self.unregistered: set[bytes] = set()

    def add(self, name: str, media_type: str, data: bytes) -> bytes:
        """Hold ``data`` as a work and return its CID (keccak256 of the bytes)."""
        cid = keccak256(data)
        self.works[cid] = MemoryWork(name, media_type, data)
        return cid

    async def open(self, cid: bytes) -> ContentInfo:
        if cid in self.errors:
            raise self.errors[cid]
        work = self.works.get(cid)
        if work is None:
            raise ContentNotFoundError(f"no manifest found for work {cid.hex()}")
        registered = cid not in self.unregistered
        return ContentInfo(cid, work.name, work.media_type, len(work.data), registered)

    def read(self, cid: bytes, start: int, end: int, *, bulk: bool = False) -> AsyncIterator[bytes]:
        work = self.works.get(cid)
        if work is None:
            raise ContentNotFoundError(f"no manifest found for work {cid.hex()}")
        if not 0 <= start <= end <= len(work.data):
            raise ValueError(
                f"bytes [{start}, {end}) are not inside work {cid.hex()} of {len(work.data)} bytes"
            )
        self.reads.append((cid, start, end))
        self.bulk_reads.append(bulk)
        return self._pieces(cid, work.data, start, end)

    async def _pieces(self, cid: bytes, data: bytes, start: int, end: int) -> AsyncIterator[bytes]:
        fail_at = self.fail_at.get(cid)
        offset = start
        while offset < end:
            stop = min(offset + self.piece, end)
            if fail_at is not None:
                if offset >= fail_at:
                    raise ContentUnavailableError(
                        f"the hosts of work {cid.hex()} stopped answering at byte {offset}"
                    )
                stop = min(stop, fail_at)
            if self.before_piece is not None:
                await self.before_piece(cid, offset)
            yield data[offset:stop]
            offset = stop
