"""Typed messages of the wire: the public face of :mod:`storenode.wire.envelope`
(kinds, error codes, the msgpack envelope) and :mod:`storenode.wire.registry`
(message types, schema conventions, validation).

Every message is one msgpack array::

    REQUEST   [0, id, name, body]
    RESPONSE  [1, id, body]
    ERROR     [2, id, code, message]
    NOTIFY    [3, name, body]

A subsystem declares its types once, at import::

    class Ping(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
        sender: PublicKey

    default_registry.register("dht.ping", Ping, Pong)   # response None: a NOTIFY type

and the RPC shell calls ``encode_request`` / ``decode`` / ``decode_response``.
Pure and synchronous: no I/O, no clock. Spec: docs/specs/wire.md §3.
"""

from __future__ import annotations

from storenode.wire.envelope import (
    MAX_ERROR_CODE,
    MAX_ERROR_MESSAGE,
    MAX_NAME_LENGTH,
    MAX_REQUEST_ID,
    ErrorCode,
    ErrorReply,
    Kind,
    Message,
    Notify,
    Request,
    Response,
)
from storenode.wire.errors import MessageInvalidError, MessageNameUnknownError
from storenode.wire.registry import (
    U32,
    U64,
    Hash32,
    Host,
    NodeId,
    Port,
    PublicKey,
    Registry,
    Signature,
    default_registry,
)

__all__ = [
    "MAX_ERROR_CODE",
    "MAX_ERROR_MESSAGE",
    "MAX_NAME_LENGTH",
    "MAX_REQUEST_ID",
    "U32",
    "U64",
    "ErrorCode",
    "ErrorReply",
    "Hash32",
    "Host",
    "Kind",
    "Message",
    "MessageInvalidError",
    "MessageNameUnknownError",
    "NodeId",
    "Notify",
    "Port",
    "PublicKey",
    "Registry",
    "Request",
    "Response",
    "Signature",
    "default_registry",
]
