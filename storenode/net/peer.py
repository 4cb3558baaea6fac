"""One authenticated connection to a peer, driven by trio.

A :class:`PeerConnection` owns a TCP stream and the sans-IO
:class:`~storenode.wire.connection.WireConnection` on it. One reader task
decodes every incoming message; requests in both directions are multiplexed
by id, so many can be open at once and answers may come in any order.

Limits protect the node from any one peer: at most ``max_open_requests``
inbound requests being handled and ``max_inflight_bytes`` of their bodies at
once (beyond that the peer is told ``BUSY``), a deadline on every request in
both directions, and a handshake deadline. A peer that breaks the protocol
(bad frame, malformed message, forged handshake) is disconnected and
reported to the caller's ``on_violation``; the node goes on serving everyone
else.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import msgspec
import trio

from storenode.net.errors import (
    ConnectionLostError,
    PeerUnreachableError,
    RequestRefusedError,
    RequestTimeoutError,
)
from storenode.wire.connection import (
    ConnectionEnded,
    HandshakeComplete,
    MessageReceived,
    WireConnection,
)
from storenode.wire.errors import (
    HandshakeError,
    MessageInvalidError,
    MessageMalformedError,
    MessageNameUnknownError,
    RemoteError,
    WireError,
)
from storenode.wire.messages import (
    ErrorCode,
    ErrorReply,
    Notify,
    Registry,
    Request,
    Response,
)

log = logging.getLogger(__name__)

MiB = 1 << 20
MAX_REQUEST_ID = 2**32 - 1

RequestHandler = Callable[["PeerConnection", str, msgspec.Struct], Awaitable[msgspec.Struct | None]]
SyncHandler = Callable[["PeerConnection", msgspec.Struct], msgspec.Struct | None]
"""A handler that never blocks (e.g. the DHT's): run inline by the reader, no task."""

OUTBOX_HIGH_WATER = 8 * MiB


@dataclass(frozen=True)
class Limits:
    """Per-connection limits and deadlines (seconds)."""

    request_timeout: float = 10.0
    handshake_timeout: float = 5.0
    idle_timeout: float = 60.0
    max_open_requests: int = 64
    max_inflight_bytes: int = 32 * MiB
    receive_size: int = 256 * 1024


@dataclass
class _Pending:
    name: str
    done: trio.Event = field(default_factory=trio.Event)
    reply: Response | ErrorReply | None = None


class PeerConnection:
    """A live, authenticated connection. Built by :func:`handshake`."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        wire: WireConnection,
        registry: Registry,
        *,
        limits: Limits,
        on_request: RequestHandler,
        on_violation: Callable[[PeerConnection, WireError], None],
        outbound: bool,
        sync_handlers: Mapping[str, SyncHandler] | None = None,
    ) -> None:
        assert wire.peer_key is not None
        self.peer_key: bytes = wire.peer_key
        self.outbound = outbound
        self._stream = stream
        self._wire = wire
        self._registry = registry
        self._limits = limits
        self._on_request = on_request
        self._on_violation = on_violation
        self._sync_handlers: Mapping[str, SyncHandler] = sync_handlers or {}
        # Messages are encrypted when queued (so nonces follow queue order). When
        # nothing is queued and the writer is idle, a message is written to the
        # socket at once, without a await; what the socket does not take, and
        # every message behind it, the writer task sends in one write.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None
        self._writing = False
        self._drained_read = True
        self._outbox: list[bytes | bytearray | memoryview] = []
        self._outbox_bytes = 0
        self._outbox_ready = trio.Event()
        self._drained = trio.Event()
        self._drained.set()
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._open_inbound = 0
        self._inflight_bytes = 0
        self.closed = False
        self.last_activity = trio.current_time()
        self._nursery: trio.Nursery | None = None

    # -- state seen by the pool ----------------------------------------------

    @property
    def busy(self) -> bool:
        """Requests are open in either direction."""
        return bool(self._pending) or self._open_inbound > 0

    # -- outbound ------------------------------------------------------------

    def _alloc_id(self) -> int:
        for _ in range(len(self._pending) + 1):
            rid = self._next_id
            self._next_id = rid + 1 if rid < MAX_REQUEST_ID else 1
            if rid not in self._pending:
                return rid
        raise AssertionError("no free request id")  # pragma: no cover

    def _enqueue(self, body: bytes) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the connection is closed")
        data: bytearray | memoryview = self._wire.send_message(body)
        if self._fd is not None and not self._outbox and not self._writing:
            try:
                sent = os.write(self._fd, data)
            except OSError:  # full (EAGAIN) or broken: the writer sends it, or meets the error
                sent = 0
            if sent == len(data):
                self.last_activity = trio.current_time()
                return
            data = memoryview(data)[sent:]
        self._outbox.append(data)
        self._outbox_bytes += len(data)
        self._outbox_ready.set()

    async def _send(self, body: bytes) -> None:
        """Queue ``body``; wait while more than 8 MiB is queued (back-pressure)."""
        self._enqueue(body)
        while self._outbox_bytes > OUTBOX_HIGH_WATER:
            if self._drained.is_set():
                self._drained = trio.Event()
            await self._drained.wait()
            if self.closed:
                raise trio.ClosedResourceError("the connection is closed")

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready = trio.Event()
                while self._outbox:
                    data = self._outbox[0] if len(self._outbox) == 1 else b"".join(self._outbox)
                    self._outbox.clear()
                    self._writing = True
                    try:
                        await self._stream.send_all(data)
                    finally:
                        self._writing = False
                    self._outbox_bytes -= len(data)
                    self.last_activity = trio.current_time()
                    if self._outbox_bytes <= OUTBOX_HIGH_WATER:
                        self._drained.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = True

    async def request(
        self, body: msgspec.Struct, *, timeout: float | None = None
    ) -> msgspec.Struct:
        """Send a request and wait for its validated response.

        Raises :class:`RequestTimeoutError`, :class:`ConnectionLostError`,
        :class:`RemoteError` (the peer answered with an error code) or
        :class:`MessageMalformedError` (the answer broke its schema: the peer is
        disconnected).
        """
        if self.closed:
            raise ConnectionLostError("the connection is closed")
        name = self._registry.name_of(type(body))
        rid = self._alloc_id()
        slot = _Pending(name)
        self._pending[rid] = slot
        try:
            with trio.fail_after(timeout if timeout is not None else self._limits.request_timeout):
                try:
                    await self._send(self._registry.encode_request(rid, body))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ConnectionLostError("the connection closed while sending") from None
                await slot.done.wait()
        except trio.TooSlowError:
            raise RequestTimeoutError(f"{name} to peer {self.peer_key.hex()[:16]}…") from None
        finally:
            self._pending.pop(rid, None)
        reply = slot.reply
        if reply is None:
            raise ConnectionLostError("the connection closed before the response")
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply.code, reply.message)
        try:
            return self._registry.decode_response(name, reply.body_raw)
        except MessageMalformedError as e:
            self._violation(e)
            raise

    async def notify(self, body: msgspec.Struct) -> None:
        """Send a one-way message (gossip)."""
        if self.closed:
            raise ConnectionLostError("the connection is closed")
        try:
            await self._send(self._registry.encode_notify(body))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConnectionLostError("the connection closed while sending") from None

    # -- inbound -------------------------------------------------------------

    async def run(self) -> None:
        """The reader loop; returns when the connection ends for any reason."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer, nursery.cancel_scope)
                try:
                    await self._read_loop()
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            await self.aclose()

    async def _writer(self, scope: trio.CancelScope) -> None:
        await self._write_loop()
        scope.cancel()  # the socket broke: end the reader too

    async def _read_loop(self) -> None:
        wire = self._wire
        try:
            while True:
                while (event := wire.next_event()) is not None:
                    if isinstance(event, MessageReceived):
                        self._dispatch(event.body)
                    elif isinstance(event, ConnectionEnded):
                        return
                if self.closed:
                    return
                data = await self._receive()
                self.last_activity = trio.current_time()
                wire.receive_data(data)
        except WireError as e:
            self._violation(e)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _receive(self) -> bytes | bytearray:
        """The next bytes from the peer (b"" at its end).

        On a socket, after a read that drained it (shorter than the buffer), wait
        until it is readable before reading again: a request's answer is rarely
        there yet, and trying first costs a failed read and trio's checkpoints
        around it. Either way the task yields once, so a peer that keeps the
        socket full cannot starve the others."""
        size = self._limits.receive_size
        if self._fd is None:
            return await self._stream.receive_some(size)
        sock = self._stream.socket  # type: ignore[attr-defined]
        if self._drained_read:
            await trio.lowlevel.wait_readable(sock)
        else:
            await trio.lowlevel.checkpoint()
        while True:
            if self.closed:  # never read a descriptor that may have been closed
                raise trio.ClosedResourceError("the connection is closed")
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError as e:
                raise trio.BrokenResourceError(f"the connection broke: {e}") from None
            self._drained_read = len(data) < size
            return data

    def _violation(self, error: WireError) -> None:
        if not self.closed:
            log.info("peer %s broke the protocol: %s", self.peer_key.hex()[:16], error)
            self._on_violation(self, error)
        self.closed = True

    def _dispatch(self, body: bytes | bytearray) -> None:
        """Handle one message. ``body`` is the connection's to give: a fresh buffer
        per message that nothing writes to again."""
        assert self._nursery is not None
        try:
            msg = self._registry.decode(body, owned=True)
        except MessageNameUnknownError as e:
            # A newer peer may know types we don't: answer, keep the connection.
            if e.request_id is not None:
                self._reply_error(e.request_id, ErrorCode(e.code), str(e))
            return
        except MessageInvalidError as e:
            if e.request_id is not None:
                self._reply_error(e.request_id, ErrorCode(e.code), str(e))
            raise
        if isinstance(msg, Response | ErrorReply):
            slot = self._pending.get(msg.id)
            if slot is not None and not slot.done.is_set():
                slot.reply = msg
                slot.done.set()
            return  # an answer to a request we gave up on: nothing to do
        size = len(body)
        if isinstance(msg, Request) and msg.name in self._sync_handlers:
            self._handle_sync(msg)
            return
        if isinstance(msg, Request):
            if (
                self._open_inbound >= self._limits.max_open_requests
                or self._inflight_bytes + size > self._limits.max_inflight_bytes
            ):
                self._reply_error(msg.id, ErrorCode.BUSY, "too many open requests; retry later")
                return
            self._open_inbound += 1
            self._inflight_bytes += size
            self._nursery.start_soon(self._handle, msg, size)
        elif isinstance(msg, Notify):
            self._nursery.start_soon(self._handle_notify, msg)

    async def _handle(self, req: Request, size: int) -> None:
        try:
            reply: bytes
            with trio.move_on_after(self._limits.request_timeout) as scope:
                try:
                    result = await self._on_request(self, req.name, req.body)
                except RequestRefusedError as e:
                    reply = self._registry.encode_error(req.id, e.code, e.message)
                except Exception:  # the RPC boundary: one bad handler must not stop the node
                    log.exception("handler for %s failed", req.name)
                    reply = self._registry.encode_error(
                        req.id, ErrorCode.INTERNAL, "internal error"
                    )
                else:
                    if result is None:
                        reply = self._registry.encode_error(
                            req.id, ErrorCode.INTERNAL, "handler gave no answer"
                        )
                    else:
                        reply = self._registry.encode_response(req.id, result)
            if scope.cancelled_caught:
                reply = self._registry.encode_error(req.id, ErrorCode.TIMEOUT, "deadline passed")
            await self._send_quietly(reply)
        finally:
            self._open_inbound -= 1
            self._inflight_bytes -= size

    def _handle_sync(self, req: Request) -> None:
        try:
            result = self._sync_handlers[req.name](self, req.body)
        except RequestRefusedError as e:
            reply = self._registry.encode_error(req.id, e.code, e.message)
        except Exception:  # the RPC boundary: one bad handler must not stop the node
            log.exception("handler for %s failed", req.name)
            reply = self._registry.encode_error(req.id, ErrorCode.INTERNAL, "internal error")
        else:
            if result is None:
                reply = self._registry.encode_error(
                    req.id, ErrorCode.INTERNAL, "handler gave no answer"
                )
            else:
                reply = self._registry.encode_response(req.id, result)
        with contextlib.suppress(trio.ClosedResourceError):
            self._enqueue(reply)

    async def _handle_notify(self, msg: Notify) -> None:
        with trio.move_on_after(self._limits.request_timeout):
            try:
                await self._on_request(self, msg.name, msg.body)
            except RequestRefusedError as e:
                log.debug("notify %s refused: %s", msg.name, e)
            except Exception:  # the RPC boundary
                log.exception("handler for notify %s failed", msg.name)

    def _reply_error(self, rid: int, code: ErrorCode, message: str) -> None:
        with contextlib.suppress(trio.ClosedResourceError):
            self._enqueue(self._registry.encode_error(rid, code, message))

    async def _send_quietly(self, body: bytes) -> None:
        if self.closed:
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._send(body)

    async def aclose(self) -> None:
        self.closed = True
        for slot in self._pending.values():
            slot.done.set()  # reply stays None: ConnectionLostError
        self._drained.set()  # wake senders waiting on back-pressure
        with trio.CancelScope(shield=True):
            await self._stream.aclose()


async def handshake(stream: trio.abc.Stream, wire: WireConnection, *, timeout: float) -> None:
    """Run the Noise handshake on ``stream``. A peer that breaks the protocol
    raises a :class:`HandshakeError`; a connection that closes or resets under it
    (the peer went away: no fault of its) :class:`PeerUnreachableError`; one that
    takes too long ``trio.TooSlowError``. Messages that arrive right behind the
    handshake stay queued in ``wire`` for the reader loop."""
    try:
        with trio.fail_after(timeout):
            first = wire.start()
            if first:
                await stream.send_all(first)
            while True:
                event = wire.next_event()
                out = wire.data_to_send()
                if out:
                    await stream.send_all(out)
                if isinstance(event, HandshakeComplete):
                    return
                if isinstance(event, ConnectionEnded):
                    raise HandshakeError("the peer closed the connection during the handshake")
                if event is None:
                    wire.receive_data(await stream.receive_some(65536))
    except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
        raise PeerUnreachableError(f"the connection broke during the handshake ({e})") from None
