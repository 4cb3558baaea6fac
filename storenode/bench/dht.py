"""``storenode bench dht``: lookups in a 200-node network on loopback, against the
``kademlia`` package's own asyncio implementation in the same run.

Ours: N real nodes in one trio process on 127.0.0.1 (each its own listening
socket, Noise handshakes, the RPC shell and the DHT service), each joined
through a random earlier node. Then ``lookups`` lookups of random ids, one
at a time, each from a random node, twice:

* the **cold** pass: most requests go to a node this origin has never talked
  to, so they pay a Noise handshake (two X25519 agreements and an Ed25519
  verification a side);
* the **warm** pass: the same lookups again, over the connections the cold
  pass opened, as between nodes that have been running for a while (a node
  keeps connections open for ``Limits.idle_timeout``).

``lookup_ms_median`` is the warm figure, ``lookup_ms_median_cold`` the cold
one; hops and the exact-k ratio are from the cold pass. The peer's figures
come from :mod:`storenode.bench.kademlia_peer` (its UDP RPCs have no
connection set-up), run in its own process with the same N, lookups and seed.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any

import trio

from storenode.bench import kademlia_peer
from storenode.testing.dhtnet import loopback_dht


async def _ours(nodes: int, lookups: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    async with loopback_dht(nodes, seed=seed) as net:
        build_s = time.perf_counter() - start
        plan = [(net.rng.choice(net.live), net.rng.randbytes(20)) for _ in range(lookups)]
        cold_ms, warm_ms, hops = [], [], []
        exact = 0
        for origin, target in plan:
            t0 = trio.current_time()
            result = await origin.find_node(target)
            cold_ms.append((trio.current_time() - t0) * 1000)
            hops.append(result.hops)
            exact += net.is_exact(target, result)
        for origin, target in plan:
            t0 = trio.current_time()
            await origin.find_node(target)
            warm_ms.append((trio.current_time() - t0) * 1000)
        handshakes = sum(n.service.rpc.connection_count for n in net.nodes) // 2
    return {
        "nodes": nodes,
        "lookups": lookups,
        "build_s": build_s,
        "lookup_hops_median": statistics.median(hops),
        "lookup_hops_max": max(hops),
        "lookup_ms_median": statistics.median(warm_ms),
        "lookup_ms_median_cold": statistics.median(cold_ms),
        "lookup_all_k_closest_ratio": exact / lookups,
        "connections_open": handshakes,
    }


def run(nodes: int = 200, lookups: int = 100, seed: int = 1) -> dict[str, Any]:
    peer = kademlia_peer.run(nodes=nodes, lookups=lookups, seed=seed)
    ours = trio.run(_ours, nodes, lookups, seed)
    result = ours | {
        "kademlia_pkg_lookup_ms_median": peer["kademlia_pkg_lookup_ms_median"],
        "kademlia_pkg_all_k_closest_ratio": peer["kademlia_pkg_all_k_closest_ratio"],
    }
    result["targets_met"] = {
        "lookup_hops_median": result["lookup_hops_median"] <= math.ceil(math.log2(nodes)),
        "lookup_all_k_closest_ratio": result["lookup_all_k_closest_ratio"] >= 0.99,
        "lookup_ms_median": result["lookup_ms_median"] <= result["kademlia_pkg_lookup_ms_median"],
    }
    return result


def main(json_out: bool = False, quick: bool = False) -> int:
    r = run(nodes=60 if quick else 200, lookups=30 if quick else 100)
    if json_out:
        print(json.dumps(r, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"storenode bench dht — {r['nodes']} nodes on 127.0.0.1, {r['lookups']} lookups"
    )
    t.add_column("what")
    t.add_column("storenode", justify="right")
    t.add_column("kademlia package", justify="right")
    t.add_row(
        "median lookup (ms)",
        f"{r['lookup_ms_median']:.1f} warm / {r['lookup_ms_median_cold']:.1f} cold",
        f"{r['kademlia_pkg_lookup_ms_median']:.1f}",
    )
    t.add_row(
        "lookups finding all 20 closest",
        f"{r['lookup_all_k_closest_ratio']:.0%}",
        f"{r['kademlia_pkg_all_k_closest_ratio']:.0%}",
    )
    t.add_row("median hops", f"{r['lookup_hops_median']}", "")
    Console().print(t)
    return 0
