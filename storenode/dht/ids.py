"""Node ids, keys and the XOR metric.

Every position in the DHT is a 160-bit id, held as 20 big-endian bytes:

* a node's id is ``dht_id(public_key)`` (:func:`storenode.identity.dht_id`,
  the last 20 bytes of keccak256), so a node cannot choose where it sits;
* a record's key (1..64 bytes: a chunk id, a CID, ...) sits at
  :func:`key_position` ``= dht_id(key)``.

The distance between two ids is their XOR read as an unsigned integer
(Kademlia §2.1). The protocol constants of the DESIGN are here too.
"""

from __future__ import annotations

import random

from storenode.identity import ID_SIZE, dht_id

ID_BITS = ID_SIZE * 8
"""Bits in an id (160)."""

ID_SPACE = 1 << ID_BITS
"""Number of ids; the largest id is ``ID_SPACE - 1``."""

K = 20
"""Bucket size and the number of closest nodes a lookup returns."""

ALPHA = 3
"""Requests a lookup keeps in flight."""


def id_to_int(node_id: bytes) -> int:
    """The id as an integer in ``0 .. 2**160 - 1``."""
    if len(node_id) != ID_SIZE:
        raise ValueError(f"an id is {ID_SIZE} bytes, not {len(node_id)}")
    return int.from_bytes(node_id, "big")


def int_to_id(value: int) -> bytes:
    """The 20-byte id of an integer in ``0 .. 2**160 - 1``."""
    if not 0 <= value < ID_SPACE:
        raise ValueError("an id is an integer in 0 .. 2**160 - 1")
    return value.to_bytes(ID_SIZE, "big")


def distance(a: bytes, b: bytes) -> int:
    """The XOR distance between two ids."""
    return id_to_int(a) ^ id_to_int(b)


def key_position(key: bytes) -> bytes:
    """The id at which records under ``key`` are stored: ``dht_id(key)``."""
    return dht_id(key)


def random_id(rng: random.Random) -> bytes:
    """A uniformly random id drawn from ``rng``."""
    return int_to_id(rng.getrandbits(ID_BITS))


def random_id_between(lower: int, upper: int, rng: random.Random) -> bytes:
    """A uniformly random id in the inclusive range ``lower .. upper``."""
    return int_to_id(rng.randint(lower, upper))
