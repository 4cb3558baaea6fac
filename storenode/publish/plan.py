"""Planning a publish: which hosts can take a work, which shards each one keeps,
and the storage contract terms offered to each.

1. :func:`select_hosts` keeps the host ads (from the DHT's host directory)
   that can take the work: ads of this chain, asking at most the publisher's
   ``publish.max_price``, signing contracts of the wanted length, and not the
   publisher's own node. It counts why the others were left out, so "not
   enough hosts" can say why.
2. :func:`assign` places every shard (:func:`~storenode.publish.placement.place`:
   near its target, reputable hosts preferred, one shard of a stripe per host)
   and drops hosts that the placement would give more bytes than their ad says
   they have free, placing again without them.
3. :func:`make_terms` builds one contract per (host, work): its chunks are the
   host's shards in (stripe, shard) order, so ``root = contract_root(their
   chunk ids)`` and ``chunk_size = stripe_size / k``; the price per window is
   the host's price per GiB for the bytes it keeps, rounded up; the collateral
   is what the host's ad offers, in basis points of the escrow.

Pure and synchronous: the caller gives the ads, reputations, height and salt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from contracts.encoding import BPS, Amount
from contracts.tx import ContractTerms, SetListing, Share
from storenode.coding.merkle import contract_root
from storenode.identity import address_of, dht_id
from storenode.publish.errors import TooFewHostsError
from storenode.publish.manifest import Manifest
from storenode.publish.placement import place
from storenode.publish.records import HostAd

GIB: Final = 1 << 30
ACCEPT_MARGIN: Final = 50
"""Blocks a host's acceptance stays good for (``accept_until = height + margin``):
time to collect every acceptance and get the OpenContract transactions into a block."""

ShardKey = tuple[int, int]
"""``(stripe, shard)``."""


@dataclass(frozen=True, slots=True)
class HostOffer:
    """A host that can take the work: its ad and its reputation on the ledger."""

    ad: HostAd
    reputation: int

    @property
    def node_id(self) -> bytes:
        return dht_id(self.ad.key)

    @property
    def address(self) -> bytes:
        return address_of(self.ad.key)


@dataclass(slots=True)
class HostChoice:
    """The ads :func:`select_hosts` kept, and how many it left out for each reason."""

    usable: list[HostAd]
    skipped: Counter[str] = field(default_factory=Counter)

    def detail(self) -> str:
        """Why hosts were left out, for an error message (empty if none were)."""
        return _detail(len(self.usable), self.skipped)


def _detail(usable: int, skipped: Mapping[str, int]) -> str:
    found = usable + sum(skipped.values())
    if not found:
        return " (none found in the DHT: check wire.peers and client.node in the config)"
    if not skipped:
        return ""
    reasons = ", ".join(f"{count} {why}" for why, count in sorted(skipped.items()))
    return f" (of {found} found: {reasons})"


def select_hosts(
    ads: Iterable[HostAd],
    *,
    chain_id: str,
    max_price: int,
    windows: int,
    publisher: bytes,
    exclude: Iterable[bytes] = (),
) -> HostChoice:
    """The ads of hosts that can take a work of ``windows`` windows on ``chain_id``
    at ``max_price`` at most, leaving out the ``publisher``'s own node and the
    public keys in ``exclude`` (hosts that refused or did not answer)."""
    excluded = frozenset(exclude)
    choice = HostChoice([])
    seen: set[bytes] = set()
    for ad in ads:
        if ad.key in seen:
            continue
        seen.add(ad.key)
        if ad.key == publisher:
            choice.skipped["is this publisher's own node"] += 1
        elif ad.key in excluded:
            choice.skipped["refused or did not answer"] += 1
        elif ad.chain_id != chain_id:
            choice.skipped["serve another chain"] += 1
        elif int(ad.price) > max_price:
            choice.skipped["ask more than publish.max_price"] += 1
        elif ad.max_windows < windows:
            choice.skipped[f"sign fewer than {windows} windows"] += 1
        else:
            choice.usable.append(ad)
    return choice


def assign(
    cid: bytes,
    stripes: int,
    n: int,
    shard_size: int,
    offers: Sequence[HostOffer],
    *,
    skipped: Mapping[str, int] | None = None,
) -> dict[bytes, list[ShardKey]]:
    """Each host's shards, ``{public key: [(stripe, shard), ...]}`` in (stripe, shard)
    order, placed among ``offers`` so that no host gets more bytes than its ad has
    free. :class:`TooFewHostsError` when fewer than n hosts remain (``skipped``,
    the reasons other hosts were left out, goes into its message)."""
    reasons = Counter(skipped or {})
    by_id = {offer.node_id: offer for offer in offers}
    while True:
        if len(by_id) < n:
            raise TooFewHostsError(n, len(by_id), _detail(len(by_id), reasons))
        placement = place(cid, stripes, n, [(i, o.reputation) for i, o in by_id.items()])
        loads = Counter(placement.values())
        full = [i for i, count in loads.items() if count * shard_size > by_id[i].ad.free]
        if not full:
            break
        for node_id in full:
            del by_id[node_id]
        reasons["have too little free space"] += len(full)
    out: dict[bytes, list[ShardKey]] = {}
    for key in sorted(placement):
        out.setdefault(by_id[placement[key]].ad.key, []).append(key)
    return out


def price_per_window(price_per_gib: int, size: int) -> int:
    """What a host asking ``price_per_gib`` base units per GiB per window is paid per
    window for ``size`` bytes: rounded up, and at least one base unit unless free."""
    if price_per_gib == 0:
        return 0
    return max(1, -(-price_per_gib * size // GIB))


def collateral_for(escrow: int, collateral_bps: int) -> int:
    """The host's collateral: ``collateral_bps`` basis points of the escrow, rounded down
    (never more than the host offers)."""
    return escrow * collateral_bps // BPS


def chunk_ids_of(manifest: Manifest, shards: Iterable[ShardKey]) -> list[bytes]:
    """The chunk ids of these shards, in the given order."""
    return [manifest.stripes[s].chunk_ids[i] for s, i in shards]


def make_terms(
    *,
    chain_id: str,
    publisher: bytes,
    ad: HostAd,
    chunk_ids: Sequence[bytes],
    chunk_size: int,
    windows: int,
    window_blocks: int,
    height: int,
    salt: int,
) -> ContractTerms:
    """The terms offered to the host of ``ad`` for the chunks ``chunk_ids`` (its shards
    of one work, in contract order), opened by ``publisher`` (a public key) at
    ``height``: good until ``height + ACCEPT_MARGIN``."""
    per_window = price_per_window(int(ad.price), len(chunk_ids) * chunk_size)
    return ContractTerms(
        chain_id=chain_id,
        publisher=publisher,
        host=ad.key,
        root=contract_root(chunk_ids),
        chunk_count=len(chunk_ids),
        chunk_size=chunk_size,
        price_per_window=Amount(per_window),
        windows=windows,
        window_blocks=window_blocks,
        collateral=Amount(collateral_for(per_window * windows, ad.collateral_bps)),
        accept_until=height + ACCEPT_MARGIN,
        salt=salt,
    )


def escrow_of(terms: ContractTerms) -> int:
    """What opening the contract locks of the publisher's balance."""
    return int(terms.price_per_window) * terms.windows


def listing_for(cid: bytes, price: int, owner: bytes) -> SetListing:
    """The work's price per download, all of it paid to ``owner`` (an address)."""
    return SetListing(cid, Amount(price), (Share(owner, BPS),))


__all__ = [
    "ACCEPT_MARGIN",
    "GIB",
    "HostChoice",
    "HostOffer",
    "ShardKey",
    "assign",
    "chunk_ids_of",
    "collateral_for",
    "escrow_of",
    "listing_for",
    "make_terms",
    "price_per_window",
    "select_hosts",
]
