"""Received bytes waiting to be read as frames, kept as the chunks they came in.

The transport (:class:`storenode.wire.connection.WireConnection`) appends each
read from the socket and takes a frame's length prefix and body as they are
complete: a frame that lies inside one read is handed out in place, without a
copy, which is the common case for the 64 KiB frames of a bulk transfer.
"""

from __future__ import annotations

from collections import deque


class ReceiveQueue:
    """Received bytes not yet consumed, kept as the chunks they arrived in. A frame
    inside one chunk is read in place (a memoryview, no copy); one that straddles
    chunks is copied out. Nothing is ever compacted or reallocated, and a chunk
    is dropped as soon as it has been read."""

    __slots__ = ("_chunks", "_offset", "available")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # into self._chunks[0]
        self.available = 0

    def append(self, data: bytes) -> None:
        self._chunks.append(data)
        self.available += len(data)

    def take(self, n: int) -> memoryview | bytes | None:
        """The next ``n`` bytes, consumed; ``None`` (consuming nothing) if fewer are here."""
        if self.available < n:
            return None
        if not n:
            return b""
        self.available -= n
        chunk, start = self._chunks[0], self._offset
        if start + n <= len(chunk):
            self._advance(chunk, start + n)
            return memoryview(chunk)[start : start + n]
        parts = []
        while n:
            chunk, start = self._chunks[0], self._offset
            end = min(len(chunk), start + n)
            parts.append(memoryview(chunk)[start:end])
            n -= end - start
            self._advance(chunk, end)
        return b"".join(parts)

    def _advance(self, chunk: bytes, offset: int) -> None:
        if offset == len(chunk):
            self._chunks.popleft()
            offset = 0
        self._offset = offset


__all__ = ["ReceiveQueue"]
