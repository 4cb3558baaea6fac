"""The host directory in the DHT: spread over buckets, so it holds more hosts
than one key's 64 owners (real DHT nodes on 127.0.0.1)."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import trio

from storenode.dht.records import sign_record
from storenode.dht.store import MAX_PER_KEY
from storenode.identity import Identity
from storenode.net.dht import DhtService, open_dht_node
from storenode.publish.contracting import read_host_directory
from storenode.publish.records import (
    HOST_AD_TTL,
    HOST_BUCKETS,
    HostAd,
    encode_host_ad,
    host_bucket,
    hosts_key,
)

HOSTS = MAX_PER_KEY + 40


def ad_of(identity: Identity, port: int) -> HostAd:
    return HostAd(identity.public_key, "127.0.0.1", port, 0, "test", "1", 0, 10**6, 1 << 40)


async def network(stack: AsyncExitStack, size: int) -> list[DhtService]:
    nodes = [await stack.enter_async_context(open_dht_node()) for _ in range(size)]
    for node in nodes[1:]:
        await node.bootstrap([nodes[0].contact])
    return nodes


async def test_more_hosts_than_one_key_holds_are_all_found() -> None:
    hosts = [Identity.generate() for _ in range(HOSTS)]
    now = int(time.time())
    with trio.fail_after(60):
        async with AsyncExitStack() as stack:
            nodes = await network(stack, 4)
            for i, host in enumerate(hosts):
                key = hosts_key(host_bucket(host.public_key))
                record = sign_record(
                    host, key, encode_host_ad(ad_of(host, 1000 + i)), created=now, ttl=HOST_AD_TTL
                )
                assert await nodes[i % len(nodes)].store(record) > 0
            ads = await read_host_directory(nodes[-1])
    assert sorted(ad.key for ad in ads) == sorted(h.public_key for h in hosts)
    assert {ad.port for ad in ads} == set(range(1000, 1000 + HOSTS))
    # The buckets really are several keys, none of them over its limit.
    counts = [sum(host_bucket(h.public_key) == b for h in hosts) for b in range(HOST_BUCKETS)]
    assert max(counts) <= MAX_PER_KEY and sum(c > 0 for c in counts) > 1


async def test_an_ad_outside_its_hosts_bucket_is_skipped() -> None:
    honest, stray = Identity.generate(), Identity.generate()
    wrong = (host_bucket(stray.public_key) + 1) % HOST_BUCKETS
    now = int(time.time())
    with trio.fail_after(30):
        async with AsyncExitStack() as stack:
            nodes = await network(stack, 2)
            for host, bucket in ((honest, host_bucket(honest.public_key)), (stray, wrong)):
                value = encode_host_ad(ad_of(host, 2000))
                record = sign_record(host, hosts_key(bucket), value, created=now, ttl=HOST_AD_TTL)
                assert await nodes[0].store(record) > 0
            ads = await read_host_directory(nodes[1])
    assert [ad.key for ad in ads] == [honest.public_key]
