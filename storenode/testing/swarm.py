"""A swarm of hosts in one process, on 127.0.0.1, for fetch tests and benches.

Each host is a real :func:`~storenode.net.dht.open_dht_node` (its own
listening socket, Noise handshakes, the DHT) with a
:class:`~storenode.host.ChunkService` over a memory store routed on the same
RPC node, and ``manifest.get`` answered from the manifests the host keeps.
:meth:`Swarm.publish` plays the publisher without contracts: it codes a
work, puts shard i of stripe s on host ``(s + i) % N`` straight into that
host's chunk service, hands the signed manifest to those hosts, stores it in
the DHT (pointer and pieces; optional) and has every host that got shards
announce itself as a provider. A test can then kill hosts (their sockets
close) or give a host a chunk service that lies.

A reader joins with :meth:`Swarm.reader`: an RPC node and a DHT node
bootstrapped from the swarm, ready for a :class:`~storenode.client.fetch.Fetcher`.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
import trio

from storenode.host import (
    AllowAll,
    ChunkPut,
    ChunkService,
    PacketReply,
    PacketRequest,
    PacketsReply,
    PacketsRequest,
    Placement,
    StripePacket,
)
from storenode.host.messages import ManifestData, ManifestGet
from storenode.identity import Identity, keccak256
from storenode.net.dht import DhtService, open_dht_node
from storenode.net.errors import RequestRefusedError
from storenode.net.peer import PeerConnection
from storenode.publish.manifest import Manifest, encode_manifest, encode_stripes, sign_manifest
from storenode.publish.records import (
    MANIFEST_TTL,
    encode_pointer,
    manifest_key,
    manifest_piece_key,
    providers_key,
    split_manifest,
)
from storenode.publish.stripes import stripe_size_for
from storenode.store import MemoryChunkStore
from storenode.wire.messages import ErrorCode

HOST_CAPACITY = 1 << 30

ServiceFactory = Callable[[MemoryChunkStore, random.Random], ChunkService]


def honest(store: MemoryChunkStore, rng: random.Random) -> ChunkService:
    return ChunkService(store, AllowAll(), rng=rng)


class LyingChunkService(ChunkService):
    """Serves packets with one byte flipped (its ``chunk.get`` stays honest: the
    store re-verifies what it reads)."""

    def packet(self, client_key: bytes, req: PacketRequest) -> PacketReply:
        return _flipped(super().packet(client_key, req))

    def packet_cached(self, client_key: bytes, req: PacketRequest) -> PacketReply | None:
        reply = super().packet_cached(client_key, req)
        return None if reply is None else _flipped(reply)

    def packets(self, client_key: bytes, req: PacketsRequest) -> PacketsReply:
        return _flipped_all(super().packets(client_key, req))

    def packets_cached(self, client_key: bytes, req: PacketsRequest) -> PacketsReply | None:
        reply = super().packets_cached(client_key, req)
        return None if reply is None else _flipped_all(reply)


def _flip(payload: memoryview) -> memoryview:
    out = bytearray(payload)
    out[len(out) // 2] ^= 0x5A
    return memoryview(out)


def _flipped(reply: PacketReply) -> PacketReply:
    return PacketReply(reply.coefficients, _flip(reply.payload))


def _flipped_all(reply: PacketsReply) -> PacketsReply:
    return PacketsReply(
        [StripePacket(p.stripe, p.coefficients, _flip(p.payload)) for p in reply.packets]
    )


def liar(store: MemoryChunkStore, rng: random.Random) -> ChunkService:
    return LyingChunkService(store, AllowAll(), rng=rng)


@dataclass
class SwarmHost:
    dht: DhtService
    chunks: ChunkService
    stop: trio.Event
    stopped: trio.Event
    manifests: dict[bytes, bytes] = field(default_factory=dict)
    """CID -> the manifest's bytes, answered to ``manifest.get``."""

    def handle_manifest_get(self, conn: PeerConnection, body: msgspec.Struct) -> ManifestData:
        assert isinstance(body, ManifestGet)
        raw = self.manifests.get(body.cid)
        if raw is None:
            raise RequestRefusedError(ErrorCode.NOT_FOUND, "no manifest of that work here")
        return ManifestData(raw)

    @property
    def key(self) -> bytes:
        return self.dht.contact.key

    @property
    def alive(self) -> bool:
        return not self.stop.is_set()


@dataclass
class Swarm:
    rng: random.Random
    nursery: trio.Nursery
    hosts: list[SwarmHost] = field(default_factory=list)
    publisher: Identity = field(default_factory=Identity.generate)

    async def add_host(self, service: ServiceFactory = honest) -> SwarmHost:
        identity = Identity.from_seed(self.rng.randbytes(32))
        rng = random.Random(self.rng.random())
        box: list[SwarmHost] = []

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            stop, stopped = trio.Event(), trio.Event()
            try:
                async with open_dht_node(
                    identity, maintenance_interval=None, rng=rng, request_timeout=1.0
                ) as dht:
                    chunks = service(MemoryChunkStore(capacity=HOST_CAPACITY), rng)
                    chunks.route(dht.rpc)
                    host = SwarmHost(dht, chunks, stop, stopped)
                    dht.rpc.route_sync("manifest.get", host.handle_manifest_get)
                    box.append(host)
                    task_status.started()
                    await stop.wait()
            finally:
                stopped.set()

        await self.nursery.start(run)
        host = box[0]
        if self.hosts:
            await host.dht.bootstrap([h.dht.contact for h in self.hosts if h.alive][:3])
        self.hosts.append(host)
        return host

    async def kill(self, host: SwarmHost) -> None:
        """Stop ``host``: its listener and connections close."""
        host.stop.set()
        await host.stopped.wait()

    @property
    def seeds(self) -> list[SwarmHost]:
        return [h for h in self.hosts if h.alive]

    async def publish(
        self,
        data: bytes,
        *,
        k: int,
        n: int,
        name: str = "track.wav",
        media_type: str = "audio/wav",
        stripe_size: int | None = None,
        manifest_in_dht: bool = True,
    ) -> Manifest:
        """Code ``data``, place its shards, store its manifest and providers."""
        size = stripe_size if stripe_size is not None else stripe_size_for(k, length=len(data))
        cid = keccak256(data)
        entries = []
        holders: set[int] = set()
        count = len(self.hosts)
        for s, (entry, shards) in enumerate(encode_stripes(data, k=k, n=n, stripe_size=size)):
            entries.append(entry)
            for i, shard in enumerate(shards):
                h = (s + i) % count
                put = ChunkPut(entry.chunk_ids[i], Placement(cid, s, i, k, n), bytes(shard))
                self.hosts[h].chunks.put(self.publisher.public_key, put)
                holders.add(h)
        manifest = sign_manifest(
            self.publisher,
            cid=cid,
            name=name,
            media_type=media_type,
            length=len(data),
            k=k,
            n=n,
            stripe_size=size,
            stripes=entries,
            created=1_700_000_000,
        )
        raw = encode_manifest(manifest)
        pointer, pieces = split_manifest(raw)
        writer = self.seeds[0].dht
        async with trio.open_nursery() as nursery:
            if manifest_in_dht:
                nursery.start_soon(
                    _publish, writer, manifest_key(cid), encode_pointer(pointer), MANIFEST_TTL
                )
                for i, piece in enumerate(pieces):
                    key = manifest_piece_key(pointer.manifest_hash, i)
                    nursery.start_soon(_publish, writer, key, piece, MANIFEST_TTL)
            for h in holders:
                self.hosts[h].manifests[cid] = raw
                if self.hosts[h].alive:
                    nursery.start_soon(self.hosts[h].dht.announce_provider, providers_key(cid))
        return manifest

    @asynccontextmanager
    async def reader(self, identity: Identity | None = None) -> AsyncIterator[DhtService]:
        """A DHT node (with its RPC node, ``.rpc``) joined to the swarm."""
        async with open_dht_node(identity, maintenance_interval=None, request_timeout=1.0) as dht:
            await dht.bootstrap([h.dht.contact for h in self.seeds][:3])
            yield dht


async def _publish(dht: DhtService, key: bytes, value: bytes, ttl: int) -> None:
    await dht.publish(key, value, ttl=ttl)


@asynccontextmanager
async def open_swarm(
    hosts: int, *, seed: int = 1, services: dict[int, ServiceFactory] | None = None
) -> AsyncIterator[Swarm]:
    """``hosts`` hosts joined into one DHT; ``services`` gives some a chunk service
    of their own (by index, e.g. ``{2: liar}``)."""
    services = services or {}
    async with trio.open_nursery() as nursery:
        swarm = Swarm(random.Random(seed), nursery)
        for i in range(hosts):
            await swarm.add_host(services.get(i, honest))
        try:
            yield swarm
        finally:
            for host in swarm.hosts:
                host.stop.set()


__all__ = [
    "LyingChunkService",
    "Swarm",
    "SwarmHost",
    "honest",
    "liar",
    "open_swarm",
]
