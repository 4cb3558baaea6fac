"""Kademlia, sans-IO: ids, routing table, lookup state machine, signed records.

Nothing here does I/O, imports trio or reads a clock: time (``now``, unix
seconds) and randomness are arguments. The DHT service (a trio shell in
:mod:`storenode.net`) drives one :class:`DhtNode`; its module docstring
(:mod:`storenode.dht.node`) says how. The protocol is specified in
``docs/specs/dht.md``.

Modules, one concept each:

* :mod:`~storenode.dht.ids` — 160-bit ids, the XOR metric, k = 20, α = 3.
* :mod:`~storenode.dht.contact` — :class:`Contact`: key + listening address.
* :mod:`~storenode.dht.routing` — k-buckets on kademlia's classes, no clock.
* :mod:`~storenode.dht.lookup` — the lookup state machine (α in flight).
* :mod:`~storenode.dht.records` — signed records, provider records, validation.
* :mod:`~storenode.dht.store` — the bounded, multi-valued record store.
* :mod:`~storenode.dht.republish` — own records and their republishing.
* :mod:`~storenode.dht.messages` — PING, FIND_NODE, FIND_VALUE, STORE bodies.
* :mod:`~storenode.dht.node` — :class:`DhtNode`, which ties them together.
* :mod:`~storenode.dht.errors` — typed errors.
"""

from storenode.dht.contact import Contact, decode_contact, encode_contact
from storenode.dht.errors import (
    DhtError,
    LookupStateError,
    RecordInvalidError,
    RecordRejection,
    ReplyUnexpectedError,
    RequestUnknownError,
    SenderMismatchError,
)
from storenode.dht.ids import ALPHA, ID_BITS, K, distance, key_position, random_id
from storenode.dht.lookup import CandidateState, Lookup, LookupMode, LookupResult
from storenode.dht.messages import (
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
from storenode.dht.node import DhtNode, Maintenance
from storenode.dht.records import (
    RECORD_DOMAIN,
    Record,
    RecordValidator,
    parse_provider,
    provider_record,
    sign_record,
)
from storenode.dht.republish import OwnRecords
from storenode.dht.routing import PingRequired, RoutingTable
from storenode.dht.store import PutOutcome, RecordStore

__all__ = [
    "ALPHA",
    "ID_BITS",
    "RECORD_DOMAIN",
    "CandidateState",
    "Contact",
    "DhtError",
    "DhtNode",
    "DhtRequest",
    "DhtResponse",
    "FindNode",
    "FindValue",
    "K",
    "Lookup",
    "LookupMode",
    "LookupResult",
    "LookupStateError",
    "Maintenance",
    "Nodes",
    "OwnRecords",
    "Ping",
    "PingRequired",
    "Pong",
    "PutOutcome",
    "Record",
    "RecordInvalidError",
    "RecordRejection",
    "RecordStore",
    "RecordValidator",
    "ReplyUnexpectedError",
    "RequestUnknownError",
    "RoutingTable",
    "SenderMismatchError",
    "Store",
    "Stored",
    "Values",
    "decode_contact",
    "distance",
    "encode_contact",
    "key_position",
    "parse_provider",
    "provider_record",
    "random_id",
    "sign_record",
]
