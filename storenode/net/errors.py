"""Errors of the trio shell. Protocol errors stay :mod:`storenode.wire.errors`."""

from __future__ import annotations

from storenode.wire.messages import ErrorCode


class NetError(Exception):
    """Base of the errors raised by :mod:`storenode.net`."""


class PeerUnreachableError(NetError):
    """Could not connect to a peer, or the handshake with it failed or timed out."""


class RequestTimeoutError(NetError):
    """A request's deadline passed before its response arrived."""


class ConnectionLostError(NetError):
    """The connection closed while a request was waiting for its response."""


class PeerBannedError(NetError):
    """The peer broke the protocol too often and is refused for a while."""


class RequestRefusedError(NetError):
    """Raised by a request handler to answer with an error code instead of a body.

    The one way a handler reports "no" to the peer; anything else a handler
    raises is a bug, logged and answered with ``INTERNAL``.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code.name}: {message}")


class LedgerStoppedError(RequestRefusedError):
    """The ledger service has stopped (its chain may be closed); a request that
    meets it is answered ``UNAVAILABLE``."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, "the ledger service has stopped")
