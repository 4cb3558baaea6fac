"""The envelope of a wire message: kinds, error codes, ids, and its msgpack shape.

Every message (the bytes :mod:`storenode.wire.connection` hands over, at most
8 MiB) is one msgpack array whose first element is its :class:`Kind`::

    REQUEST   [0, id, name, body]
    RESPONSE  [1, id, body]
    ERROR     [2, id, code, message]
    NOTIFY    [3, name, body]

:func:`read_envelope` checks that shape and leaves the body as :class:`msgspec.Raw`
for :mod:`storenode.wire.registry` to validate against its type's schema.
Spec: docs/specs/wire.md §3.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final

import msgspec

from storenode.wire.errors import MessageInvalidError

MAX_REQUEST_ID: Final = 2**32 - 1
MAX_ERROR_CODE: Final = 2**16 - 1
MAX_ERROR_MESSAGE: Final = 512  # characters; longer messages are cut on encode, refused on decode
MAX_NAME_LENGTH: Final = 64


class Kind(enum.IntEnum):
    """The first element of every envelope."""

    REQUEST = 0
    RESPONSE = 1
    ERROR = 2
    NOTIFY = 3  # one-way (gossip): never answered


class ErrorCode(enum.IntEnum):
    """The code of an ERROR reply. Stable wire values; docs/specs/wire.md §3 says what
    the requester should do for each. A code the requester does not know is treated
    like INTERNAL."""

    BAD_REQUEST = 1  # the request broke its envelope or its body's schema
    UNKNOWN_TYPE = 2  # the responder has no message type of that name
    NOT_FOUND = 3  # the thing asked for is not held here
    TOO_LARGE = 4  # the request, or the response it needs, exceeds a limit
    BUSY = 5  # per-peer limits (open requests, bytes in flight) exceeded; retry later
    TIMEOUT = 6  # the handler's deadline passed
    REFUSED = 7  # valid but refused by policy (bad signature on a record, no contract)
    UNAUTHORIZED = 8  # the authenticated peer may not ask this (a sender field not its key)
    INTERNAL = 9  # the responder failed (a bug, a disk error)
    UNAVAILABLE = 10  # known type, but not served by this node now (not a host, syncing, stopping)


# -- decoded messages ----------------------------------------------------------------


class Request(msgspec.Struct, frozen=True):
    """A request whose body has been validated against the Struct registered for ``name``."""

    id: int
    name: str
    body: msgspec.Struct


class Notify(msgspec.Struct, frozen=True):
    """A one-way message whose body has been validated; never answered."""

    name: str
    body: msgspec.Struct


class Response(msgspec.Struct, frozen=True):
    """The answer to request ``id``. Its body is checked for well-formed msgpack only:
    pass it to ``Registry.decode_response`` with the name of the request."""

    id: int
    body_raw: msgspec.Raw


class ErrorReply(msgspec.Struct, frozen=True):
    """Request ``id`` failed at the responder. ``code`` is an :class:`ErrorCode` value
    or one this node does not know (treat those like ``INTERNAL``)."""

    id: int
    code: int
    message: str


Message = Request | Notify | Response | ErrorReply


# -- the envelope as it is on the wire -----------------------------------------------

_Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_REQUEST_ID)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_Code = Annotated[int, msgspec.Meta(ge=1, le=MAX_ERROR_CODE)]
_Text = Annotated[str, msgspec.Meta(max_length=MAX_ERROR_MESSAGE)]


class _Envelope(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    pass


class RequestEnvelope(_Envelope, tag=int(Kind.REQUEST), frozen=True):
    id: _Id
    name: _Name
    body: msgspec.Raw


class ResponseEnvelope(_Envelope, tag=int(Kind.RESPONSE), frozen=True):
    id: _Id
    body: msgspec.Raw


class ErrorEnvelope(_Envelope, tag=int(Kind.ERROR), frozen=True):
    id: _Id
    code: _Code
    message: _Text


class NotifyEnvelope(_Envelope, tag=int(Kind.NOTIFY), frozen=True):
    name: _Name
    body: msgspec.Raw


Envelope = RequestEnvelope | ResponseEnvelope | ErrorEnvelope | NotifyEnvelope


class _Head(msgspec.Struct, array_like=True):
    """The first two elements of a message that failed: enough to answer a request."""

    kind: int
    id: int


_ENVELOPE_DECODER: Final[msgspec.msgpack.Decoder[Envelope]] = msgspec.msgpack.Decoder(Envelope)
_HEAD_DECODER: Final = msgspec.msgpack.Decoder(_Head)

# What msgspec raises on bad input: DecodeError and ValidationError (both ValueError),
# UnicodeDecodeError (a ValueError) for a str that is not UTF-8, RecursionError for
# nesting deeper than the interpreter's recursion limit.
BAD_INPUT: Final = (ValueError, RecursionError)


def read_envelope(data: bytes | bytearray | memoryview) -> Envelope:
    """Check the envelope of a received message; its body stays raw msgpack.

    Raises :class:`MessageInvalidError`, with ``request_id`` set when the message is
    a REQUEST whose id could be read from its first two elements.
    """
    try:
        return _ENVELOPE_DECODER.decode(data)
    except BAD_INPUT as exc:
        raise _envelope_error(data, exc) from exc


def check_id(request_id: int) -> None:
    """Refuse (TypeError, ValueError) a request id that cannot go on the wire."""
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise TypeError(f"a request id is an int, not {type(request_id).__name__}")
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise ValueError(f"request id {request_id} is outside 0..{MAX_REQUEST_ID}")


def check_error_code(code: int) -> None:
    """Refuse (ValueError) an error code that cannot go on the wire."""
    if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= MAX_ERROR_CODE:
        raise ValueError(f"error code must be an int in 1..{MAX_ERROR_CODE}, not {code!r}")


def error_text(message: str) -> str:
    """``message`` as an ERROR carries it: cut to 512 characters, lone surrogates
    (which UTF-8 cannot carry) replaced by ``?``."""
    return message[:MAX_ERROR_MESSAGE].encode("utf-8", "replace").decode("utf-8")


def _envelope_error(data: bytes | bytearray | memoryview, exc: Exception) -> MessageInvalidError:
    try:
        head = _HEAD_DECODER.decode(data)
        kind = Kind(head.kind)
    except BAD_INPUT:  # not even an array starting with a kind: nothing to answer
        return MessageInvalidError(f"malformed message: {exc}")
    if kind is Kind.REQUEST and 0 <= head.id <= MAX_REQUEST_ID:
        return MessageInvalidError(
            f"malformed request {head.id}: {exc}", kind=kind, request_id=head.id
        )
    return MessageInvalidError(f"malformed {kind.name.lower()}: {exc}", kind=kind)
