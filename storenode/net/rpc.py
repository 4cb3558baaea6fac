"""An RPC node: serve the wire, dial peers, keep one connection per peer.

:func:`open_rpc_node` is the entry point::

    async with open_rpc_node(identity) as node:
        node.route("dht.ping", handle_ping)
        port = await node.listen("127.0.0.1", 0)
        reply = await node.request(contact, Ping(...))

Requests to a peer reuse its open connection (dialled by us or by it) and
dial one otherwise; concurrent requests share one dial. Connections idle for
``Limits.idle_timeout`` with nothing open are closed. A banned peer (see
:mod:`storenode.net.scores`) is neither dialled nor served.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import msgspec
import trio

from storenode.identity import Identity
from storenode.net.errors import (
    NetError,
    PeerBannedError,
    PeerUnreachableError,
    RequestRefusedError,
)
from storenode.net.peer import Limits, PeerConnection, SyncHandler, handshake
from storenode.net.scores import PeerScores
from storenode.wire.connection import Role, WireConnection
from storenode.wire.errors import WireError
from storenode.wire.messages import ErrorCode, Registry, default_registry

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()

Handler = Callable[[PeerConnection, msgspec.Struct], Awaitable[msgspec.Struct | None]]


class PeerAddress(Protocol):
    """Where a peer listens, and who it must prove to be."""

    @property
    def key(self) -> bytes: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


class RpcNode:
    """Routes, a connection pool and a listener, living in one nursery."""

    def __init__(
        self,
        identity: Identity,
        nursery: trio.Nursery,
        *,
        registry: Registry = default_registry,
        limits: Limits = DEFAULT_LIMITS,
        scores: PeerScores | None = None,
        max_connections: int = 1024,
    ) -> None:
        self.identity = identity
        self.registry = registry
        self.limits = limits
        self.scores = scores if scores is not None else PeerScores()
        self.max_connections = max_connections
        self._nursery = nursery
        self._routes: dict[str, Handler] = {}
        self._sync_routes: dict[str, SyncHandler] = {}
        self._connections: dict[bytes, PeerConnection] = {}
        self._dialing: dict[bytes, trio.Event] = {}
        self._all: set[PeerConnection] = set()
        self.port: int | None = None
        # One static Noise key per node, signed into every handshake; a fresh
        # ephemeral key per connection still gives each session its own keys.
        self._static = os.urandom(32)
        self.violations = 0

    # -- routes ----------------------------------------------------------------

    def route(self, name: str, handler: Handler) -> None:
        """Answer requests (or notifications) of type ``name`` with ``handler``."""
        if name in self._routes or name in self._sync_routes:
            raise ValueError(f"a handler for {name!r} is already routed")
        self._routes[name] = handler

    def route_sync(self, name: str, handler: SyncHandler) -> None:
        """Answer requests of type ``name`` with a handler that never blocks: it runs
        inline in the connection's reader, with no task of its own."""
        if name in self._routes or name in self._sync_routes:
            raise ValueError(f"a handler for {name!r} is already routed")
        self._sync_routes[name] = handler

    async def _on_request(
        self, conn: PeerConnection, name: str, body: msgspec.Struct
    ) -> msgspec.Struct | None:
        handler = self._routes.get(name)
        if handler is None:
            raise RequestRefusedError(ErrorCode.UNAVAILABLE, f"{name} is not served here")
        return await handler(conn, body)

    def _on_violation(self, conn: PeerConnection, error: WireError) -> None:
        self.violations += 1
        banned = self.scores.violation(conn.peer_key, trio.current_time())
        log.warning(
            "disconnecting peer %s: %s%s",
            conn.peer_key.hex()[:16],
            error,
            " (banned)" if banned else "",
        )

    # -- connections -----------------------------------------------------------

    def connection(self, key: bytes) -> PeerConnection | None:
        conn = self._connections.get(key)
        return conn if conn is not None and not conn.closed else None

    @property
    def connection_count(self) -> int:
        return len(self._all)

    def _adopt(self, conn: PeerConnection) -> None:
        self._all.add(conn)
        current = self.connection(conn.peer_key)
        if current is None:
            self._connections[conn.peer_key] = conn

    def _forget(self, conn: PeerConnection) -> None:
        self._all.discard(conn)
        if self._connections.get(conn.peer_key) is conn:
            del self._connections[conn.peer_key]

    def _new_wire(self, role: Role, expected: bytes | None) -> WireConnection:
        return WireConnection(self.identity, role, expected_peer=expected, static=self._static)

    def _peer(
        self, stream: trio.abc.Stream, wire: WireConnection, outbound: bool
    ) -> PeerConnection:
        return PeerConnection(
            stream,
            wire,
            self.registry,
            limits=self.limits,
            on_request=self._on_request,
            on_violation=self._on_violation,
            outbound=outbound,
            sync_handlers=self._sync_routes,
        )

    async def _run_connection(self, conn: PeerConnection) -> None:
        try:
            await conn.run()
        finally:
            self._forget(conn)

    async def connect(self, peer: PeerAddress) -> PeerConnection:
        """The open connection to ``peer``, dialling it if there is none."""
        while True:
            conn = self.connection(peer.key)
            if conn is not None:
                return conn
            if self.scores.is_banned(peer.key, trio.current_time()):
                raise PeerBannedError(f"peer {peer.key.hex()[:16]}… is banned")
            pending = self._dialing.get(peer.key)
            if pending is None:
                break
            await pending.wait()  # someone else is dialling: use their result
        done = self._dialing[peer.key] = trio.Event()
        try:
            return await self._dial(peer)
        finally:
            del self._dialing[peer.key]
            done.set()

    async def _dial(self, peer: PeerAddress) -> PeerConnection:
        try:
            with trio.fail_after(self.limits.handshake_timeout):
                stream = await trio.open_tcp_stream(peer.host, peer.port)
        except (OSError, trio.TooSlowError) as e:
            raise PeerUnreachableError(f"cannot connect to {peer.host}:{peer.port}: {e}") from None
        wire = self._new_wire(Role.INITIATOR, peer.key)
        try:
            await handshake(stream, wire, timeout=self.limits.handshake_timeout)
        except (WireError, NetError, trio.TooSlowError) as e:
            await stream.aclose()
            if isinstance(e, WireError):
                self.violations += 1
                self.scores.violation(peer.key, trio.current_time())
            raise PeerUnreachableError(
                f"handshake with {peer.host}:{peer.port} failed: {e}"
            ) from None
        except BaseException:
            await stream.aclose()
            raise
        conn = self._peer(stream, wire, outbound=True)
        self._adopt(conn)
        self._nursery.start_soon(self._run_connection, conn)
        return conn

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        if len(self._all) >= self.max_connections:
            await stream.aclose()
            return
        wire = self._new_wire(Role.RESPONDER, None)
        try:
            await handshake(stream, wire, timeout=self.limits.handshake_timeout)
        except (WireError, NetError, trio.TooSlowError) as e:
            log.info("inbound handshake failed: %s", e)
            await stream.aclose()
            return
        assert wire.peer_key is not None
        if self.scores.is_banned(wire.peer_key, trio.current_time()):
            await stream.aclose()
            return
        conn = self._peer(stream, wire, outbound=False)
        self._adopt(conn)
        await self._run_connection(conn)

    # -- the public calls ------------------------------------------------------

    async def request(
        self, peer: PeerAddress, body: msgspec.Struct, *, timeout: float | None = None
    ) -> msgspec.Struct:
        """Send ``body`` to ``peer`` and return its validated response."""
        conn = await self.connect(peer)
        return await conn.request(body, timeout=timeout)

    async def notify(self, peer: PeerAddress, body: msgspec.Struct) -> None:
        conn = await self.connect(peer)
        await conn.notify(body)

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start serving on ``host:port``; returns the port (useful with 0)."""
        bound: int = await self._nursery.start(serve_wire, self, host, port)
        return bound

    async def _sweep_idle(self) -> None:
        period = max(self.limits.idle_timeout / 4, 0.05)
        while True:
            await trio.sleep(period)
            cutoff = trio.current_time() - self.limits.idle_timeout
            for conn in list(self._all):
                if not conn.busy and conn.last_activity < cutoff:
                    await conn.aclose()

    async def aclose(self) -> None:
        for conn in list(self._all):
            await conn.aclose()


async def serve_wire(
    node: RpcNode,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on ``host:port`` for ``node`` until cancelled."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    node.port = bound
    task_status.started(bound)
    await trio.serve_listeners(node._serve_one, listeners, handler_nursery=node._nursery)


@asynccontextmanager
async def open_rpc_node(
    identity: Identity | None = None,
    *,
    registry: Registry = default_registry,
    limits: Limits = DEFAULT_LIMITS,
    scores: PeerScores | None = None,
) -> AsyncIterator[RpcNode]:
    """An :class:`RpcNode` whose connections live until the block exits."""
    async with trio.open_nursery() as nursery:
        node = RpcNode(
            identity or Identity.generate(),
            nursery,
            registry=registry,
            limits=limits,
            scores=scores,
        )
        nursery.start_soon(node._sweep_idle)
        try:
            yield node
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await node.aclose()
