"""Typed errors of the wire. Every one is a :class:`WireError`.

A peer that causes any of these (except :class:`RemoteError`, which is the
peer *reporting* an error) has broken the protocol: the connection is closed
and the peer scored down. Listed with their causes in docs/specs/wire.md.
"""

from __future__ import annotations


class WireError(Exception):
    """Base of every error raised by :mod:`storenode.wire`."""


# -- handshake -------------------------------------------------------------------


class HandshakeError(WireError):
    """The Noise handshake failed (bad message, bad length, failed decryption)."""


class IdentityProofInvalidError(HandshakeError):
    """The peer's handshake payload is malformed or its Ed25519 signature over its
    static Noise key does not verify."""


class PeerKeyMismatchError(HandshakeError):
    """The peer proved an Ed25519 key other than the one we dialled."""


# -- transport -------------------------------------------------------------------


class FrameError(WireError):
    """A transport frame is malformed."""


class FrameTooLargeError(FrameError):
    """A frame declares more than 65,535 bytes, or less than an AEAD tag."""


class FrameDecryptError(FrameError):
    """A frame fails AES-GCM authentication: tampered, replayed, reordered or
    truncated in flight."""


class MessageTooLargeError(WireError):
    """A message declares or reaches more than 8 MiB."""


class ConnectionStateError(WireError):
    """An operation that the connection's state does not allow (sending before the
    handshake finished, anything after the connection failed or closed)."""


# -- messages --------------------------------------------------------------------


class MessageMalformedError(WireError):
    """A message body is not the msgpack its schema requires (bad msgpack, wrong
    shape, wrong types, out-of-range values, unknown fields)."""


class MessageTypeUnknownError(MessageMalformedError):
    """A message names a type this node does not know."""


class RemoteError(WireError):
    """The peer answered a request with an error reply carrying a code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"peer replied with error {code}: {message}")
