"""The DHT's wire messages: the four RPCs of Kademlia.

=================  =======================================  ===========================
registry name      request                                  response
=================  =======================================  ===========================
``dht.ping``       ``Ping(sender)``                         ``Pong()``
``dht.find_node``  ``FindNode(sender, target)``             ``Nodes(contacts)``
``dht.find_value`` ``FindValue(sender, key)``               ``Values(records, contacts)``
``dht.store``      ``Store(sender, record)``                ``Stored(accepted, reason)``
=================  =======================================  ===========================

Every request carries ``sender``: the requester's :class:`Contact` (its key and
the address it *listens* on). The core refuses a request whose ``sender.key``
is not the key the wire handshake authenticated
(:class:`~storenode.dht.errors.SenderMismatchError`), so a contact learned
from a request is always genuine.

Bodies follow the wire's schema conventions (msgpack arrays, frozen structs,
unknown fields refused, sizes bounded): a reply names at most :data:`K`
contacts and :data:`MAX_PER_KEY` records. Importing this module registers the
pairs in :data:`storenode.wire.messages.default_registry`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from storenode.dht.contact import Contact
from storenode.dht.ids import K
from storenode.dht.records import Record, RecordKey
from storenode.wire.messages import NodeId, default_registry

MAX_RECORDS = 64
"""Records a Values reply carries (the per-key bound of a store)."""

MAX_REASON = 64

Contacts = Annotated[list[Contact], msgspec.Meta(max_length=K)]
Records = Annotated[list[Record], msgspec.Meta(max_length=MAX_RECORDS)]
Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    pass


class Ping(_Body, frozen=True):
    sender: Contact


class Pong(_Body, frozen=True):
    pass


class FindNode(_Body, frozen=True):
    sender: Contact
    target: NodeId


class Nodes(_Body, frozen=True):
    contacts: Contacts


class FindValue(_Body, frozen=True):
    sender: Contact
    key: RecordKey


class Values(_Body, frozen=True):
    records: Records
    contacts: Contacts


class Store(_Body, frozen=True):
    sender: Contact
    record: Record


class Stored(_Body, frozen=True):
    accepted: bool
    reason: Reason = ""
    """A :class:`~storenode.dht.store.PutOutcome` value (``stored``, ``stale``,
    ``key-full``, ...) or, for an invalid record, a
    :class:`~storenode.dht.errors.RecordRejection` value (``bad-signature``, ...)."""


DhtRequest = Ping | FindNode | FindValue | Store
DhtResponse = Pong | Nodes | Values | Stored

MESSAGES: tuple[tuple[str, type[msgspec.Struct], type[msgspec.Struct]], ...] = (
    ("dht.ping", Ping, Pong),
    ("dht.find_node", FindNode, Nodes),
    ("dht.find_value", FindValue, Values),
    ("dht.store", Store, Stored),
)
"""(registry name, request, response) of every DHT RPC."""

for _name, _request, _response in MESSAGES:
    default_registry.register(_name, _request, _response)
