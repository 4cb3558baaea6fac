"""A contact: how to reach a node, and who it is.

A :class:`Contact` is a node's Ed25519 public key with the address it listens
on. Its DHT id is derived from the key (:attr:`Contact.node_id` =
``dht_id(key)``), so the id is as authentic as the key: the wire handshake
proves the key, and every DHT request carries the sender's contact, which the
core checks against that proven key.

Two contacts are equal when key, host and port are; the routing table keys
contacts by :attr:`Contact.node_id` and keeps the address it heard last.
"""

from __future__ import annotations

from functools import cached_property, lru_cache

import msgspec

from storenode.identity import dht_id
from storenode.wire.messages import Host, Port, PublicKey


@lru_cache(maxsize=1 << 16)
def _node_id(key: bytes) -> bytes:
    # Every reply decodes fresh Contact objects for the same few hundred keys.
    return dht_id(key)


class Contact(
    msgspec.Struct,
    frozen=True,
    forbid_unknown_fields=True,
    array_like=True,
    dict=True,  # room for the cached node_id
):
    """A node: its public key and the (host, port) it accepts connections on.

    Encoded as the msgpack array ``[key, host, port]``.
    """

    key: PublicKey
    host: Host
    port: Port

    @cached_property
    def node_id(self) -> bytes:
        """The node's 160-bit id, ``dht_id(key)`` (computed once per key)."""
        return _node_id(self.key)

    def __repr__(self) -> str:
        return f"Contact({self.node_id.hex()[:8]}…@{self.host}:{self.port})"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Contact)


def encode_contact(contact: Contact) -> bytes:
    """The msgpack bytes of a contact (the value of a provider record)."""
    return _encoder.encode(contact)


def decode_contact(data: bytes) -> Contact:
    """Decode and validate a contact; raises :class:`msgspec.DecodeError` (a
    :class:`msgspec.ValidationError` for a valid msgpack of the wrong shape), or
    :class:`UnicodeDecodeError` for a host that is not UTF-8."""
    return _decoder.decode(data)
