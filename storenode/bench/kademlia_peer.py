"""The peer half of ``storenode bench dht``: the ``kademlia`` package's own DHT, same machine.

Our bench (:func:`storenode.testing.dhtnet.loopback_dht` and
:func:`~storenode.testing.dhtnet.random_lookups`) builds N real nodes on 127.0.0.1 in one trio
process, joins each through a random earlier node, then runs lookups one at a time, each from
a random node for a random 160-bit id, and checks every result against the true k closest.
This module does the same with the ``kademlia`` package (2.2.x) as it ships: N
:class:`kademlia.network.Server` (``ksize=20``, ``alpha=3``) over UDP (``rpcudp``, msgpack),
all in ONE asyncio process, each on its own 127.0.0.1 socket with an OS-chosen port. It runs
in a subprocess of its own (:func:`run`), so asyncio never shares a process or an event loop
with trio.

What is measured
================

* Build: node 0 listens alone; every next node listens, then ``await
  server.bootstrap([("127.0.0.1", port_of_a_random_earlier_node)])`` (the package's join: a
  ping, then a node lookup of its own id), one node after the other. ``build_s`` is the wall
  time of all of it.
* Lookups: ``--lookups`` of them, one at a time, each from a random node for a random 160-bit
  target, exactly as ``Server.set_digest`` finds the k closest nodes::

      nearest = server.protocol.router.find_neighbors(Node(target))
      found = await NodeSpiderCrawl(server.protocol, Node(target), nearest,
                                    server.ksize, server.alpha).find()

  Each lookup is timed with :func:`time.perf_counter` from ``find_neighbors`` to the end of
  ``find()``. Every node answering it runs on the same event loop, so (as in our bench) the
  time covers the whole network's work for that lookup on one core.

Keys of the JSON line (one line on stdout)
==========================================

``kademlia_pkg_lookup_ms_median`` / ``kademlia_pkg_lookup_ms_p90``
    median / 90th percentile (``statistics.quantiles``, inclusive) of the lookup times in ms:
    the peer figure for our median lookup time.
``kademlia_pkg_all_k_closest_ratio``
    the fraction of lookups whose result is exactly the true k (= 20) closest: the peer figure
    for our exact-lookup ratio. The truth is the 20 ids nearest the target by XOR over the
    160-bit ints among all N nodes EXCEPT the querying node: the package never returns the
    querying node (its routing table never holds itself, and ``rpc_find_node`` leaves out the
    asker's address), so counting it would fail every lookup whose origin is among the 20
    closest. The comparison is of sets; ``find()`` returns its nodes sorted nearest first
    anyway, and distinct ids have distinct distances, so it is equal to comparing sorted lists.
    Our bench differs here on purpose: its lookup may return the local node, so its truth is
    the k closest among all N. The two truths are the same set unless the origin is among
    the k closest (a chance of about k/N per lookup: 10 % at N = 200).
``build_s``
    seconds to start and join all N nodes.

Reading the numbers
===================

What the package does (2.2.3, rpcudp 5.0.1), as found by reading it and checked on runs:

* Its join is a ping and ONE lookup of its own id; there is no refresh of the farther
  buckets (only buckets untouched for an hour are refreshed, hourly). That matches our
  bench's join (``DhtService.bootstrap`` without ``refresh``); with ``refresh=True`` ours
  does one more lookup per bucket and ``build_s`` would no longer be the same work.
* ``RoutingTable.find_neighbors`` (which answers every FIND_NODE and seeds every lookup)
  walks the buckets outward from the target's bucket with ``TableTraverser`` and stops at the
  first k nodes met, so it rarely gives the k closest the table holds (~6 % of random
  targets at N = 200). The traverser also stops once the buckets on the right run out, after
  at most one more bucket from the left: a target in the last bucket sees that bucket and ONE
  bucket left of it. A joiner whose id falls there in its seed's table (both may be empty)
  is told of nobody, ends up knowing only its seed and known only by it; lookups miss it.
* A lookup runs in rounds: up to alpha requests, then ``gather`` waits for all of them
  (rpcudp gives up on a request after 5 s; no retry), until every one of the k closest in its
  shortlist has been asked. A round whose shortlist did not change asks all of them at once.
* Messages are packed by u-msgpack, which is pure Python: about half of the CPU time.

Node ids, join points, origins and targets all come from ``random.Random(seed)``, so a run is
reproducible up to timing (the package's message ids come from ``os.urandom``; they do not
steer anything). Only 127.0.0.1 is used. The package logs a lot at INFO/DEBUG; logging goes
to stderr at WARNING. Every wait is bounded: each join and each lookup by
:data:`STEP_TIMEOUT_S`, the whole run by ``--deadline``; every server is stopped
(``server.stop()``) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import subprocess
import sys
import time
from typing import Any

from kademlia.crawling import NodeSpiderCrawl
from kademlia.network import Server
from kademlia.node import Node

HOST = "127.0.0.1"
KSIZE = 20
ALPHA = 3
STEP_TIMEOUT_S = 30.0  # one join or one lookup; rpcudp gives up on a request after 5 s
DEFAULT_DEADLINE_S = 110.0
LISTEN_ATTEMPTS = 5

log = logging.getLogger("storenode.bench.kademlia_peer")


class PeerError(RuntimeError):
    """The package's network could not be built or measured in time."""


async def _listen(server: Any) -> int:
    """Listen on 127.0.0.1, port chosen by the OS; returns the port actually bound.

    Binding port 0 on the very socket the server keeps leaves no window in which another
    process could take the port (probing with a throwaway socket first would).
    """
    for attempt in range(1, LISTEN_ATTEMPTS + 1):
        try:
            await server.listen(0, interface=HOST)
        except OSError as e:
            if attempt == LISTEN_ATTEMPTS:
                raise PeerError(f"cannot listen on {HOST}: {e}") from e
            await asyncio.sleep(0.05 * attempt)
            continue
        host, port = server.transport.get_extra_info("sockname")[:2]
        if host != HOST:  # never expected; refuse to run anywhere but loopback
            raise PeerError(f"server bound to {host}, not {HOST}")
        return int(port)
    raise AssertionError("unreachable")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PeerError("deadline passed")
    return left


def _true_closest(ids: list[bytes], exclude: bytes, target: int, k: int) -> set[bytes]:
    others = [i for i in ids if i != exclude]
    others.sort(key=lambda i: int.from_bytes(i, "big") ^ target)
    return set(others[:k])


async def _measure(nodes: int, lookups: int, seed: int, deadline_s: float) -> dict[str, Any]:
    rng = random.Random(seed)
    deadline = time.monotonic() + deadline_s
    ids: list[bytes] = []
    seen: set[bytes] = set()
    while len(ids) < nodes:
        node_id = rng.randbytes(20)
        if node_id not in seen:
            seen.add(node_id)
            ids.append(node_id)

    servers: list[Any] = []
    ports: list[int] = []
    try:
        start = time.perf_counter()
        for i, node_id in enumerate(ids):
            server = Server(ksize=KSIZE, alpha=ALPHA, node_id=node_id)
            servers.append(server)
            ports.append(await _listen(server))
            if i == 0:
                continue
            via = rng.randrange(i)
            try:
                found = await asyncio.wait_for(
                    server.bootstrap([(HOST, ports[via])]),
                    min(STEP_TIMEOUT_S, _remaining(deadline)),
                )
            except TimeoutError as e:
                raise PeerError(f"node {i} did not join through node {via} in time") from e
            if not found:
                raise PeerError(f"node {i} found nobody through node {via}")
        build_s = time.perf_counter() - start

        times_ms: list[float] = []
        exact = 0
        for n in range(lookups):
            origin = rng.randrange(nodes)
            target = rng.randbytes(20)
            server = servers[origin]
            key = Node(target)
            t0 = time.perf_counter()
            nearest = server.protocol.router.find_neighbors(key)
            spider = NodeSpiderCrawl(server.protocol, key, nearest, server.ksize, server.alpha)
            try:
                result = await asyncio.wait_for(
                    spider.find(), min(STEP_TIMEOUT_S, _remaining(deadline))
                )
            except TimeoutError as e:
                raise PeerError(f"lookup {n} from node {origin} did not finish in time") from e
            times_ms.append((time.perf_counter() - t0) * 1000)
            truth = _true_closest(ids, ids[origin], key.long_id, KSIZE)
            exact += {node.id for node in result} == truth
    finally:
        for server in servers:
            server.stop()
        await asyncio.sleep(0)  # let the transports close

    p90 = (
        statistics.quantiles(times_ms, n=10, method="inclusive")[8]
        if len(times_ms) > 1
        else times_ms[0]
    )
    return {
        "nodes": nodes,
        "lookups": lookups,
        "kademlia_pkg_lookup_ms_median": round(statistics.median(times_ms), 3),
        "kademlia_pkg_all_k_closest_ratio": exact / lookups,
        "kademlia_pkg_lookup_ms_p90": round(p90, 3),
        "build_s": round(build_s, 3),
    }


def run(
    nodes: int = 200, lookups: int = 100, seed: int = 1, timeout: float = 300
) -> dict[str, Any]:
    """Measure the package in a subprocess of its own (asyncio, never next to trio).

    The subprocess is killed after ``timeout`` s; it gives itself ``timeout - 10`` s (at
    least half of ``timeout``) so that it can stop its servers and say what failed first.
    """
    deadline = max(timeout - 10, timeout / 2)
    cmd = [
        sys.executable,
        "-m",
        "storenode.bench.kademlia_peer",
        f"--nodes={nodes}",
        f"--lookups={lookups}",
        f"--seed={seed}",
        f"--deadline={deadline}",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise PeerError(f"kademlia peer did not finish in {timeout} s") from e
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        ours = [line for line in lines if line.startswith(f"ERROR:{log.name}:")]
        why = " | ".join(ours or lines[-5:])
        raise PeerError(f"kademlia peer exited {out.returncode}: {why}")
    lines = out.stdout.strip().splitlines()
    if len(lines) != 1:
        raise PeerError(f"kademlia peer printed {len(lines)} lines, expected one JSON line")
    result: dict[str, Any] = json.loads(lines[0])
    return result


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storenode.bench.kademlia_peer",
        description="Measure the kademlia package's asyncio DHT on 127.0.0.1; one JSON line.",
    )
    parser.add_argument("--nodes", type=_positive, default=200)
    parser.add_argument("--lookups", type=_positive, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--deadline", type=float, default=DEFAULT_DEADLINE_S, help="seconds for the whole run"
    )
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = asyncio.run(_measure(args.nodes, args.lookups, args.seed, args.deadline))
    except PeerError as e:
        log.error("%s", e)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
