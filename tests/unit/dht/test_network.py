"""Lookups and records across a simulated network of real DHT cores (no sockets).

The DESIGN's target: in a 200-node network a lookup finds all k closest nodes
with at most ceil(log2 N) hops at the median.
"""

from __future__ import annotations

import random

import pytest

from storenode.dht import LookupResult, parse_provider, random_id

from .netsim import LookupTrace, SimNetwork, log2_ceil, median


def random_lookups(net: SimNetwork, count: int, seed: int) -> list[tuple[bytes, LookupTrace]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        node = rng.choice(net.live())
        target = random_id(rng)
        out.append((target, net.run(node, node.find_node(target, net.now))))
    return out


def exact_ratio(net: SimNetwork, runs: list[tuple[bytes, LookupTrace]]) -> float:
    exact = sum(
        [c.node_id for c in trace.result.closest] == net.true_closest(target)
        for target, trace in runs
    )
    return exact / len(runs)


def check_concurrency(net: SimNetwork, runs: list[tuple[bytes, LookupTrace]]) -> None:
    assert all(trace.max_in_flight <= net.alpha for _, trace in runs)
    assert all(trace.starved_steps == 0 for _, trace in runs)
    assert max(trace.max_in_flight for _, trace in runs) == net.alpha


@pytest.mark.parametrize(("n", "refresh"), [(200, False), (200, True), (500, False)])
def test_lookups_find_exactly_the_k_closest_nodes_in_few_hops(n: int, refresh: bool) -> None:
    net = SimNetwork.joined(n, seed=n + refresh, refresh=refresh)
    runs = random_lookups(net, 200, seed=1)
    assert exact_ratio(net, runs) >= 0.99
    assert median([trace.result.hops for _, trace in runs]) <= log2_ceil(n)
    check_concurrency(net, runs)


def test_lookups_still_find_the_k_closest_live_nodes_when_a_fifth_died() -> None:
    net = SimNetwork.joined(200, seed=7)
    net.kill(0.2)
    net.notice()
    runs = random_lookups(net, 200, seed=2)
    assert exact_ratio(net, runs) >= 0.99
    assert median([trace.result.hops for _, trace in runs]) <= log2_ceil(200)
    check_concurrency(net, runs)


def test_right_after_a_fifth_died_lookups_return_only_live_nodes() -> None:
    # Before the survivors noticed, replies still name dead nodes; the lookup skips
    # them, and a node whose request failed once is no longer advertised.
    net = SimNetwork.joined(200, seed=8)
    net.kill(0.2)
    runs = random_lookups(net, 200, seed=3)
    for _, trace in runs:
        assert len(trace.result.closest) == net.k
        assert not {c.node_id for c in trace.result.closest} & net.dead
    assert exact_ratio(net, runs) >= 0.95
    assert sum(trace.result.failed for _, trace in runs) > 0
    check_concurrency(net, runs)


def test_find_value_returns_every_provider_of_a_chunk_up_to_the_bound() -> None:
    net = SimNetwork.joined(100, seed=9)
    nodes = list(net.nodes.values())
    chunk = b"chunk-x"
    hosts = nodes[:80]
    for host in hosts[:30]:
        assert net.store(host, host.announce_provider(chunk, net.now)) == net.k
    listener = nodes[-1]
    found = net.find_value(listener, chunk).records
    assert {parse_provider(r) for r in found} == {h.contact for h in hosts[:30]}
    for host in hosts[30:]:
        net.store(host, host.announce_provider(chunk, net.now))
    found = net.find_value(listener, chunk).records
    assert len(found) == 64
    assert {r.owner for r in found} <= {h.identity.public_key for h in hosts}


def test_records_live_while_republished_and_vanish_after_their_ttl_when_not() -> None:
    net = SimNetwork.joined(60, seed=10)
    nodes = list(net.nodes.values())
    publisher, reader = nodes[0], nodes[-1]
    rng = random.Random(4)
    record = publisher.publish(b"manifest", b"m", net.now, ttl=600)
    assert net.store(publisher, record) == net.k

    def tick(seconds: float) -> LookupResult:
        end = net.now + seconds
        while net.now < end:
            net.now += 60
            for node in nodes:
                for due in node.maintenance(net.now, rng, refresh_after=1e9).republish:
                    net.store(node, due)
        return net.find_value(reader, b"manifest")

    assert [r.value for r in tick(3600).records] == [b"m"]  # six TTLs later
    holders = [n for n in nodes if n.store.get(b"manifest", net.now)]
    assert len(holders) >= net.k
    publisher.withdraw(b"manifest")
    assert tick(600).records == []
    assert not any(n.store.get(b"manifest", net.now) for n in nodes)
