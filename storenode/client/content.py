"""What a reader of works offers: the seam between the fetcher and its users.

The fetcher (:mod:`storenode.client.fetch`) implements :class:`ContentSource`;
``storenode fetch``/``stream`` and the HTTP gateway (:mod:`storenode.api`) use
it, and tests may give the gateway any other source
(:mod:`storenode.testing.content`).

A source opens a work by its CID (keccak256 of its bytes) and reads byte
ranges of it in order. Failures are :class:`ContentError` subclasses, each
one a different answer for a user (and an HTTP status for the gateway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol


class ContentError(Exception):
    """Base of the errors of reading a work; the message says what happened."""


class ContentNotFoundError(ContentError):
    """No manifest for the CID could be found (gateway: 404)."""


class PaymentRequiredError(ContentError):
    """A priced work this reader has no receipt for and may not buy on its own
    (the price is above its spending cap) (gateway: 402)."""

    def __init__(self, message: str, *, price: int, cap: int) -> None:
        super().__init__(message)
        self.price = price
        self.cap = cap


class ContentUnavailableError(ContentError):
    """The work is known but too few hosts answered to rebuild a stripe (gateway: 503)."""


class ContentCorruptError(ContentError):
    """What the hosts sent does not rebuild the work its manifest describes, even
    from verified chunks only (gateway: 502)."""


class ContentInfo(NamedTuple):
    cid: bytes
    name: str
    media_type: str
    length: int
    registered: bool = False
    """Whether the manifest read is the one the work's registry entry names: then
    each stripe is checked against its owner's word for the CID. Otherwise only
    the manifest's signer vouches for it, and a reader of the whole work should
    check the CID itself (``storenode fetch`` does)."""


class ContentSource(Protocol):
    async def open(self, cid: bytes) -> ContentInfo:
        """The work's name, media type and length (raises a :class:`ContentError`)."""
        ...

    def read(self, cid: bytes, start: int, end: int, *, bulk: bool = False) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the work, in order, in pieces of any size.

        ``0 <= start <= end <= length``. Raises a :class:`ContentError` before or
        while yielding; what was yielded before is correct. ``bulk``: the caller
        wants all the bytes soon rather than the first ones first (a file being
        written, not a stream being played); a source may read differently then.
        """
        ...
