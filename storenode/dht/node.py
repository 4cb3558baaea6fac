"""The DHT node: the one object the DHT service drives.

:class:`DhtNode` ties the routing table, the record store, this node's own
records and the lookups together. It never does I/O and never reads a clock:
every method that needs time takes ``now``, and :meth:`DhtNode.maintenance`
takes the random generator that picks refresh targets.

**Time.** ``now`` is *unix time in seconds* (float) everywhere in
:mod:`storenode.dht`, because records carry unix timestamps that other nodes
compare with their own clocks. A shell under trio's ``autojump_clock`` may
pass ``wall_at_start + (trio.current_time() - trio_at_start)``.

**What the service does** (every call below is synchronous and cheap):

1. *Serving.* For each DHT request from an authenticated peer::

       response = node.handle_request(peer_key, request, now)

   ``peer_key`` is the Ed25519 key the wire handshake proved. A request whose
   ``sender.key`` differs raises :class:`SenderMismatchError` (answer
   ``UNAUTHORIZED``). Otherwise the sender is observed (added to or refreshed
   in the routing table) and the response returned. An invalid record in a
   STORE is not an error: it is dropped, counted in :attr:`DhtNode.dropped`,
   and answered ``Stored(False, reason)``.

2. *Lookups.* ``node.find_node(target, now)``, ``node.find_value(key, now)``
   or ``node.join(seeds, now)`` return a :class:`Lookup`; drive it as its
   module docstring (:mod:`storenode.dht.lookup`) shows, reporting each
   outcome with :meth:`~DhtNode.on_lookup_reply` (validates the reply's
   records, observes the responder; a reply of the wrong type is handled as
   a failure and raises :class:`ReplyUnexpectedError`, to score the peer) or
   :meth:`~DhtNode.on_lookup_failure` (counts a failure against the
   contact). A result's ``closest`` may include ``node.contact`` itself.

   *Joining:* run ``node.join(seeds, now)``, then a ``find_node`` lookup
   for each id of ``node.refresh_all(rng)`` (Kademlia's join: it fills the
   table and makes the node known across the keyspace).

3. *Other requests we send* (PING, STORE): on any reply call
   :meth:`~DhtNode.observe`; on a failure (timeout, error reply, broken
   reply) call :meth:`~DhtNode.record_failure`.

4. *Pings.* After any of the above, send a PING to every contact of
   :meth:`~DhtNode.pings_due` (heads of full buckets that a newcomer wants
   to replace) and report the outcome as in 3. A head that fails
   ``max_failures`` times in a row is evicted for the newest replacement.

5. *Publishing.* ``record = node.publish(key, value, now, ttl)`` or
   ``node.announce_provider(key, now)`` (both also hold the record locally);
   then look up ``key_position(key)`` with :meth:`~DhtNode.find_node` and
   send ``node.store_request(record)`` to each of ``result.closest`` other
   than ``node.contact``. ``Stored.accepted`` says whether the replica holds
   it (``reason`` says why not).

6. *Maintenance,* every minute or so: ``m = node.maintenance(now, rng)``;
   run a :meth:`~DhtNode.find_node` lookup for each id of ``m.refresh``
   (stale buckets) and publish each record of ``m.republish`` as in 5.
   Expired records were purged by the call.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from storenode.dht.contact import Contact
from storenode.dht.errors import (
    RecordInvalidError,
    RecordRejection,
    ReplyUnexpectedError,
    RequestUnknownError,
    SenderMismatchError,
)
from storenode.dht.ids import ALPHA, K, key_position, random_id_between
from storenode.dht.lookup import Lookup, LookupMode
from storenode.dht.messages import (
    MAX_RECORDS,
    DhtRequest,
    DhtResponse,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Values,
)
from storenode.dht.records import PROVIDER_TTL, Record, RecordValidator
from storenode.dht.republish import OwnRecords
from storenode.dht.routing import MAX_FAILURES, REFRESH_INTERVAL, RoutingTable
from storenode.dht.store import RecordStore
from storenode.identity import Identity


@dataclass(frozen=True)
class Maintenance:
    """What :meth:`DhtNode.maintenance` asks the service to do."""

    refresh: list[bytes] = field(default_factory=list)
    """Ids to look up (one per stale bucket)."""
    republish: list[Record] = field(default_factory=list)
    """Own records, freshly re-signed, to store on their keys' k closest nodes."""
    expired: int = 0
    """Records purged from the store by this call."""


class DhtNode:
    """A node of the DHT, sans-IO (see the module docstring for how to drive it).

    ``contact`` is where this node listens; its key must be ``identity``'s.
    ``store`` defaults to a :class:`RecordStore` with default limits.
    """

    def __init__(
        self,
        identity: Identity,
        contact: Contact,
        *,
        now: float,
        k: int = K,
        alpha: int = ALPHA,
        max_failures: int = MAX_FAILURES,
        validator: RecordValidator | None = None,
        store: RecordStore | None = None,
    ) -> None:
        if contact.key != identity.public_key:
            raise ValueError("the node's contact must carry its identity's public key")
        self.identity = identity
        self.contact = contact
        self.node_id = contact.node_id
        self.k = k
        self.alpha = alpha
        self.validator = validator if validator is not None else RecordValidator()
        self.table = RoutingTable(self.node_id, now=now, k=k, max_failures=max_failures)
        self.store = store if store is not None else RecordStore(self.validator)
        self.own = OwnRecords(identity)
        self.dropped: Counter[str] = Counter()
        """What was dropped and why: ``record.<RecordRejection>``,
        ``request.sender-mismatch``, ``reply.unexpected``."""
        self._pings: dict[bytes, Contact] = {}

    # -- serving requests --------------------------------------------------------------

    def handle_request(self, peer_key: bytes, request: DhtRequest, now: float) -> DhtResponse:
        """Answer a request from the peer authenticated as ``peer_key``."""
        if not isinstance(request, Ping | FindNode | FindValue | Store):
            raise RequestUnknownError(f"{type(request).__qualname__} is not a DHT request")
        if request.sender.key != peer_key:
            self.dropped["request.sender-mismatch"] += 1
            raise SenderMismatchError()
        self.observe(request.sender, now)
        if isinstance(request, Ping):
            return self.handle_ping(request, now)
        if isinstance(request, FindNode):
            return self.handle_find_node(request, now)
        if isinstance(request, FindValue):
            return self.handle_find_value(request, now)
        return self.handle_store(request, now)

    def handle_ping(self, request: Ping, now: float) -> Pong:
        return Pong()

    def handle_find_node(self, request: FindNode, now: float) -> Nodes:
        """The k closest contacts we know to the target (not the requester)."""
        return Nodes(self._closest(request.target, exclude=request.sender.node_id))

    def handle_find_value(self, request: FindValue, now: float) -> Values:
        """Every live record under the key (up to 64) and the k closest contacts
        to its position (not the requester)."""
        records = self.store.get(request.key, now, MAX_RECORDS)
        contacts = self._closest(key_position(request.key), exclude=request.sender.node_id)
        return Values(records, contacts)

    def handle_store(self, request: Store, now: float) -> Stored:
        """Validate and store the record; an invalid one is dropped and counted."""
        try:
            outcome = self.store.put(request.record, now)
        except RecordInvalidError as e:
            self.dropped[f"record.{e.reason.value}"] += 1
            return Stored(False, e.reason.value)
        return Stored(outcome.accepted, outcome.value)

    # -- liveness ------------------------------------------------------------------------

    def observe(self, contact: Contact, now: float) -> None:
        """``contact`` answered us, or sent us an authenticated request."""
        if contact.node_id == self.node_id:
            return
        action = self.table.add_contact(contact, now)
        if action is not None:
            self._pings[action.head.node_id] = action.head

    def record_failure(self, contact: Contact) -> Contact | None:
        """A request to ``contact`` failed. Returns the contact if this evicted it."""
        self._pings.pop(contact.node_id, None)
        return self.table.record_failure(contact.node_id)

    def pings_due(self) -> list[Contact]:
        """Contacts to PING now (each asked for once); report with :meth:`observe`
        or :meth:`record_failure`."""
        due = list(self._pings.values())
        self._pings.clear()
        return due

    # -- lookups -------------------------------------------------------------------------

    def find_node(self, target: bytes, now: float) -> Lookup:
        """A FIND_NODE lookup of ``target`` (a 20-byte id), seeded with the k closest
        contacts of the routing table."""
        self.table.touch(target, now)
        return Lookup(
            target,
            self._closest(target),
            k=self.k,
            alpha=self.alpha,
            local=self.contact,
        )

    def find_value(self, key: bytes, now: float, *, enough_records: int | None = None) -> Lookup:
        """A FIND_VALUE lookup of ``key``: all records from the k closest nodes of its
        position, or stop starting requests at ``enough_records`` owners."""
        position = key_position(key)
        self.table.touch(position, now)
        lookup = Lookup(
            key,
            self._closest(position),
            k=self.k,
            alpha=self.alpha,
            mode=LookupMode.VALUE,
            local=self.contact,
            enough_records=enough_records,
        )
        lookup.add_records(self.store.get(key, now, MAX_RECORDS))
        return lookup

    def join(self, seeds: Iterable[Contact], now: float) -> Lookup:
        """The lookup of our own id that joins the network through ``seeds`` (and
        whatever the table already holds); it fills the table as contacts answer."""
        initial = {c.node_id: c for c in self._closest(self.node_id)}
        for seed in seeds:
            initial.setdefault(seed.node_id, seed)
        self.table.touch(self.node_id, now)
        return Lookup(
            self.node_id,
            initial.values(),
            k=self.k,
            alpha=self.alpha,
            local=self.contact,
        )

    def on_lookup_reply(
        self, lookup: Lookup, contact: Contact, reply: Nodes | Values, now: float
    ) -> None:
        """``contact`` answered a request of ``lookup`` with ``reply``.

        Records that fail validation (or are for another key) are dropped and
        counted. A reply of the wrong type is handled as a failure, counted, and
        raises :class:`ReplyUnexpectedError` so the service can score the peer.
        """
        expected = Values if lookup.mode is LookupMode.VALUE else Nodes
        if not isinstance(reply, expected):
            self.dropped["reply.unexpected"] += 1
            self.on_lookup_failure(lookup, contact, now)
            raise ReplyUnexpectedError(
                f"{contact!r} answered a {lookup.mode.value} lookup with {type(reply).__name__}"
            )
        self.observe(contact, now)
        records: list[Record] = []
        if isinstance(reply, Values):
            records = self.valid_records(reply.records, lookup.key, now)
        lookup.on_response(contact, reply.contacts, records)

    def on_lookup_failure(self, lookup: Lookup, contact: Contact, now: float) -> None:
        """The request of ``lookup`` to ``contact`` failed."""
        lookup.on_failure(contact)
        self.record_failure(contact)

    def valid_records(
        self, records: Iterable[Record], key: bytes | None, now: float
    ) -> list[Record]:
        """The records that are valid at ``now`` (and under ``key``, if given); the
        others are dropped and counted."""
        valid: list[Record] = []
        for record in records:
            try:
                if key is not None and record.key != key:
                    raise RecordInvalidError(RecordRejection.KEY_MISMATCH)
                self.validator.check(record, now)
            except RecordInvalidError as e:
                self.dropped[f"record.{e.reason.value}"] += 1
                continue
            valid.append(record)
        return valid

    # -- our own records -----------------------------------------------------------------

    def publish(self, key: bytes, value: bytes, now: float, ttl: int) -> Record:
        """Sign and keep alive ``value`` under ``key``; also held locally (we may be
        among its k closest). Store it on ``key``'s k closest nodes next."""
        record = self.own.publish(key, value, now, ttl)
        self.store.put(record, now)
        return record

    def announce_provider(self, key: bytes, now: float, ttl: int = PROVIDER_TTL) -> Record:
        """Sign and keep alive a provider record: we, at :attr:`contact`, hold ``key``."""
        record = self.own.publish_provider(key, self.contact, now, ttl)
        self.store.put(record, now)
        return record

    def withdraw(self, key: bytes) -> bool:
        """Stop republishing our record under ``key``; it expires within its TTL."""
        return self.own.withdraw(key)

    def store_request(self, record: Record) -> Store:
        """The STORE request for ``record``, from us."""
        return Store(self.contact, record)

    def maintenance(
        self, now: float, rng: random.Random, *, refresh_after: float = REFRESH_INTERVAL
    ) -> Maintenance:
        """Purge expired records; name the stale buckets to refresh and the own
        records due for republishing (re-signed now, and held locally again)."""
        expired = self.store.expire(now)
        republish = self.own.due_republish(now)
        for record in republish:
            self.store.put(record, now)
        refresh = self.table.stale_buckets(now, rng, refresh_after)
        return Maintenance(refresh=refresh, republish=republish, expired=expired)

    def refresh_all(self, rng: random.Random) -> list[bytes]:
        """A random id in every bucket's range: after :meth:`join` finished, look
        each up (Kademlia §2.3: a joining node refreshes its buckets, which fills
        its table and makes it known across the keyspace)."""
        return [random_id_between(*bucket.range, rng) for bucket in self.table.buckets]

    def _closest(self, target: bytes, exclude: bytes | None = None) -> list[Contact]:
        """The k closest contacts that are not suspects (their last request
        failed), for replies and lookup seeds."""
        excluded = () if exclude is None else (exclude,)
        return self.table.closest(target, self.k, exclude=excluded, skip_suspects=True)
