"""One authenticated, encrypted wire connection, sans-IO (h11 style).

A :class:`WireConnection` never touches a socket or a clock. The shell feeds it
the bytes it reads (:meth:`~WireConnection.receive_data`), takes events out
(:meth:`~WireConnection.next_event`) and writes what it is given
(:meth:`~WireConnection.start`, :meth:`~WireConnection.data_to_send`,
:meth:`~WireConnection.send_message`). Byte layout: docs/specs/wire.md,
sections 1 and 2.

States and the moves between them are the :data:`_TRANSITIONS` table::

    IDLE --start (initiator)--> AWAIT_MSG2 --msg 2 read, msg 3 queued--> OPEN
    IDLE --start (responder)--> AWAIT_MSG1 --msg 1 read, msg 2 queued--> AWAIT_MSG3
    AWAIT_MSG3 --msg 3 read--> OPEN --end of stream between messages--> ENDED
    any state --a WireError while reading--> FAILED (every later call raises)
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from storenode.buffers import unfilled
from storenode.identity import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    KeyInvalidError,
    SignatureInvalidError,
    verify,
)
from storenode.wire.errors import (
    ConnectionStateError,
    FrameDecryptError,
    FrameMalformedError,
    FrameTooLargeError,
    HandshakeError,
    IdentityProofInvalidError,
    MessageTooLargeError,
    PeerKeyMismatchError,
    WireError,
)
from storenode.wire.noise import DHLEN, TAGLEN, CipherState, HandshakeState
from storenode.wire.receive_queue import ReceiveQueue

PROLOGUE: Final = b"storenode/1"
#: Signing domain of the identity proof: Ed25519 signs the static X25519 key.
IDENTITY_DOMAIN: Final = b"storenode/noise-static-key"
IDENTITY_PAYLOAD_SIZE: Final = PUBLIC_KEY_SIZE + SIGNATURE_SIZE  # 96

LENGTH_SIZE: Final = 2  # u16 big endian before every Noise message on TCP
MAX_FRAME: Final = 65535  # ciphertext + tag after the length
MAX_FRAME_PLAINTEXT: Final = MAX_FRAME - TAGLEN  # 65,519
MESSAGE_HEADER_SIZE: Final = 4  # u32 big endian message length in a message's first frame
FRAME_OVERHEAD: Final = LENGTH_SIZE + TAGLEN  # a frame's length prefix and its tag
MAX_FIRST_FRAME_BODY: Final = MAX_FRAME_PLAINTEXT - MESSAGE_HEADER_SIZE  # 65,515
MAX_MESSAGE_SIZE: Final = 8 * 1024 * 1024

# The shortest well-formed handshake message with each index, payload aside:
# 1: e; 2: e, encrypted s, payload tag; 3: encrypted s, payload tag.
_MIN_HANDSHAKE_MESSAGE: Final = (DHLEN, DHLEN + DHLEN + 2 * TAGLEN, DHLEN + 2 * TAGLEN)


@lru_cache(maxsize=16)
def _identity_proof(identity: Identity, static_public: bytes) -> bytes:
    """``ed25519 key || signature`` over a static key. Ed25519 signatures are
    deterministic, so a node's proof over its long-lived static key is made once."""
    return identity.public_key + identity.sign(IDENTITY_DOMAIN, static_public)


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The peer proved its Ed25519 key; messages may flow both ways."""

    peer_key: bytes


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """One whole message from the peer (0 to 8 MiB)."""

    body: bytes | bytearray


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """The peer closed the stream cleanly (between two messages, after the handshake)."""


Event = HandshakeComplete | MessageReceived | ConnectionEnded


class _State(enum.Enum):
    IDLE = "idle"
    AWAIT_MSG1 = "await handshake message 1"
    AWAIT_MSG2 = "await handshake message 2"
    AWAIT_MSG3 = "await handshake message 3"
    OPEN = "open"
    ENDED = "ended"
    FAILED = "failed"


class _Input(enum.Enum):
    START_INITIATOR = "start as initiator"
    START_RESPONDER = "start as responder"
    MSG1 = "handshake message 1 read"
    MSG2 = "handshake message 2 read"
    MSG3 = "handshake message 3 read"
    END = "end of stream between messages"


_TRANSITIONS: Final[dict[tuple[_State, _Input], _State]] = {
    (_State.IDLE, _Input.START_INITIATOR): _State.AWAIT_MSG2,
    (_State.IDLE, _Input.START_RESPONDER): _State.AWAIT_MSG1,
    (_State.AWAIT_MSG1, _Input.MSG1): _State.AWAIT_MSG3,
    (_State.AWAIT_MSG2, _Input.MSG2): _State.OPEN,
    (_State.AWAIT_MSG3, _Input.MSG3): _State.OPEN,
    (_State.OPEN, _Input.END): _State.ENDED,
}

# Which handshake message each waiting state reads, and the input it then makes.
_AWAITED: Final[dict[_State, tuple[int, _Input]]] = {
    _State.AWAIT_MSG1: (0, _Input.MSG1),
    _State.AWAIT_MSG2: (1, _Input.MSG2),
    _State.AWAIT_MSG3: (2, _Input.MSG3),
}

# The states in which each public operation is allowed (FAILED allows none).
_HANDSHAKE_STATES: Final = frozenset(_AWAITED)
_ALLOWED: Final[dict[str, frozenset[_State]]] = {
    "start": frozenset({_State.IDLE}),
    "receive_data": frozenset({_State.IDLE, *_HANDSHAKE_STATES, _State.OPEN, _State.ENDED}),
    "next_event": frozenset({*_HANDSHAKE_STATES, _State.OPEN, _State.ENDED}),
    "data_to_send": frozenset({_State.IDLE, *_HANDSHAKE_STATES, _State.OPEN, _State.ENDED}),
    "send_message": frozenset({_State.OPEN, _State.ENDED}),
}


class WireConnection:
    """The Noise XX handshake, identity proof and message framing of one connection.

    ``static`` and ``ephemeral`` are X25519 private keys (32 bytes), drawn with
    ``os.urandom`` when not given. With ``expected_peer`` (an Ed25519 public key)
    the handshake fails with :class:`PeerKeyMismatchError` unless the peer proves
    that key.

    Any :class:`WireError` raised while reading fails the connection: ``failed``
    becomes true and every later call raises :class:`ConnectionStateError`.
    Misuse by the caller (``send_message`` before the handshake, a message over
    8 MiB to send) raises without failing the connection.
    """

    def __init__(
        self,
        identity: Identity,
        role: Role,
        *,
        expected_peer: bytes | None = None,
        prologue: bytes = PROLOGUE,
        ephemeral: bytes | None = None,
        static: bytes | None = None,
    ) -> None:
        if expected_peer is not None and len(expected_peer) != PUBLIC_KEY_SIZE:
            raise KeyInvalidError(f"expected_peer is 32 bytes, not {len(expected_peer)}")
        self._identity = identity
        self._role = role
        self._expected_peer = None if expected_peer is None else bytes(expected_peer)
        self._handshake = HandshakeState(
            initiator=role is Role.INITIATOR,
            static=os.urandom(DHLEN) if static is None else static,
            ephemeral=os.urandom(DHLEN) if ephemeral is None else ephemeral,
            prologue=prologue,
        )
        self._state = _State.IDLE
        self._peer_key: bytes | None = None
        self._handshake_complete = False
        self._send: CipherState | None = None
        self._recv: CipherState | None = None
        self._received = ReceiveQueue()
        self._frame_length: int | None = None  # read from a length prefix, frame not yet here
        self._eof = False
        self._outgoing = bytearray()
        # The message being reassembled: its buffer and how much of it has arrived.
        self._body: bytearray | None = None
        self._filled = 0

    # -- state -------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def peer_key(self) -> bytes | None:
        """The peer's Ed25519 public key, once the handshake proved it."""
        return self._peer_key

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    @property
    def handshake_hash(self) -> bytes:
        """The Noise handshake hash: identical on both ends of one session."""
        return self._handshake.handshake_hash

    def _require(self, operation: str) -> None:
        if self._state not in _ALLOWED[operation]:
            if self._state is _State.FAILED:
                raise ConnectionStateError(f"{operation}() on a connection that has failed")
            raise ConnectionStateError(f"{operation}() is not allowed while {self._state.value}")

    def _move(self, event: _Input) -> None:
        try:
            self._state = _TRANSITIONS[(self._state, event)]
        except KeyError:
            message = f"{event.value} is not allowed while {self._state.value}"
            raise ConnectionStateError(message) from None

    # -- public API --------------------------------------------------------------

    def start(self) -> bytes:
        """Begin the handshake. The initiator gets message 1 to send; the responder
        gets ``b""``."""
        self._require("start")
        if self._role is Role.RESPONDER:
            self._move(_Input.START_RESPONDER)
            return b""
        self._move(_Input.START_INITIATOR)
        return _length_prefixed(self._handshake.write_message(b""))

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes read from the stream; ``b""`` means the peer closed it."""
        self._require("receive_data")
        if not data:
            self._eof = True
            return
        if self._eof:
            raise ConnectionStateError("receive_data() after the end of the stream")
        # bytes are kept as they are (read in place later); a mutable buffer is
        # copied, since its owner may reuse it.
        self._received.append(data if type(data) is bytes else bytes(data))

    def next_event(self) -> Event | None:
        """The next event, or ``None`` when more data is needed. Once the stream has
        ended, never ``None``: the last events, then :class:`ConnectionEnded` (again
        on every call) or an error."""
        self._require("next_event")
        if self._state is _State.ENDED:
            return ConnectionEnded()
        try:
            while self._state in _HANDSHAKE_STATES:
                message = self._take_frame()
                if message is None:
                    if self._eof:
                        index = _AWAITED[self._state][0]
                        raise HandshakeError(
                            f"the peer closed the stream before handshake message {index + 1}"
                        )
                    return None
                event = self._handle_handshake_message(message)
                if event is not None:
                    return event
            return self._read_transport()
        except WireError:
            self._state = _State.FAILED
            self._body = None
            raise

    def data_to_send(self) -> bytes:
        """Handshake bytes waiting to be sent (the responder's message 2, the
        initiator's message 3); empties the queue."""
        self._require("data_to_send")
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def send_message(self, body: bytes | bytearray | memoryview) -> bytearray:
        """The frames of one message (0 to 8 MiB), preceded by any handshake bytes
        still queued, so they can never be sent out of order."""
        self._require("send_message")
        view = memoryview(body).cast("B")
        size = len(view)
        if size > MAX_MESSAGE_SIZE:
            raise MessageTooLargeError(f"a message is at most 8 MiB, not {size:,} bytes")
        first = min(size, MAX_FIRST_FRAME_BODY)
        # One buffer for the whole message: each frame is sealed in place.
        frames = 1 + -(-(size - first) // MAX_FRAME_PLAINTEXT)
        pending = len(self._outgoing)
        # Every byte of it is written below: not zeroed first (storenode.buffers).
        out = unfilled(pending + frames * FRAME_OVERHEAD + MESSAGE_HEADER_SIZE + size)
        out[:pending] = self._outgoing
        try:
            with memoryview(out) as target:
                at = self._seal_frame(
                    size.to_bytes(MESSAGE_HEADER_SIZE, "big") + view[:first], target, pending
                )
                for start in range(first, size, MAX_FRAME_PLAINTEXT):
                    at = self._seal_frame(view[start : start + MAX_FRAME_PLAINTEXT], target, at)
            if at != len(out):  # never send a byte of what the allocator held before
                raise RuntimeError(f"{at} bytes of frames sealed into a {len(out)}-byte buffer")
        except WireError:  # only the nonce running out, after 2^64 - 1 frames
            self._state = _State.FAILED
            raise
        self._outgoing.clear()
        return out

    # -- handshake ---------------------------------------------------------------

    def _take_frame(self) -> memoryview | bytes | None:
        """The next length-prefixed Noise message (handshake or transport) without its
        prefix, or ``None`` if it has not fully arrived. The prefix is checked by
        :meth:`_check_length` as soon as it is here."""
        if self._frame_length is None:
            prefix = self._received.take(LENGTH_SIZE)
            if prefix is None:
                return None
            self._frame_length = self._check_length(int.from_bytes(prefix, "big"))
        frame = self._received.take(self._frame_length)
        if frame is not None:
            self._frame_length = None
        return frame

    def _check_length(self, length: int) -> int:
        if self._state is _State.OPEN:
            if length < TAGLEN:
                raise FrameTooLargeError(f"a frame of {length} bytes is shorter than its tag")
            return length
        index = _AWAITED[self._state][0]
        if length < _MIN_HANDSHAKE_MESSAGE[index]:
            raise HandshakeError(
                f"handshake message {index + 1} of {length} bytes is shorter than "
                f"{_MIN_HANDSHAKE_MESSAGE[index]}"
            )
        return length

    def _handle_handshake_message(self, message: memoryview | bytes) -> Event | None:
        index, done = _AWAITED[self._state]
        payload = self._handshake.read_message(message)
        if index == 0:
            if payload:
                raise HandshakeError("handshake message 1 must carry an empty payload")
            self._queue_handshake_message()
            self._move(done)
            return None
        self._peer_key = self._check_identity_proof(payload)
        if index == 1:
            self._queue_handshake_message()
        self._move(done)
        c1, c2 = self._handshake.split()
        self._send, self._recv = (c1, c2) if self._role is Role.INITIATOR else (c2, c1)
        self._handshake_complete = True
        return HandshakeComplete(self._peer_key)

    def _queue_handshake_message(self) -> None:
        static_public = self._handshake.static_public_key
        proof = _identity_proof(self._identity, static_public)
        self._outgoing += _length_prefixed(self._handshake.write_message(proof))

    def _check_identity_proof(self, payload: bytes) -> bytes:
        if len(payload) != IDENTITY_PAYLOAD_SIZE:
            raise IdentityProofInvalidError(
                f"the identity proof is {IDENTITY_PAYLOAD_SIZE} bytes, not {len(payload)}"
            )
        peer_key, signature = payload[:PUBLIC_KEY_SIZE], payload[PUBLIC_KEY_SIZE:]
        remote_static = self._handshake.remote_static
        assert remote_static is not None  # read before the payload in messages 2 and 3
        try:
            verify(peer_key, IDENTITY_DOMAIN, remote_static, signature)
        except (KeyInvalidError, SignatureInvalidError) as e:
            raise IdentityProofInvalidError(
                f"the peer's signature over its static key does not verify: {e}"
            ) from None
        if self._expected_peer is not None and peer_key != self._expected_peer:
            raise PeerKeyMismatchError(
                f"expected peer {self._expected_peer.hex()}, but it proved {peer_key.hex()}"
            )
        return peer_key

    # -- transport ---------------------------------------------------------------

    def _seal_frame(self, plaintext: bytes | memoryview, out: memoryview, at: int) -> int:
        """Write ``u16 length || ciphertext || tag`` of one frame at ``out[at:]``;
        where the next frame starts."""
        assert self._send is not None
        size = len(plaintext) + TAGLEN
        out[at : at + LENGTH_SIZE] = size.to_bytes(LENGTH_SIZE, "big")
        at += LENGTH_SIZE
        self._send.encrypt_into(b"", plaintext, out[at : at + size])
        return at + size

    def _read_transport(self) -> Event | None:
        recv = self._recv
        assert recv is not None
        while (frame := self._take_frame()) is not None:
            body = self._assemble(recv, frame)
            if body is not None:
                return MessageReceived(body)
        if not self._eof:
            return None
        if self._received.available or self._frame_length is not None:
            raise FrameDecryptError("the stream ended in the middle of a frame (truncated)")
        if self._body is not None:
            raise FrameDecryptError("the stream ended in the middle of a message (truncated)")
        self._move(_Input.END)
        return ConnectionEnded()

    def _assemble(self, recv: CipherState, frame: memoryview | bytes) -> bytes | bytearray | None:
        """Decrypt one frame into the message; the body once it is whole. A message
        of several frames is decrypted straight into one buffer of its size."""
        body = self._body
        if body is None:
            plaintext = recv.decrypt_with_ad(b"", frame)
            if len(plaintext) < MESSAGE_HEADER_SIZE:
                raise FrameMalformedError(
                    f"a message's first frame holds {len(plaintext)} bytes, fewer than its "
                    "4-byte length"
                )
            size = int.from_bytes(plaintext[:MESSAGE_HEADER_SIZE], "big")
            if size > MAX_MESSAGE_SIZE:
                raise MessageTooLargeError(f"the peer declared a message of {size:,} bytes")
            carried = len(plaintext) - MESSAGE_HEADER_SIZE
            if carried > size:
                raise FrameMalformedError(
                    f"a first frame carries {carried} bytes of a {size}-byte message"
                )
            if carried == size:
                return plaintext[MESSAGE_HEADER_SIZE:]
            self._body = unfilled(size)  # handed on only once every frame filled it
            self._body[:carried] = memoryview(plaintext)[MESSAGE_HEADER_SIZE:]
            self._filled = carried
            return None
        carried = len(frame) - TAGLEN
        missing = len(body) - self._filled
        if not 0 < carried <= missing:
            raise FrameMalformedError(
                f"a continuation frame carries {max(carried, 0)} bytes where 1..{missing} were due"
            )
        with memoryview(body) as view:
            recv.decrypt_into(b"", frame, view[self._filled : self._filled + carried])
        self._filled += carried
        if carried < missing:
            return None
        self._body = None
        return body


def _length_prefixed(message: bytes) -> bytes:
    return len(message).to_bytes(LENGTH_SIZE, "big") + message
