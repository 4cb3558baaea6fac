"""Real DHT nodes on 127.0.0.1 (one process): lookups, churn, provider records."""

from __future__ import annotations

import math
import random

import pytest
import trio

from storenode.dht import parse_provider
from storenode.testing.dhtnet import loopback_dht, random_lookups

pytestmark = pytest.mark.slow


async def test_200_nodes_find_the_true_20_closest_even_after_a_fifth_die() -> None:
    n = 200
    async with loopback_dht(n, seed=11) as net:
        before = await random_lookups(net, 100)
        assert before.exact_ratio >= 0.99
        assert before.hops_median <= math.ceil(math.log2(n))

        dead = net.rng.sample(net.live[1:], n // 5)
        for service in dead:
            await net.kill(service)
        assert len(net.live) == n - n // 5

        # Right after the deaths every table still lists dead nodes; lookups route
        # around them. Every one completes with live nodes only, nearly always the
        # true 20 closest live ones. (When the dead hold most of a target's 20
        # closest slots in every table, replies of 20 cannot name the live nodes
        # behind them: see docs/specs/dht.md, "Churn".)
        after = await random_lookups(net, 100)
        assert after.only_live_nodes == after.lookups
        assert after.exact_ratio >= 0.95
        assert after.hops_median <= math.ceil(math.log2(n))

        # A dead contact is evicted once it has failed several requests in a row.
        dead_ids = {s.core.node_id for s in dead}
        survivor = max(
            net.live, key=lambda s: sum(c.node_id in dead_ids for c in s.core.table.contacts())
        )
        ghosts = [c for c in survivor.core.table.contacts() if c.node_id in dead_ids]
        assert ghosts, "no survivor knew a dead node; the test would prove nothing"
        for ghost in ghosts:
            for _ in range(5):
                if ghost.node_id not in survivor.core.table:
                    break
                assert not await survivor.ping(ghost)
            assert ghost.node_id not in survivor.core.table


async def test_provider_records_live_while_republished_and_vanish_after_their_ttl() -> None:
    async with loopback_dht(30, seed=5) as net:
        rng = random.Random(9)
        chunk = rng.randbytes(32)
        keeper, quitter, reader = net.live[3], net.live[17], net.live[25]
        # Records carry whole unix seconds, so a record created at t expires
        # between t + ttl - 1 and t + ttl.
        ttl = 4
        assert await keeper.announce_provider(chunk, ttl=ttl) > 0
        assert await quitter.announce_provider(chunk, ttl=ttl) > 0

        found = await reader.find_value(chunk)
        assert {parse_provider(r) for r in found} == {keeper.contact, quitter.contact}

        quitter.withdraw(chunk)  # stops republishing; its record runs out
        await trio.sleep(ttl / 2 + 0.2)
        await keeper.maintain_once()  # republishes what is due (every ttl/2)
        await trio.sleep(ttl / 2 + 0.3)  # past the first records' ttl, not the new one's

        found = await reader.find_value(chunk)
        assert {parse_provider(r) for r in found} == {keeper.contact}


async def test_a_value_published_by_one_node_is_found_by_every_other() -> None:
    async with loopback_dht(40, seed=6) as net:
        publisher = net.live[7]
        key = b"manifest:" + bytes(range(23))
        assert await publisher.publish(key, b"the manifest bytes", ttl=600) >= 10
        for reader in net.rng.sample(net.live, 10):
            records = await reader.find_value(key)
            assert [(r.owner, r.value) for r in records] == [
                (publisher.contact.key, b"the manifest bytes")
            ]
