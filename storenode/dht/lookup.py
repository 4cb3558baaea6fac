"""The lookup state machine: FIND_NODE and FIND_VALUE, α requests in flight.

A :class:`Lookup` finds the ``k`` nodes closest to a target that answer, and in
``VALUE`` mode collects the records they hold under a key. It does no I/O: the
service asks it whom to query and tells it what happened::

    lookup = node.find_node(target, now)          # or node.find_value(key, now)
    while not lookup.done:
        for contact in lookup.next_requests():    # call after *every* event
            send lookup.request(node.contact) to contact (with a deadline)
        wait for one outcome, then either
            node.on_lookup_reply(lookup, contact, reply, now)   # -> lookup.on_response
            node.on_lookup_failure(lookup, contact, now)        # -> lookup.on_failure
    result = lookup.result()

It is not run in rounds: whenever a reply or a failure frees a slot,
:meth:`Lookup.next_requests` fills it with the closest contact not asked yet,
so up to ``alpha`` requests are in flight while there is work left.

**Candidates.** Every contact the lookup has heard of is a candidate with a
state, moved by the transition table :data:`TRANSITIONS`::

    WAITING --query--> IN_FLIGHT --response--> RESPONDED
                                 --failure---> FAILED

Any other move raises :class:`~storenode.dht.errors.LookupStateError` (a
reply from a contact that was never asked, or a second outcome). Failed
candidates are forgotten for good (a later reply naming them does not bring
them back). A contact named by a reply is ignored if its id is already a
candidate, even at another address: the first address heard wins. The node
running the lookup (``local``) is a candidate that starts ``RESPONDED`` at
depth 0: it is never queried, but it is in the result when it is among the k
closest (so a STORE after the lookup also goes to the local store).

**Work and termination.** The *shortlist* is the ``k`` closest candidates
that have not failed (kademlia's :class:`~kademlia.node.NodeHeap`, bounded to
``k``). Work remains while a shortlist candidate is ``WAITING``. The lookup is
:attr:`~Lookup.done` when none is in flight and none of the shortlist is
waiting: then the whole shortlist has responded, and
:attr:`LookupResult.closest` is exactly the ``k`` closest contacts that
answered among all that were heard of. In ``VALUE`` mode with
``enough_records`` set, no request is started once that many records (by
distinct owners) are in hand; the lookup is done when the ones in flight end,
and ``closest`` then holds the shortlist contacts that had responded.

**Hops.** Each candidate has a *depth*: a contact given in ``initial`` has
depth 1, and one first named by a responder of depth ``d`` has depth
``d + 1`` (lowered if a shallower responder names it before it is asked).
:attr:`LookupResult.hops` is the depth of the closest responder: the number
of sequential round trips that reached it from the initial contacts (0 when
the local node is itself the closest).
``queried``, ``responded`` and ``failed`` count the requests of this lookup.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from kademlia.node import Node, NodeHeap

from storenode.dht.contact import Contact
from storenode.dht.errors import LookupStateError
from storenode.dht.ids import ALPHA, K, key_position
from storenode.dht.messages import FindNode, FindValue
from storenode.dht.records import Record
from storenode.dht.store import MAX_PER_KEY
from storenode.identity import ID_SIZE


class LookupMode(enum.Enum):
    NODE = "node"
    """FIND_NODE: the k closest nodes to an id."""
    VALUE = "value"
    """FIND_VALUE: the records under a key, and the k closest nodes to its position."""


class CandidateState(enum.Enum):
    WAITING = "waiting"
    IN_FLIGHT = "in-flight"
    RESPONDED = "responded"
    FAILED = "failed"


class _Event(enum.Enum):
    QUERY = "query"
    RESPONSE = "response"
    FAILURE = "failure"


TRANSITIONS: dict[tuple[CandidateState, _Event], CandidateState] = {
    (CandidateState.WAITING, _Event.QUERY): CandidateState.IN_FLIGHT,
    (CandidateState.IN_FLIGHT, _Event.RESPONSE): CandidateState.RESPONDED,
    (CandidateState.IN_FLIGHT, _Event.FAILURE): CandidateState.FAILED,
}
"""The legal moves of a candidate; anything else is a :class:`LookupStateError`."""


@dataclass(frozen=True)
class LookupResult:
    """What a finished lookup found."""

    closest: list[Contact]
    """The k closest contacts that responded, nearest first."""
    records: list[Record] = field(default_factory=list)
    """VALUE mode: the newest record of each owner under the key, latest expiry
    first, at most ``max_records``."""
    hops: int = 0
    """The depth of ``closest[0]`` (0 if nobody responded)."""
    queried: int = 0
    """Requests sent."""
    responded: int = 0
    """Replies received."""
    failed: int = 0
    """Requests that failed."""


class _Candidate(Node):  # type: ignore[misc]  # kademlia is untyped
    id: bytes
    long_id: int

    def __init__(self, contact: Contact, depth: int) -> None:
        super().__init__(contact.node_id, contact.host, contact.port)
        self.contact = contact
        self.depth = depth
        self.state = CandidateState.WAITING


class _Shortlist(NodeHeap):  # type: ignore[misc]  # kademlia is untyped
    """kademlia's NodeHeap of candidates by distance to the target; iterating
    yields the ``maxsize`` closest that have not failed (failed ones are removed).
    Ids are unique (the lookup de-duplicates), so no two heap items tie."""

    heap: list[tuple[int, _Candidate]]

    def push(self, candidate: _Candidate) -> None:
        # NodeHeap.push first scans the heap for the id; the lookup already knows.
        heapq.heappush(self.heap, (candidate.long_id ^ self.node.long_id, candidate))

    def __iter__(self) -> Iterator[_Candidate]:
        return (candidate for _, candidate in heapq.nsmallest(self.maxsize, self.heap))


class Lookup:
    """One FIND_NODE or FIND_VALUE lookup (see the module docstring).

    ``target`` is the id sought (20 bytes) in ``NODE`` mode and the record key
    (1..64 bytes) in ``VALUE`` mode, whose position is ``dht_id(key)``.
    ``initial`` seeds the candidates (usually the routing table's k closest),
    ``local`` is the node running the lookup: it is never queried, but it takes
    part as a candidate that has already responded (depth 0), so a result
    includes it when it is among the k closest (a STORE then goes to the local
    store). Records it holds are added with :meth:`add_records`.
    """

    def __init__(
        self,
        target: bytes,
        initial: Iterable[Contact],
        *,
        k: int = K,
        alpha: int = ALPHA,
        mode: LookupMode = LookupMode.NODE,
        local: Contact | None = None,
        max_records: int = MAX_PER_KEY,
        enough_records: int | None = None,
    ) -> None:
        if k < 1 or alpha < 1:
            raise ValueError("k and alpha are at least 1")
        self.mode = mode
        self.k = k
        self.alpha = alpha
        if mode is LookupMode.VALUE:
            self.key: bytes | None = target
            self.target = key_position(target)
        else:
            if len(target) != ID_SIZE:
                raise ValueError(f"a node id is {ID_SIZE} bytes, not {len(target)}")
            self.key = None
            self.target = target
        self.max_records = max_records
        self.enough_records = enough_records
        self._shortlist = _Shortlist(Node(self.target), k)
        self._candidates: dict[bytes, _Candidate] = {}
        self._in_flight = 0
        self._records: dict[bytes, Record] = {}
        self.queried = 0
        self.responded = 0
        self.failed = 0
        self.max_in_flight = 0
        """The most requests that were ever in flight at once."""
        self.records_dropped = 0
        """Records in replies that were not for this lookup's key."""
        self.local = local
        if local is not None:
            me = _Candidate(local, 0)
            me.state = CandidateState.RESPONDED
            self._candidates[local.node_id] = me
            self._shortlist.push(me)
        for contact in initial:
            self._learn(contact, 1)

    # -- what to do next -------------------------------------------------------------

    def next_requests(self) -> list[Contact]:
        """Contacts to query now (each moves to ``IN_FLIGHT``), closest first, so
        that up to ``alpha`` are in flight. Call after every event."""
        if self._enough():
            return []
        out: list[Contact] = []
        for candidate in self._shortlist:
            if self._in_flight >= self.alpha:
                break
            if candidate.state is CandidateState.WAITING:
                self._move(candidate, _Event.QUERY)
                self._in_flight += 1
                self.queried += 1
                out.append(candidate.contact)
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return out

    def request(self, sender: Contact) -> FindNode | FindValue:
        """The request to send to every queried contact, from ``sender`` (us)."""
        if self.key is not None:
            return FindValue(sender, self.key)
        return FindNode(sender, self.target)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def has_work(self) -> bool:
        """Whether a contact of the shortlist is waiting to be asked (and the lookup
        has not got enough records): then :meth:`next_requests` keeps ``alpha``
        requests in flight."""
        if self._enough():
            return False
        return any(c.state is CandidateState.WAITING for c in self._shortlist)

    @property
    def done(self) -> bool:
        return not self._in_flight and not self.has_work

    # -- events ----------------------------------------------------------------------

    def on_response(
        self, contact: Contact, contacts: Sequence[Contact], records: Sequence[Record] = ()
    ) -> None:
        """``contact`` answered with ``contacts`` (the closest it knows; the first
        ``k`` are used) and, in VALUE mode, ``records``, which the caller has
        validated (signature, expiry). Records for another key are dropped."""
        candidate = self._get(contact)
        self._move(candidate, _Event.RESPONSE)
        self._in_flight -= 1
        self.responded += 1
        for named in contacts[: self.k]:
            self._learn(named, candidate.depth + 1)
        self.add_records(records)

    def add_records(self, records: Iterable[Record]) -> None:
        """Take validated records into the result (VALUE mode; ignored in NODE
        mode): the newest of each owner is kept, other keys' are dropped. The
        replies' records come through :meth:`on_response`; this is for the local
        node's own."""
        if self.key is None:
            return
        for record in records:
            if record.key != self.key:
                self.records_dropped += 1
                continue
            held = self._records.get(record.owner)
            if held is None or record.created > held.created:
                self._records[record.owner] = record

    def on_failure(self, contact: Contact) -> None:
        """The request to ``contact`` failed (timeout, error, bad reply)."""
        candidate = self._get(contact)
        self._move(candidate, _Event.FAILURE)
        self._in_flight -= 1
        self.failed += 1
        self._shortlist.remove([candidate.id])

    # -- the outcome -------------------------------------------------------------------

    def result(self) -> LookupResult:
        """The outcome; raises :class:`LookupStateError` before :attr:`done`."""
        if not self.done:
            raise LookupStateError("the lookup is not done")
        closest = [c for c in self._shortlist if c.state is CandidateState.RESPONDED]
        records = sorted(self._records.values(), key=lambda r: (r.expires, r.created), reverse=True)
        return LookupResult(
            closest=[c.contact for c in closest],
            records=records[: self.max_records],
            hops=closest[0].depth if closest else 0,
            queried=self.queried,
            responded=self.responded,
            failed=self.failed,
        )

    def state_of(self, node_id: bytes) -> CandidateState | None:
        """The state of a candidate (None if the lookup never heard of it)."""
        candidate = self._candidates.get(node_id)
        return None if candidate is None else candidate.state

    # -- internals -----------------------------------------------------------------------

    def _learn(self, contact: Contact, depth: int) -> None:
        node_id = contact.node_id
        known = self._candidates.get(node_id)
        if known is not None:
            if known.state is CandidateState.WAITING and depth < known.depth:
                known.depth = depth
            return
        candidate = _Candidate(contact, depth)
        self._candidates[node_id] = candidate
        self._shortlist.push(candidate)

    def _get(self, contact: Contact) -> _Candidate:
        candidate = self._candidates.get(contact.node_id)
        if candidate is None:
            raise LookupStateError(f"{contact!r} was never queried by this lookup")
        return candidate

    def _move(self, candidate: _Candidate, event: _Event) -> None:
        new = TRANSITIONS.get((candidate.state, event))
        if new is None:
            raise LookupStateError(
                f"{candidate.contact!r}: no {event.value} in state {candidate.state.value}"
            )
        candidate.state = new

    def _enough(self) -> bool:
        return self.enough_records is not None and len(self._records) >= self.enough_records
