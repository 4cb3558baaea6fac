"""The DHT service: the sans-IO :class:`~storenode.dht.DhtNode` driven over the wire.

It answers ``dht.*`` requests through an :class:`~storenode.net.rpc.RpcNode`,
runs lookups with up to α requests in flight (each with its own deadline),
pings the heads of full buckets, stores records on the k closest nodes of
their key, and every ``maintenance_interval`` refreshes stale buckets,
republishes this node's own records and expires old ones.

Time: the DHT compares record timestamps across nodes, so the core is given
unix time (``clock``, default :func:`time.time`). Deadlines use trio's clock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
import trio

from storenode.dht import (
    Contact,
    DhtNode,
    Lookup,
    LookupResult,
    Nodes,
    Ping,
    Record,
    ReplyUnexpectedError,
    SenderMismatchError,
    Stored,
    Values,
    key_position,
)
from storenode.identity import Identity
from storenode.net.errors import NetError, RequestRefusedError
from storenode.net.peer import Limits, PeerConnection
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.wire.errors import WireError
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

DHT_TYPES = ("dht.ping", "dht.find_node", "dht.find_value", "dht.store")


@dataclass
class DhtStats:
    lookups: int = 0
    requests_sent: int = 0
    requests_failed: int = 0
    records_stored: int = 0


class DhtService:
    """One node's DHT on the network. Build it with :func:`open_dht_node`."""

    def __init__(
        self,
        rpc: RpcNode,
        core: DhtNode,
        nursery: trio.Nursery,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        request_timeout: float = 2.0,
    ) -> None:
        self.rpc = rpc
        self.core = core
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.request_timeout = request_timeout
        self.stats = DhtStats()
        self._nursery = nursery
        for name in DHT_TYPES:
            rpc.route_sync(name, self._serve)

    @property
    def contact(self) -> Contact:
        return self.core.contact

    # -- serving ---------------------------------------------------------------

    def _serve(self, conn: PeerConnection, body: msgspec.Struct) -> msgspec.Struct:
        try:
            reply: msgspec.Struct = self.core.handle_request(
                conn.peer_key,
                body,  # type: ignore[arg-type]  # the registry validated it as a DHT request
                self.clock(),
            )
        except SenderMismatchError as e:
            raise RequestRefusedError(ErrorCode.UNAUTHORIZED, str(e)) from None
        self._ping_due()
        return reply

    # -- requests we send --------------------------------------------------------

    async def _call(self, contact: Contact, body: msgspec.Struct) -> msgspec.Struct | None:
        """The reply, or None if the request failed in any way (counted)."""
        self.stats.requests_sent += 1
        try:
            return await self.rpc.request(contact, body, timeout=self.request_timeout)
        except (NetError, WireError) as e:
            log.debug("%s to %s failed: %s", type(body).__name__, contact, e)
            self.stats.requests_failed += 1
            return None

    async def ping(self, contact: Contact) -> bool:
        """PING ``contact``; the routing table learns the outcome."""
        reply = await self._call(contact, Ping(self.contact))
        if reply is None:
            self.core.record_failure(contact)
            return False
        self.core.observe(contact, self.clock())
        return True

    def _ping_due(self) -> None:
        for contact in self.core.pings_due():
            self._nursery.start_soon(self.ping, contact)

    # -- lookups ---------------------------------------------------------------

    async def run_lookup(self, lookup: Lookup) -> LookupResult:
        """Drive ``lookup`` to its end, α requests in flight.

        Each query's task applies its own outcome and starts whatever requests
        the lookup wants next, so no coordinating task is woken per reply."""
        self.stats.lookups += 1
        async with trio.open_nursery() as nursery:

            def start_next() -> None:
                for contact in lookup.next_requests():
                    nursery.start_soon(query, contact, lookup.request(self.contact))

            async def query(contact: Contact, body: msgspec.Struct) -> None:
                reply = await self._call(contact, body)
                now = self.clock()
                if isinstance(reply, Nodes | Values):
                    try:
                        self.core.on_lookup_reply(lookup, contact, reply, now)
                    except ReplyUnexpectedError as e:  # pragma: no cover - schema prevents it
                        log.info("dropping a bad lookup reply: %s", e)
                else:
                    self.core.on_lookup_failure(lookup, contact, now)
                start_next()

            start_next()
        assert lookup.done
        self._ping_due()
        return lookup.result()

    async def find_node(self, target: bytes) -> LookupResult:
        return await self.run_lookup(self.core.find_node(target, self.clock()))

    async def find_value(self, key: bytes, *, enough: int | None = None) -> list[Record]:
        """The live, valid records under ``key`` (one per owner), from the k
        closest nodes of the key (and this node's own store)."""
        lookup = self.core.find_value(key, self.clock(), enough_records=enough)
        return list((await self.run_lookup(lookup)).records)

    async def bootstrap(self, seeds: Iterable[Contact], *, refresh: bool = False) -> LookupResult:
        """Join through ``seeds``: a lookup of our own id, then (with ``refresh``)
        one lookup in every bucket."""
        result = await self.run_lookup(self.core.join(list(seeds), self.clock()))
        if refresh:
            async with trio.open_nursery() as nursery:
                for target in self.core.refresh_all(self.rng):
                    nursery.start_soon(self.find_node, target)
        return result

    # -- records ---------------------------------------------------------------

    async def store(self, record: Record) -> int:
        """Store ``record`` on the k closest nodes of its key; how many accepted
        (this node counts when it is one of them)."""
        result = await self.find_node(key_position(record.key))
        accepted = 0
        body = self.core.store_request(record)

        async def one(contact: Contact) -> None:
            nonlocal accepted
            reply = await self._call(contact, body)
            if isinstance(reply, Stored) and reply.accepted:
                accepted += 1

        async with trio.open_nursery() as nursery:
            for contact in result.closest:
                if contact.key == self.contact.key:
                    accepted += 1  # publish/announce already holds it locally
                else:
                    nursery.start_soon(one, contact)
        self.stats.records_stored += accepted
        return accepted

    async def publish(self, key: bytes, value: bytes, *, ttl: int) -> int:
        return await self.store(self.core.publish(key, value, self.clock(), ttl))

    async def announce_provider(self, key: bytes, *, ttl: int | None = None) -> int:
        """Announce that this node holds ``key`` (e.g. a chunk); republished until
        :meth:`withdraw`."""
        now = self.clock()
        record = (
            self.core.announce_provider(key, now)
            if ttl is None
            else self.core.announce_provider(key, now, ttl)
        )
        return await self.store(record)

    def withdraw(self, key: bytes) -> bool:
        """Stop republishing this node's record under ``key`` (it expires by TTL)."""
        return self.core.withdraw(key)

    # -- maintenance -------------------------------------------------------------

    async def maintain_once(self) -> None:
        m = self.core.maintenance(self.clock(), self.rng)
        async with trio.open_nursery() as nursery:
            for target in m.refresh:
                nursery.start_soon(self.find_node, target)
            for record in m.republish:
                nursery.start_soon(self.store, record)

    async def maintain(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            await self.maintain_once()


@asynccontextmanager
async def open_dht_node(
    identity: Identity | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: Limits | None = None,
    maintenance_interval: float | None = 60.0,
    request_timeout: float = 2.0,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> AsyncIterator[DhtService]:
    """A listening node with its DHT service; maintenance runs every
    ``maintenance_interval`` seconds (None: never, the caller drives it)."""
    identity = identity or Identity.generate()
    async with open_rpc_node(identity, limits=limits or Limits()) as rpc:
        bound = await rpc.listen(host, port)
        core = DhtNode(identity, Contact(identity.public_key, host, bound), now=clock())
        async with trio.open_nursery() as nursery:
            service = DhtService(
                rpc, core, nursery, clock=clock, rng=rng, request_timeout=request_timeout
            )
            if maintenance_interval is not None:
                nursery.start_soon(service.maintain, maintenance_interval)
            try:
                yield service
            finally:
                nursery.cancel_scope.cancel()
