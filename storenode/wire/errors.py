"""Typed errors of the wire. Every one is a :class:`WireError`.

A peer that causes any of these has broken the protocol: the connection is
closed and the peer scored down. Two exceptions: :class:`RemoteError` is the
peer *reporting* an error, and :class:`MessageNameUnknownError` is what an
older node sees when a newer one uses a new message type (answered with
``UNKNOWN_TYPE``, the connection kept). Listed with their causes in docs/specs/wire.md.
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


# -- message decoding (storenode.wire.messages) ------------------------------------


class MessageInvalidError(MessageMalformedError):
    """A message failed :meth:`storenode.wire.messages.Registry.decode`, or a response
    body failed ``Registry.decode_response``. Every message error those raise is one.

    It carries what was learnt before the check failed: ``kind`` (a ``Kind`` value)
    and ``name`` when the envelope got that far, and ``request_id`` when the message
    is a REQUEST whose id was read. Only then is there something to answer: send an
    ERROR with ``code`` (``ErrorCode.BAD_REQUEST`` here) to ``request_id``. With
    ``request_id`` None there is nothing to answer and the peer broke the protocol.
    """

    code: int = 1  # ErrorCode.BAD_REQUEST

    def __init__(
        self,
        reason: str,
        *,
        kind: int | None = None,
        name: str | None = None,
        request_id: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.name = name
        self.request_id = request_id


class MessageNameUnknownError(MessageTypeUnknownError, MessageInvalidError):
    """A well-formed REQUEST or NOTIFY names a type this node has not registered.

    Unlike every other error here this is *not* a protocol violation: it is what an
    older node sees when a newer one uses a new message type. Answer a REQUEST with
    ``code`` (``ErrorCode.UNKNOWN_TYPE``) to ``request_id``; drop a NOTIFY.
    """

    code = 2  # ErrorCode.UNKNOWN_TYPE


class FrameMalformedError(FrameError):
    """A frame authenticates but breaks the message layout: a message's first frame
    shorter than the 4-byte message length, a frame that runs past the length its
    message declared, or an empty continuation frame."""
