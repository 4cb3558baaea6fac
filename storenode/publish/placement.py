"""Placement: which host stores shard i of stripe s of a work.

Each shard has a **target** in the DHT keyspace::

    target(cid, s, i) = dht_id(cid || u32be(s) || u16be(i))
                      = last 20 bytes of keccak256(cid || s as 4 bytes BE || i as 2 bytes BE)

and goes to a host near it among the hosts that accepted the contract, with at
most one shard of a stripe per host. Reputation breaks the tie between near
hosts: for stripe s, shards are placed in order i = 0, 1, ..., n-1; for shard i
the hosts not yet holding a shard of stripe s are ranked by XOR distance
between their node id and the target, the ``window`` closest (default
:data:`PLACEMENT_WINDOW`, 3) are considered, and the one with the highest
reputation wins, the closer one on equal reputation. With ``window=1`` this is
plain "closest host". The result depends only on the CID, the stripe count, n,
the window and the *set* of (node id, reputation) candidates — not on their
order — so a publisher and anyone auditing it compute the same placement.
Spec: docs/specs/manifest.md §5.

Pure and synchronous.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable
from typing import Final, NamedTuple

from storenode.identity import ID_SIZE, dht_id

PLACEMENT_WINDOW: Final = 3
"""How many of the closest free hosts compete, by reputation, for each shard."""
MAX_STRIPE: Final = 2**32 - 1
MAX_SHARDS: Final = 2**16

_INDEX = struct.Struct(">IH")


class PlacementError(Exception):
    """Base of the errors of placement."""


class PlacementParamsError(PlacementError, ValueError):
    """A CID, stripe count, n, window or candidate that makes no placement."""


class NotEnoughHostsError(PlacementError):
    """Fewer accepting hosts than shards per stripe (one shard of a stripe per host)."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"placing n={needed} shards of every stripe on distinct hosts needs {needed} hosts "
            f"that accept the contract; {available} did: find {needed - available} more hosts "
            "or publish with a smaller n"
        )
        self.needed = needed
        self.available = available


class Candidate(NamedTuple):
    """A host that accepted the contract: its 20-byte DHT node id and its reputation."""

    node_id: bytes
    reputation: int


def shard_target(cid: bytes, stripe: int, shard: int) -> bytes:
    """The 20-byte keyspace position of shard ``shard`` of stripe ``stripe`` of ``cid``."""
    if not 0 <= stripe <= MAX_STRIPE or not 0 <= shard < MAX_SHARDS:
        raise PlacementParamsError(f"stripe {stripe}, shard {shard}: outside u32 / u16")
    return dht_id(cid + _INDEX.pack(stripe, shard))


def place(
    cid: bytes,
    stripes: int,
    n: int,
    hosts: Iterable[tuple[bytes, int]],
    *,
    window: int = PLACEMENT_WINDOW,
) -> dict[tuple[int, int], bytes]:
    """The host (node id) of every shard: ``{(stripe, shard): node_id}`` for every
    stripe in ``0..stripes-1`` and shard in ``0..n-1`` (see the module docstring).

    ``hosts`` are (node id, reputation) pairs with distinct node ids. Raises
    :class:`NotEnoughHostsError` when there are fewer than n of them and
    :class:`PlacementParamsError` for malformed arguments.
    """
    if len(cid) != 32:
        raise PlacementParamsError(f"a CID is 32 bytes, not {len(cid)}")
    if not 0 <= stripes <= MAX_STRIPE + 1:
        raise PlacementParamsError(f"{stripes} stripes: give 0..{MAX_STRIPE + 1}")
    if not 1 <= n <= MAX_SHARDS:
        raise PlacementParamsError(f"n={n}: give 1..{MAX_SHARDS}")
    if window < 1:
        raise PlacementParamsError(f"a window of {window}: give at least 1")
    candidates = _candidates(hosts)
    if len(candidates) < n:
        raise NotEnoughHostsError(n, len(candidates))
    placement: dict[tuple[int, int], bytes] = {}
    for s in range(stripes):
        free = dict(candidates)
        for i in range(n):
            target = int.from_bytes(shard_target(cid, s, i))
            near = heapq.nsmallest(window, free, key=lambda h: h ^ target)
            # the most reputable of the near hosts; the closest among equals
            best = min(near, key=lambda h: (-free[h], h ^ target))
            del free[best]
            placement[(s, i)] = best.to_bytes(ID_SIZE)
    return placement


def _candidates(hosts: Iterable[tuple[bytes, int]]) -> dict[int, int]:
    """node id as an int -> reputation; refuses malformed or repeated ids."""
    out: dict[int, int] = {}
    for node_id, reputation in hosts:
        if len(node_id) != ID_SIZE:
            raise PlacementParamsError(f"a node id is {ID_SIZE} bytes, not {len(node_id)}")
        key = int.from_bytes(node_id)
        if key in out:
            raise PlacementParamsError(f"host {node_id.hex()} is listed twice")
        out[key] = reputation
    return out
