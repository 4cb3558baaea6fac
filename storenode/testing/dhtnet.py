"""A network of real DHT nodes in one process, on 127.0.0.1, for tests and benches.

Every node is a full :func:`~storenode.net.dht.open_dht_node`: its own
listening socket, Noise handshakes, the RPC shell and the DHT service. The
network keeps a global view (every node's id), so a test can check a lookup
against the true k closest live nodes, and can kill any node.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from storenode.dht import K, LookupResult, distance
from storenode.identity import Identity
from storenode.net.dht import DhtService, open_dht_node


@dataclass
class LiveNode:
    service: DhtService
    stop: trio.Event
    stopped: trio.Event


@dataclass
class LoopbackDht:
    rng: random.Random
    nodes: list[LiveNode] = field(default_factory=list)
    nursery: trio.Nursery | None = None

    @property
    def live(self) -> list[DhtService]:
        return [n.service for n in self.nodes if not n.stop.is_set()]

    async def add_node(self, *, seed_from: DhtService | None = None) -> DhtService:
        assert self.nursery is not None
        identity = Identity.from_seed(self.rng.randbytes(32))
        box: list[LiveNode] = []

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            stop, stopped = trio.Event(), trio.Event()
            try:
                async with open_dht_node(
                    identity,
                    maintenance_interval=None,
                    rng=random.Random(self.rng.random()),
                    request_timeout=1.0,
                ) as service:
                    box.append(LiveNode(service, stop, stopped))
                    task_status.started()
                    await stop.wait()
            finally:
                stopped.set()

        await self.nursery.start(run)
        node = box[0]
        self.nodes.append(node)
        if seed_from is not None:
            await node.service.bootstrap([seed_from.contact])
        return node.service

    async def kill(self, service: DhtService) -> None:
        for node in self.nodes:
            if node.service is service:
                node.stop.set()
                await node.stopped.wait()
                return

    def true_closest(self, target: bytes, k: int = K) -> list[bytes]:
        ids = [s.core.node_id for s in self.live]
        return sorted(ids, key=lambda i: distance(i, target))[:k]

    def is_exact(self, target: bytes, result: LookupResult, k: int = K) -> bool:
        return [c.node_id for c in result.closest] == self.true_closest(target, k)


@asynccontextmanager
async def loopback_dht(n: int, *, seed: int = 1) -> AsyncIterator[LoopbackDht]:
    """``n`` nodes, each joined through a random node that joined before it."""
    net = LoopbackDht(random.Random(seed))
    async with trio.open_nursery() as nursery:
        net.nursery = nursery
        first = await net.add_node()
        for _ in range(n - 1):
            await net.add_node(seed_from=net.rng.choice(net.live or [first]))
        try:
            yield net
        finally:
            for node in net.nodes:
                node.stop.set()


@dataclass
class LookupStats:
    lookups: int
    exact: int
    hops: list[int]
    ms: list[float]
    only_live_nodes: int = 0
    """Lookups whose every node was alive."""
    full: int = 0
    """Lookups that returned k nodes."""

    @property
    def exact_ratio(self) -> float:
        return self.exact / self.lookups

    @property
    def hops_median(self) -> float:
        return statistics.median(self.hops)

    @property
    def ms_median(self) -> float:
        return statistics.median(self.ms)


async def random_lookups(net: LoopbackDht, count: int) -> LookupStats:
    """``count`` lookups of random ids, each from a random live node, one at a time."""
    stats = LookupStats(count, 0, [], [])
    for _ in range(count):
        origin = net.rng.choice(net.live)
        target = net.rng.randbytes(20)
        start = trio.current_time()
        result = await origin.find_node(target)
        stats.ms.append((trio.current_time() - start) * 1000)
        stats.hops.append(result.hops)
        stats.exact += net.is_exact(target, result)
        live = {s.core.node_id for s in net.live}
        stats.only_live_nodes += all(c.node_id in live for c in result.closest)
        stats.full += len(result.closest) == K
    return stats
