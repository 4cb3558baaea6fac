"""The registry of message types: who declares what, and how bodies are validated.

Subsystems declare their message types with :meth:`Registry.register`, naming a
:class:`msgspec.Struct` for the request (or notify) body and one for the response
body. :meth:`Registry.decode` checks the envelope (:mod:`storenode.wire.envelope`)
and validates a REQUEST's or NOTIFY's body against its Struct before returning it;
a RESPONSE's body is validated by :meth:`Registry.decode_response` once the
requester has matched its id to the request. Every failure is a
:class:`MessageInvalidError` (or its subclass :class:`MessageNameUnknownError`)
saying which request, if any, to answer. Spec: docs/specs/wire.md §3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
import msgspec.inspect as mi

from storenode.identity import ID_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from storenode.wire.envelope import (
    BAD_INPUT,
    MAX_NAME_LENGTH,
    ErrorCode,
    ErrorEnvelope,
    ErrorReply,
    Kind,
    Message,
    Notify,
    Request,
    RequestEnvelope,
    Response,
    ResponseEnvelope,
    check_error_code,
    check_id,
    error_text,
    read_envelope,
)
from storenode.wire.errors import MessageInvalidError, MessageNameUnknownError

# -- constrained field types for message schemas -----------------------------------

PublicKey = Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_SIZE, max_length=PUBLIC_KEY_SIZE)]
Signature = Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_SIZE, max_length=SIGNATURE_SIZE)]
NodeId = Annotated[bytes, msgspec.Meta(min_length=ID_SIZE, max_length=ID_SIZE)]
Hash32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
# msgpack carries no integer above 2**64 - 1 (and msgspec takes no bound beyond int64).
U64 = Annotated[int, msgspec.Meta(ge=0)]

# "<subsystem>.<message>[.<more>]", lowercase ASCII: "dht.ping", "chunk.get.v2".
_NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")

# Schema parts that would let unvalidated or aliased data through.
_UNCHECKED_TYPES: Final = (
    mi.AnyType,  # anything goes
    mi.RawType,  # never validated
    mi.ExtType,  # opaque msgpack extension
    mi.CustomType,  # needs a decode hook
    mi.DataclassType,  # unknown fields silently ignored
    mi.TypedDictType,  # unknown fields silently ignored
    mi.MemoryViewType,  # would alias the receive buffer (allowed in responses: see decode)
)


@dataclass(frozen=True, slots=True)
class _MessageType:
    name: str
    request: type[msgspec.Struct]
    response: type[msgspec.Struct] | None  # None: a NOTIFY type
    request_decoder: msgspec.msgpack.Decoder[msgspec.Struct]
    response_decoder: msgspec.msgpack.Decoder[msgspec.Struct] | None


class Registry:
    """The message types a node knows, and the codec of messages.

    Subsystems register into :data:`default_registry` when they are imported; tests
    build a fresh ``Registry()``. Registration happens at import time; after that a
    registry is only read, so it may be shared by every connection.
    """

    def __init__(self) -> None:
        self._types: dict[str, _MessageType] = {}
        self._request_names: dict[type[msgspec.Struct], str] = {}
        self._notify_names: dict[type[msgspec.Struct], str] = {}
        self._response_types: set[type[msgspec.Struct]] = set()
        self._encoder = msgspec.msgpack.Encoder()

    # -- declaring types ---------------------------------------------------------------

    def register(
        self,
        name: str,
        request: type[msgspec.Struct],
        response: type[msgspec.Struct] | None,
    ) -> None:
        """Declare message type ``name``: a REQUEST with body ``request`` answered by a
        RESPONSE with body ``response``, or a NOTIFY with body ``request`` when
        ``response`` is None.

        ``name`` is ``<subsystem>.<message>`` in lowercase ASCII (``"dht.ping"``), at
        most 64 characters. Raises ValueError for a bad or already registered name,
        or a request Struct already registered under another name (a body's class
        names its type); TypeError for a schema that breaks the conventions of
        docs/specs/wire.md §3 (Structs that are array_like, forbid_unknown_fields and
        frozen, all the way down; no Any, Raw, ext, dataclass, TypedDict, and no
        memoryview but in a response, whose body :meth:`decode` never leaves in a
        buffer the caller may reuse).
        """
        if (
            not isinstance(name, str)
            or len(name) > MAX_NAME_LENGTH
            or not _NAME_PATTERN.fullmatch(name)
        ):
            raise ValueError(
                f"message type name {name!r} is not '<subsystem>.<message>' in lowercase "
                f"ASCII letters, digits and '_', at most {MAX_NAME_LENGTH} characters"
            )
        if name in self._types:
            raise ValueError(f"message type {name!r} is already registered")
        _check_schema(name, request)
        if response is not None:
            _check_schema(name, response, views=True)
        other = self._request_names.get(request) or self._notify_names.get(request)
        if other is not None:
            raise ValueError(
                f"{request.__qualname__} is already the body of {other!r}; every request "
                "and notify type needs a Struct of its own"
            )
        self._types[name] = _MessageType(
            name=name,
            request=request,
            response=response,
            request_decoder=msgspec.msgpack.Decoder(request),
            response_decoder=None if response is None else msgspec.msgpack.Decoder(response),
        )
        if response is None:
            self._notify_names[request] = name
        else:
            self._request_names[request] = name
            self._response_types.add(response)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def without(self, *names: str) -> Registry:
        """A registry of the same types except ``names``: what a node of an older
        version knows (for tests of how newer nodes deal with it)."""
        other = Registry()
        for name, t in self._types.items():
            if name not in names:
                other.register(name, t.request, t.response)
        return other

    def names(self) -> list[str]:
        """Every registered type name, sorted."""
        return sorted(self._types)

    def name_of(self, body_type: type[msgspec.Struct]) -> str:
        """The type name whose request (or notify) body is ``body_type``; TypeError if none."""
        name = self._request_names.get(body_type) or self._notify_names.get(body_type)
        if name is None:
            raise TypeError(f"{body_type.__qualname__} is not a registered request or notify body")
        return name

    # -- encoding ------------------------------------------------------------------------
    # The sender is trusted to fill its Structs correctly: field constraints are
    # checked by the receiver, not here. Misuse (an id out of range, a body of an
    # unregistered class) is a bug in the caller: ValueError or TypeError.

    def encode_request(self, request_id: int, body: msgspec.Struct) -> bytes:
        """``[0, id, name, body]``; the name is the one ``type(body)`` was registered under."""
        check_id(request_id)
        name = self._request_names.get(type(body))
        if name is None:
            raise TypeError(self._unregistered(body, "request"))
        return self._encoder.encode((Kind.REQUEST, request_id, name, body))

    def encode_notify(self, body: msgspec.Struct) -> bytes:
        """``[3, name, body]``."""
        name = self._notify_names.get(type(body))
        if name is None:
            raise TypeError(self._unregistered(body, "notify"))
        return self._encoder.encode((Kind.NOTIFY, name, body))

    def encode_response(self, request_id: int, body: msgspec.Struct) -> bytes:
        """``[1, id, body]``; ``type(body)`` must be some registered response Struct."""
        check_id(request_id)
        if type(body) not in self._response_types:
            raise TypeError(f"{type(body).__qualname__} is not a registered response body")
        return self._encoder.encode((Kind.RESPONSE, request_id, body))

    def encode_error(self, request_id: int, code: ErrorCode | int, message: str) -> bytes:
        """``[2, id, code, message]``; ``message`` is cut to 512 characters (lone
        surrogates, which UTF-8 cannot carry, become ``?``)."""
        check_id(request_id)
        check_error_code(code)
        return self._encoder.encode((Kind.ERROR, request_id, int(code), error_text(message)))

    # -- decoding ------------------------------------------------------------------------

    def decode(self, data: bytes | bytearray | memoryview, *, owned: bool = False) -> Message:
        """Check a received message and return it; a REQUEST's or NOTIFY's body is
        validated against its registered Struct.

        Raises :class:`MessageNameUnknownError` for a well-formed REQUEST or NOTIFY of
        an unregistered name, and :class:`MessageInvalidError` for anything else that
        is wrong; never another exception. Either carries ``request_id`` when the
        message is a REQUEST whose id could be read: answer that id with ``.code``.

        A RESPONSE's body is a Raw pointing into ``data`` when ``data`` is ``bytes``
        or ``owned`` is true (the caller hands the buffer over and never writes to
        it again); otherwise it is copied out.
        """
        envelope = read_envelope(data)
        if isinstance(envelope, RequestEnvelope):
            body = self._body(Kind.REQUEST, envelope.id, envelope.name, envelope.body)
            return Request(envelope.id, envelope.name, body)
        if isinstance(envelope, ResponseEnvelope):
            raw = envelope.body
            # A Raw points into ``data``; a buffer we do not own may be reused by the caller.
            return Response(envelope.id, raw if owned or isinstance(data, bytes) else raw.copy())
        if isinstance(envelope, ErrorEnvelope):
            return ErrorReply(envelope.id, envelope.code, envelope.message)
        return Notify(envelope.name, self._body(Kind.NOTIFY, None, envelope.name, envelope.body))

    def decode_response(self, name: str, raw: msgspec.Raw | bytes) -> msgspec.Struct:
        """Validate the body of a RESPONSE to a request of type ``name``.

        Raises :class:`MessageInvalidError` if it breaks the response schema (the
        peer broke the protocol), ValueError if ``name`` is no registered request
        type (a bug of the caller, who sent that request).
        """
        mtype = self._types.get(name)
        if mtype is None or mtype.response_decoder is None:
            raise ValueError(f"{name!r} is not a registered request type")
        try:
            return mtype.response_decoder.decode(raw)
        except BAD_INPUT as exc:
            raise MessageInvalidError(
                f"{name} response body: {exc}", kind=Kind.RESPONSE, name=name
            ) from exc

    def _body(
        self, kind: Kind, request_id: int | None, name: str, raw: msgspec.Raw
    ) -> msgspec.Struct:
        mtype = self._types.get(name)
        if mtype is None:
            raise MessageNameUnknownError(
                f"unknown message type {name!r}", kind=kind, name=name, request_id=request_id
            )
        if (mtype.response is None) != (kind is Kind.NOTIFY):
            role = "notify" if mtype.response is None else "request"
            raise MessageInvalidError(
                f"{_label(kind, request_id, name)}: {name} is a {role} type",
                kind=kind,
                name=name,
                request_id=request_id,
            )
        try:
            return mtype.request_decoder.decode(raw)
        except BAD_INPUT as exc:
            raise MessageInvalidError(
                f"{_label(kind, request_id, name)} body: {exc}",
                kind=kind,
                name=name,
                request_id=request_id,
            ) from exc

    def _unregistered(self, body: msgspec.Struct, role: str) -> str:
        cls = type(body)
        if cls in self._request_names or cls in self._notify_names:
            other = "request" if role == "notify" else "notify"
            return f"{cls.__qualname__} is a {other} body, not a {role} body"
        return f"{cls.__qualname__} is not a registered {role} body"


default_registry: Final = Registry()
"""The registry the node uses; each subsystem registers its types here on import."""


def _label(kind: Kind, request_id: int | None, name: str) -> str:
    """``"dht.ping request 7"``, ``"ledger.tx notify"``: for error messages."""
    return f"{name} {kind.name.lower()}" + ("" if request_id is None else f" {request_id}")


def _check_schema(name: str, root: object, *, views: bool = False) -> None:
    """Refuse (TypeError) a body type that breaks the schema conventions; ``views``:
    memoryview fields are allowed (a response's)."""
    if not (isinstance(root, type) and issubclass(root, msgspec.Struct)):
        raise TypeError(f"{name}: a message body is a msgspec.Struct class, not {root!r}")
    try:
        info = mi.type_info(root)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name}: {root.__qualname__} cannot be decoded from msgpack: {exc}"
        ) from exc
    seen: set[int] = set()
    stack: list[mi.Type] = [info]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # a recursive schema refers to itself
            continue
        seen.add(id(node))
        if isinstance(node, _UNCHECKED_TYPES) and not (
            views and isinstance(node, mi.MemoryViewType)
        ):
            raise TypeError(
                f"{name}: {root.__qualname__} contains a {type(node).__name__}, "
                "which the schema cannot validate"
            )
        if isinstance(node, mi.StructType):
            config = node.cls.__struct_config__
            if not (config.array_like and config.forbid_unknown_fields and config.frozen):
                raise TypeError(
                    f"{name}: {node.cls.__qualname__} must be a Struct with array_like=True, "
                    "forbid_unknown_fields=True and frozen=True"
                )
        for child in msgspec.structs.astuple(node):  # fields, item types, union members
            for item in child if isinstance(child, tuple) else (child,):
                if isinstance(item, mi.Field):
                    stack.append(item.type)
                elif isinstance(item, mi.Type):
                    stack.append(item)
