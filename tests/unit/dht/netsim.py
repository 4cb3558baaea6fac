"""An in-memory network of :class:`DhtNode` cores, for tests: no sockets, no trio.

Every node is a real :class:`DhtNode`; a request is a direct call of the
target's :meth:`DhtNode.handle_request` with the requester's key as the
authenticated peer key. A dead node's requests fail. Lookups are driven the
way the DHT service drives them, except that the order in which in-flight
requests complete is drawn from a random generator (latencies vary), and
every step checks the lookup's concurrency invariants.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from storenode.dht import (
    Contact,
    DhtNode,
    DhtRequest,
    DhtResponse,
    Lookup,
    LookupResult,
    Nodes,
    Ping,
    Record,
    Stored,
    Values,
    distance,
    key_position,
)
from storenode.identity import Identity

START = 1_700_000_000.0
"""Unix time at which simulated networks start."""


class NodeDeadError(Exception):
    """The simulated request went to a dead node."""


@dataclass
class LookupTrace:
    """What one simulated lookup did, besides its result."""

    result: LookupResult
    max_in_flight: int = 0
    starved_steps: int = 0
    """Steps at which fewer than alpha requests were in flight although the
    lookup had work left (should be 0)."""


@dataclass
class SimNetwork:
    rng: random.Random
    k: int = 20
    alpha: int = 3
    now: float = START
    nodes: dict[bytes, DhtNode] = field(default_factory=dict)
    dead: set[bytes] = field(default_factory=set)
    messages: int = 0

    # -- building -----------------------------------------------------------------

    def new_node(self) -> DhtNode:
        identity = Identity.from_seed(self.rng.randbytes(32))
        contact = Contact(identity.public_key, "127.0.0.1", 1 + len(self.nodes))
        node = DhtNode(identity, contact, now=self.now, k=self.k, alpha=self.alpha)
        self.nodes[node.node_id] = node
        return node

    @classmethod
    def joined(
        cls, n: int, seed: int, *, k: int = 20, alpha: int = 3, refresh: bool = False
    ) -> SimNetwork:
        """``n`` nodes that joined one after the other, each through a random
        earlier node (a lookup of its own id, then with ``refresh`` a lookup in
        every bucket)."""
        net = cls(random.Random(seed), k=k, alpha=alpha)
        first = net.new_node()
        members = [first]
        for _ in range(n - 1):
            node = net.new_node()
            seed_node = net.rng.choice(members)
            net.run(node, node.join([seed_node.contact], net.now))
            if refresh:
                for target in node.refresh_all(net.rng):
                    net.run(node, node.find_node(target, net.now))
            members.append(node)
        return net

    def kill(self, fraction: float) -> None:
        ids = sorted(self.nodes)
        self.dead.update(self.rng.sample(ids, round(len(ids) * fraction)))

    def notice(self) -> None:
        """Every live node looks up its own id (as the refresh of its own bucket
        does), so it finds out which of its neighbours died."""
        for node in self.live():
            self.run(node, node.find_node(node.node_id, self.now))

    def live(self) -> list[DhtNode]:
        return [n for i, n in self.nodes.items() if i not in self.dead]

    def true_closest(self, target: bytes, k: int | None = None) -> list[bytes]:
        """The ids of the ``k`` live nodes closest to ``target`` (brute force)."""
        live = [i for i in self.nodes if i not in self.dead]
        return sorted(live, key=lambda i: distance(i, target))[: k or self.k]

    # -- traffic --------------------------------------------------------------------

    def call(self, src: DhtNode, dst: Contact, request: DhtRequest) -> DhtResponse:
        self.messages += 1
        self.now += 0.001
        if dst.node_id in self.dead:
            raise NodeDeadError
        return self.nodes[dst.node_id].handle_request(src.identity.public_key, request, self.now)

    def run(self, node: DhtNode, lookup: Lookup) -> LookupTrace:
        """Drive ``lookup`` of ``node`` to the end, completing in-flight requests
        in random order; answer due pings too."""
        trace_max = 0
        starved = 0
        in_flight: list[Contact] = []
        while not lookup.done:
            in_flight.extend(lookup.next_requests())
            assert len(in_flight) == lookup.in_flight <= lookup.alpha
            trace_max = max(trace_max, len(in_flight))
            if lookup.has_work and lookup.in_flight < lookup.alpha:
                starved += 1
            if not in_flight:
                break
            contact = in_flight.pop(self.rng.randrange(len(in_flight)))
            try:
                reply = self.call(node, contact, lookup.request(node.contact))
            except NodeDeadError:
                node.on_lookup_failure(lookup, contact, self.now)
            else:
                assert isinstance(reply, Nodes | Values)
                node.on_lookup_reply(lookup, contact, reply, self.now)
            self.answer_pings(node)
        return LookupTrace(lookup.result(), trace_max, starved)

    def store(self, node: DhtNode, record: Record) -> int:
        """Store ``record`` (already held by ``node``) on the k closest nodes of its
        key, as the service does; returns how many accepted it."""
        result = self.run(node, node.find_node(key_position(record.key), self.now)).result
        accepted = 0
        for contact in result.closest:
            if contact == node.contact:
                accepted += 1
                continue
            try:
                reply = self.call(node, contact, node.store_request(record))
            except NodeDeadError:
                node.record_failure(contact)
                continue
            node.observe(contact, self.now)
            assert isinstance(reply, Stored)
            accepted += reply.accepted
        return accepted

    def find_value(self, node: DhtNode, key: bytes) -> LookupResult:
        return self.run(node, node.find_value(key, self.now)).result

    def answer_pings(self, node: DhtNode) -> None:
        for head in node.pings_due():
            try:
                self.call(node, head, Ping(node.contact))
            except NodeDeadError:
                node.record_failure(head)
            else:
                node.observe(head, self.now)


def median(values: list[int]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def log2_ceil(n: int) -> int:
    return math.ceil(math.log2(n))
