"""The host's records in the DHT: its ad, its provider records and the manifests it keeps.

A part of :class:`~storenode.host.daemon.HostNode` (a mixin over the node's
state; :class:`_Node` is what it uses). Once the node has joined the DHT
(bootstrapped from the configured peers, then maintained), the host's ad
(:class:`HostAd`) goes under its bucket of the host directory
(``hosts_key(host_bucket(key))``) at start, every :data:`AD_INTERVAL` seconds
and soon after its free space changes (:meth:`Announcing.ad_changed`); a
provider record under ``providers_key(cid)`` for each work it holds chunks of;
the manifests it keeps, in pieces, published and withdrawn.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

import trio

from storenode.config import Config
from storenode.dht import Contact
from storenode.host.book import HostBook
from storenode.host.prover import short
from storenode.identity import Identity
from storenode.ledger import Chain
from storenode.net.dht import DhtService
from storenode.publish.records import (
    HOST_AD_TTL,
    MANIFEST_TTL,
    HostAd,
    encode_host_ad,
    encode_pointer,
    host_bucket,
    hosts_key,
    manifest_key,
    manifest_piece_key,
    providers_key,
    split_manifest,
)

log = logging.getLogger("storenode.host.daemon")
"""The daemon's logger: its lines carry one name whichever part of it speaks."""

AD_INTERVAL: Final = 300.0
"""Seconds between two publications of the host's ad (its TTL is an hour)."""
AD_SETTLE: Final = 1.0
"""Seconds the ad waits after a change of free space, so a burst of proposals
makes one publication."""


class _Node(Protocol):
    """What announcing uses of the node (:class:`~storenode.host.daemon.HostNode`)."""

    config: Config
    identity: Identity
    chain: Chain
    dht: DhtService
    book: HostBook | None
    http_port: int | None
    maintenance_interval: float
    ad_interval: float
    _ad_dirty: trio.Event
    _announced: set[bytes]
    _held: set[bytes]

    @property
    def port(self) -> int: ...

    @property
    def free(self) -> int: ...

    def ad(self) -> HostAd: ...

    async def _advertise(self) -> None: ...

    async def _announce(self, cid: bytes) -> None: ...

    async def _publish_manifest(self, cid: bytes, raw: bytes) -> None: ...


class Announcing:
    """The node's ad and DHT records (a part of :class:`~storenode.host.daemon.HostNode`)."""

    def ad_changed(self: _Node) -> None:
        """Publish the host's ad again soon (its free space or addresses changed)."""
        self._ad_dirty.set()

    def ad(self: _Node) -> HostAd:
        config = self.config
        return HostAd(
            key=self.identity.public_key,
            host=config.public_host or config.listen_host,
            port=self.port,
            http_port=self.http_port or 0,
            chain_id=self.chain.genesis.chain_id,
            price=str(config.price),
            collateral_bps=config.collateral_bps,
            max_windows=config.max_windows,
            free=self.free,
        )

    # -- the network -----------------------------------------------------------------------

    async def _network(self: _Node) -> None:
        """Join the DHT, then keep it and the host's records alive."""
        seeds = [Contact(p.key, p.host, p.port) for p in self.config.peers]
        if seeds:
            await self.dht.bootstrap(seeds)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.dht.maintain, self.maintenance_interval)
            if self.book is not None:
                for cid in sorted(self._held - self._announced):
                    self._announced.add(cid)
                    nursery.start_soon(self._announce, cid)
                for cid in self.book.manifests():
                    raw = self.book.manifest(cid)
                    if raw is not None:
                        nursery.start_soon(self._publish_manifest, cid, raw)
                nursery.start_soon(self._advertise)

    async def _advertise(self: _Node) -> None:
        while True:
            accepted = await self.dht.publish(
                hosts_key(host_bucket(self.identity.public_key)),
                encode_host_ad(self.ad()),
                ttl=HOST_AD_TTL,
            )
            log.debug("published the host ad (%s free) on %d node(s)", self.free, accepted)
            with trio.move_on_after(self.ad_interval):
                await self._ad_dirty.wait()
                await trio.sleep(AD_SETTLE)
            self._ad_dirty = trio.Event()

    async def _announce(self: _Node, cid: bytes) -> None:
        await self.dht.announce_provider(providers_key(cid))
        log.debug("announced this host as a provider of work %s", short(cid))

    async def _publish_manifest(self: _Node, cid: bytes, raw: bytes) -> None:
        pointer, pieces = split_manifest(raw)
        for i, piece in enumerate(pieces):
            await self.dht.publish(
                manifest_piece_key(pointer.manifest_hash, i), piece, ttl=MANIFEST_TTL
            )
        await self.dht.publish(manifest_key(cid), encode_pointer(pointer), ttl=MANIFEST_TTL)
        log.debug("published the manifest of work %s (%d piece(s))", short(cid), len(pieces))

    def _withdraw_manifest(self: _Node, cid: bytes, raw: bytes) -> None:
        pointer, pieces = split_manifest(raw)
        for i in range(len(pieces)):
            self.dht.withdraw(manifest_piece_key(pointer.manifest_hash, i))
        self.dht.withdraw(manifest_key(cid))
