"""The routing table: k-buckets of contacts, with no clock and no network.

Built on the ``kademlia`` package's :class:`kademlia.routing.KBucket` and
:class:`kademlia.routing.RoutingTable` (bucket ranges, splitting, the
least-recently-seen order, the replacement cache), adapted:

* **No clock.** Every method that needs time takes ``now`` (seconds; see
  :mod:`storenode.dht.node` for which clock). The package's buckets read
  ``time.monotonic()``.
* **No asyncio.** When a contact arrives for a full bucket that may not split,
  the package pings the bucket's head with ``asyncio.ensure_future``. Here
  :meth:`RoutingTable.add_contact` *returns* :class:`PingRequired`; the service
  pings ``head`` and reports the outcome: :meth:`~RoutingTable.record_success`
  (the head moves to the tail, the newcomer stays in the replacement cache) or
  :meth:`~RoutingTable.record_failure`. Only one ping per head is asked for at a
  time (again after ``ping_timeout`` if no outcome was reported), and none for a
  head heard from within ``fresh_for`` seconds.
* **Eviction after several failures.** The package drops a contact on its first
  failure. Here a contact is evicted only after ``max_failures`` (3)
  *consecutive* failed requests; any success resets its count. On eviction
  the most recently seen contact of the bucket's replacement cache is promoted.
* **Inclusive ranges.** A bucket's range is ``lower .. upper`` inclusive, the
  first one ``0 .. 2**160 - 1``; the package tests ``id < upper`` in
  ``get_bucket_for`` and so puts an id equal to a bucket's upper bound in the
  next bucket (and its first range ends at ``2**160``).
* **Exact closest.** :meth:`~RoutingTable.closest` returns exactly the ``k``
  contacts of the table closest to a target (a sort of all contacts: a few
  hundred, microseconds). The package's ``TableTraverser`` walks buckets
  outward from the target's and stops at ``k`` contacts, which is not the
  ``k`` closest when the neighbouring buckets are uneven.
* **Suspects.** A contact whose last request failed (but that is not evicted
  yet) is a *suspect*: ``closest(..., skip_suspects=True)`` leaves it out. The
  node uses that for the contacts it gives in replies and for the seeds of its
  lookups, so a dead node stops being advertised after one failure, not three.
  Any success clears the suspicion.
* **Split rule.** A full bucket is split when its range holds our own id
  (Kademlia §2.4) or when the newcomer would be among the ``k`` contacts
  closest to us (§4.2: keep every contact of the smallest subtree that holds
  ``k`` nodes, so a node knows its whole neighbourhood, which lookups rely on
  to find the exact ``k`` closest). The package's extra rule (split when
  ``depth() % 5 != 0``, with depth the shared prefix of the ids that happen to
  be in the bucket) is dropped: it makes the table's shape depend on arrival
  order.
* **Refresh.** A bucket is touched when a lookup targets its range
  (:meth:`~RoutingTable.touch`); :meth:`~RoutingTable.stale_buckets` names a
  random id in each bucket untouched for ``older_than`` seconds (an hour), for
  the service to look up.

Only contacts that have answered us or sent us an authenticated request
belong in the table: the service reports them with :meth:`add_contact`
(:meth:`DhtNode.observe`). Contacts merely named in a reply do not.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

from kademlia.node import Node
from kademlia.routing import KBucket
from kademlia.routing import RoutingTable as _KademliaRoutingTable

from storenode.dht.contact import Contact
from storenode.dht.ids import ID_SPACE, K, id_to_int, random_id_between

MAX_FAILURES = 3
"""Consecutive failed requests after which a contact is evicted."""

REFRESH_INTERVAL = 3600.0
"""A bucket no lookup has targeted for this long (seconds) is refreshed."""

PING_TIMEOUT = 60.0
"""After this long without a reported outcome, a head may be pinged again."""

FRESH_FOR = 60.0
"""A full bucket's head heard from within this long is not pinged for a newcomer:
it is known to be alive (Kademlia paper §4.1), and a steady stream of newcomers
would otherwise ping every head in turn."""

REPLACEMENT_FACTOR = 5
"""The replacement cache holds up to ``k * REPLACEMENT_FACTOR`` contacts."""


@dataclass(frozen=True, slots=True)
class PingRequired:
    """The bucket for ``newcomer`` is full and may not split: ping ``head`` (the
    least recently seen contact of that bucket) and report the outcome with
    :meth:`RoutingTable.record_success` or :meth:`RoutingTable.record_failure`.
    ``newcomer`` waits in the replacement cache meanwhile."""

    head: Contact
    newcomer: Contact


class _Entry(Node):  # type: ignore[misc]  # kademlia is untyped
    """A contact in a bucket or a replacement cache, with its liveness."""

    id: bytes
    long_id: int

    def __init__(self, contact: Contact, now: float) -> None:
        super().__init__(contact.node_id, contact.host, contact.port)
        self.contact = contact
        self.failures = 0
        self.last_seen = now
        self.ping_sent: float | None = None


class Bucket(KBucket):  # type: ignore[misc]  # kademlia is untyped
    """A k-bucket covering the ids ``range[0] .. range[1]`` (inclusive).

    ``nodes`` is ordered least recently seen first (the head) and holds at most
    ``ksize`` contacts; ``replacement_nodes`` holds contacts seen while the
    bucket was full, most recently seen last.
    """

    range: tuple[int, int]
    nodes: OrderedDict[bytes, _Entry]
    replacement_nodes: OrderedDict[bytes, _Entry]
    ksize: int
    max_replacement_nodes: int
    last_updated: float

    def __init__(
        self,
        lower: int,
        upper: int,
        ksize: int,
        now: float,
        replacement_factor: int = REPLACEMENT_FACTOR,
    ) -> None:
        # KBucket.__init__ reads time.monotonic(): set the same attributes here.
        self.range = (lower, upper)
        self.nodes = OrderedDict()
        self.replacement_nodes = OrderedDict()
        self.ksize = ksize
        self.max_replacement_nodes = ksize * replacement_factor
        self.last_updated = now

    def touch_last_updated(self, now: float) -> None:  # the package's takes no time
        self.last_updated = now

    def split(self) -> tuple[Bucket, Bucket]:
        """Two halves of this bucket; contacts, then replacements, go to theirs (a
        replacement fills a half that has room). Both keep ``last_updated``."""
        lower, upper = self.range
        midpoint = (lower + upper) // 2
        factor = self.max_replacement_nodes // self.ksize
        one = Bucket(lower, midpoint, self.ksize, self.last_updated, factor)
        two = Bucket(midpoint + 1, upper, self.ksize, self.last_updated, factor)
        for entry in chain(self.nodes.values(), self.replacement_nodes.values()):
            (one if entry.long_id <= midpoint else two).add_node(entry)
        return one, two

    def add_node(self, node: _Entry) -> bool:
        """Add or refresh ``node`` (as the package does); False if the bucket is
        full and ``node`` went to the replacement cache instead."""
        if node.id in self.nodes or len(self.nodes) < self.ksize:
            # The package leaves a promoted contact in the replacement cache too.
            self.replacement_nodes.pop(node.id, None)
        return bool(super().add_node(node))

    def entries(self) -> list[_Entry]:
        return list(self.nodes.values())

    def contacts(self) -> list[Contact]:
        """The bucket's contacts, least recently seen first."""
        return [e.contact for e in self.nodes.values()]

    def replacements(self) -> list[Contact]:
        """The replacement cache, most recently seen last."""
        return [e.contact for e in self.replacement_nodes.values()]


class RoutingTable(_KademliaRoutingTable):  # type: ignore[misc]  # kademlia is untyped
    """The k-buckets of the node whose id is ``own_id``."""

    node: Node
    ksize: int
    buckets: list[Bucket]

    def __init__(
        self,
        own_id: bytes,
        *,
        now: float,
        k: int = K,
        max_failures: int = MAX_FAILURES,
        ping_timeout: float = PING_TIMEOUT,
        fresh_for: float = FRESH_FOR,
    ) -> None:
        # The package's __init__ takes the asyncio protocol (to ping through) and
        # builds a bucket that reads the clock: set up its attributes here instead.
        if k < 1 or max_failures < 1:
            raise ValueError("k and max_failures are at least 1")
        id_to_int(own_id)  # checks the length
        self.node = Node(own_id)
        self.protocol = None
        self.ksize = k
        self.max_failures = max_failures
        self.ping_timeout = ping_timeout
        self.fresh_for = fresh_for
        self.flush(now)

    # -- the package's methods, without clock or asyncio -------------------------

    def flush(self, now: float) -> None:
        """Forget every contact: one bucket over the whole id space."""
        self.buckets = [Bucket(0, ID_SPACE - 1, self.ksize, now)]

    def get_bucket_for(self, node: Node) -> int:
        """The index of the bucket whose (inclusive) range holds ``node``'s id."""
        long_id = node.long_id
        for index, bucket in enumerate(self.buckets):
            if long_id <= bucket.range[1]:
                return index
        raise AssertionError("the buckets cover the id space")  # pragma: no cover

    def lonely_buckets(self, now: float, older_than: float = REFRESH_INTERVAL) -> list[Bucket]:
        """Buckets that no lookup has targeted for ``older_than`` seconds."""
        return [b for b in self.buckets if now - b.last_updated >= older_than]

    def find_neighbors(
        self, node: Node, k: int | None = None, exclude: Node | None = None
    ) -> list[Node]:
        """The package's entry point, made exact (see :meth:`closest`)."""
        excluded = () if exclude is None else (exclude.id,)
        excluded = (*excluded, node.id)
        return self._closest_entries(node.long_id, k or self.ksize, excluded)

    def add_contact(self, contact: Contact, now: float) -> PingRequired | None:
        """``contact`` answered us or sent us a request: insert it, or move it to
        the tail of its bucket with its failure count reset. Our own id is
        ignored. Returns :class:`PingRequired` when the contact's bucket is full
        and may not split (the contact then waits in the replacement cache)."""
        if contact.node_id == self.node.id:
            return None
        entry = _Entry(contact, now)
        while True:
            index = self.get_bucket_for(entry)
            bucket = self.buckets[index]
            if bucket.add_node(entry):
                return None
            if self._may_split(bucket, entry):
                self.split_bucket(index)
                continue
            head: _Entry = bucket.head()
            if now - head.last_seen < self.fresh_for:
                return None  # heard from lately: alive, no need to ask (paper §4.1)
            if head.ping_sent is not None and now - head.ping_sent < self.ping_timeout:
                return None
            head.ping_sent = now
            return PingRequired(head.contact, contact)

    # -- our API -------------------------------------------------------------------

    @property
    def own_id(self) -> bytes:
        own: bytes = self.node.id
        return own

    def record_success(self, contact: Contact, now: float) -> PingRequired | None:
        """A request to ``contact`` succeeded (a ping of a head included): the
        same as :meth:`add_contact`."""
        return self.add_contact(contact, now)

    def record_failure(self, node_id: bytes) -> Contact | None:
        """A request to ``node_id`` failed (timeout, refused, broken reply).

        A contact in a bucket counts the failure and is evicted at
        ``max_failures`` consecutive ones, the most recently seen replacement
        taking its place; the evicted contact is returned. A contact that is
        only in a replacement cache is dropped from it. Unknown ids are ignored.
        """
        bucket = self.buckets[self.get_bucket_for(Node(node_id))]
        entry = bucket.nodes.get(node_id)
        if entry is None:
            bucket.replacement_nodes.pop(node_id, None)
            return None
        entry.failures += 1
        entry.ping_sent = None
        if entry.failures < self.max_failures:
            return None
        bucket.remove_node(entry)  # promotes the most recently seen replacement
        return entry.contact

    def closest(
        self,
        target: bytes,
        k: int | None = None,
        *,
        exclude: tuple[bytes, ...] = (),
        skip_suspects: bool = False,
    ) -> list[Contact]:
        """The ``k`` (default: the table's k) contacts closest to ``target`` by XOR,
        nearest first; ids in ``exclude`` are skipped, and with ``skip_suspects``
        so are contacts whose last request failed (see :meth:`record_failure`)."""
        entries = self._closest_entries(id_to_int(target), k or self.ksize, exclude, skip_suspects)
        return [e.contact for e in entries]

    def touch(self, target: bytes, now: float) -> None:
        """A lookup for ``target`` ran: its bucket needs no refresh for a while."""
        self.buckets[self.get_bucket_for(Node(target))].touch_last_updated(now)

    def stale_buckets(
        self, now: float, rng: random.Random, older_than: float = REFRESH_INTERVAL
    ) -> list[bytes]:
        """For each bucket no lookup has targeted for ``older_than`` seconds, a
        random id in its range: look each up (which touches the bucket)."""
        return [random_id_between(*b.range, rng) for b in self.lonely_buckets(now, older_than)]

    def get(self, node_id: bytes) -> Contact | None:
        """The contact with this id, if it is in a bucket (not a replacement)."""
        entry = self.buckets[self.get_bucket_for(Node(node_id))].nodes.get(node_id)
        return None if entry is None else entry.contact

    def failures(self, node_id: bytes) -> int:
        """Consecutive failures recorded for a contact in a bucket (0 if unknown)."""
        entry = self.buckets[self.get_bucket_for(Node(node_id))].nodes.get(node_id)
        return 0 if entry is None else entry.failures

    def contacts(self) -> list[Contact]:
        """Every contact in a bucket, bucket by bucket."""
        return [e.contact for e in self._entries()]

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, bytes) and self.get(node_id) is not None

    def __len__(self) -> int:
        return sum(len(b.nodes) for b in self.buckets)

    # -- internals -----------------------------------------------------------------

    def _entries(self) -> Iterator[_Entry]:
        for bucket in self.buckets:
            yield from bucket.nodes.values()

    def _closest_entries(
        self, target: int, k: int, exclude: tuple[bytes, ...], skip_suspects: bool = False
    ) -> list[_Entry]:
        # Answered for every FIND_NODE, so it visits only the buckets that can hold
        # one of the k closest. Each bucket covers an aligned range of 2^b ids (a
        # common prefix), so every id in it lies at an XOR distance from the target
        # of at least floor = (lower ^ target) with the low b bits cleared. Buckets
        # are taken by floor; once k entries are in hand and the next floor is past
        # the k-th distance, no later bucket can do better: the result is exact.
        buckets = sorted(
            ((b.range[0] ^ target) & ~(b.range[1] - b.range[0]), i)
            for i, b in enumerate(self.buckets)
        )
        best: list[tuple[int, _Entry]] = []
        for floor, i in buckets:
            if len(best) >= k and floor > best[k - 1][0]:
                break
            best.extend(
                (e.long_id ^ target, e)
                for e in self.buckets[i].nodes.values()
                if not (skip_suspects and e.failures) and e.id not in exclude
            )
            best.sort(key=itemgetter(0))  # distances are unique: ids are
            del best[k:]
        return [e for _, e in best]

    def _may_split(self, bucket: Bucket, newcomer: _Entry) -> bool:
        lower, upper = bucket.range
        if lower == upper:
            return False
        if bucket.has_in_range(self.node):
            return True
        # Is the newcomer among the k contacts closest to us?
        own = self.node.long_id
        mine = newcomer.long_id ^ own
        closer = 0
        for entry in self._entries():
            if entry.long_id ^ own < mine:
                closer += 1
                if closer >= self.ksize:
                    return False
        return True
