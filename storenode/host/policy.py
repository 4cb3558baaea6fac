"""What a host agrees to: the checks on a proposed contract, an upload, a read and
a manifest. Pure and synchronous: each takes what it checks against as values.

**A proposal** (``contract.propose``, see :mod:`storenode.host.messages`) is
signed only if every one of these holds, cheapest first; the first that fails
is the reason given to the publisher:

* the terms are a canonical ``ContractTerms`` (else ``BAD_REQUEST``), for this
  host and this chain;
* the placement is possible (``k <= n``, every ``shard < n``), the shards are
  ``terms.chunk_count`` distinct (stripe, shard) slots of chunks of
  ``terms.chunk_size`` bytes (at most :data:`MAX_CHUNK_SIZE`), and
  ``terms.root`` is the contract root over their chunk ids in order;
* the windows are within the chain's limits and the host's ``max_windows``;
* the price per window is at least the host's price for the bytes:
  ``ceil(price × chunk_count × chunk_size / 2**30)``;
* the collateral is at most ``escrow × collateral_bps / 10,000`` and what the
  host can lock (its balance less the collateral of contracts it signed that
  are not open yet);
* ``accept_until`` is after the chain's height, by at most
  :data:`ACCEPT_HORIZON` blocks;
* the chunks the host does not already keep fit in its free space.

**An upload** is taken only for a chunk that a live contract lists at that
very slot of that work, with the contract's chunk size. **A read** of a work
with a price on the ledger needs the reader's receipt (or to own the work);
**a repair** (:func:`check_repair`) a live contract of the reader's with the
work's owner that lists the chunk it rebuilds.
**A manifest** is kept only for a work the host holds a live contract of, and
only if it verifies and lists the host's chunks where its contracts say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from contracts.encoding import BPS, DECODE_ERRORS, decoder, encode, format_tokens
from contracts.entries import Params, Status
from contracts.state import State
from contracts.storage import contract_of
from contracts.tx import ContractTerms
from contracts.works import has_receipt, listing_of, work_of
from storenode.coding.errors import ProofMalformedError
from storenode.coding.merkle import Proof, contract_root, root_from_path
from storenode.config import Config
from storenode.host.book import BookContract, HostBook
from storenode.host.messages import (
    ACCEPT_HORIZON,
    MAX_CHUNK_SIZE,
    ContractProposal,
    Placement,
    RepairRequest,
)
from storenode.identity import address_of
from storenode.publish.manifest import Manifest, ManifestError, decode_manifest, verify_manifest
from storenode.wire.messages import ErrorCode

GIB: Final = 1 << 30
_terms_decoder: Final = decoder(ContractTerms)


class RefusedError(Exception):
    """A request the host turns down; ``code`` is the wire error to answer with."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.REFUSED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Offer:
    """What the operator's config offers."""

    price: int
    """Base units per GiB per window."""
    collateral_bps: int
    max_windows: int

    @classmethod
    def of(cls, config: Config) -> Offer:
        return cls(config.price, config.collateral_bps, config.max_windows)


@dataclass(frozen=True, slots=True)
class Standing:
    """The chain as a proposal is checked against it."""

    chain_id: str
    height: int
    params: Params
    balance: int
    """The host's balance at the tip."""
    collateral_pending: int
    """Collateral of the contracts the host signed that are not open yet."""


def price_for(price_per_gib: int, nbytes: int) -> int:
    """What ``nbytes`` cost per window at ``price_per_gib``, rounded up."""
    return -(-price_per_gib * nbytes // GIB)


def max_collateral(escrow: int, collateral_bps: int) -> int:
    return escrow * collateral_bps // BPS


def decode_terms(raw: bytes) -> ContractTerms:
    """The terms in ``raw``; :class:`RefusedError` (``BAD_REQUEST``) unless they are
    the canonical encoding of a ``ContractTerms`` (the bytes the host signs)."""
    try:
        terms = _terms_decoder.decode(raw)
    except DECODE_ERRORS as e:
        why = f"the terms are not contract terms: {e}"
        raise RefusedError(why, ErrorCode.BAD_REQUEST) from None
    if encode(terms) != raw:
        raise RefusedError("the terms are not canonically encoded", ErrorCode.BAD_REQUEST)
    return terms


def check_proposal(
    proposal: ContractProposal,
    terms: ContractTerms,
    *,
    host_key: bytes,
    offer: Offer,
    chain: Standing,
    free: int,
    new_bytes: int,
) -> None:
    """Raise :class:`RefusedError` with the reason unless the host signs ``terms``
    for ``proposal``'s shards (see the module docstring). ``free`` is the space
    not promised yet; ``new_bytes`` what the shards add to the promises."""
    if terms.host != host_key:
        raise RefusedError("the terms name another host")
    if terms.chain_id != chain.chain_id:
        raise RefusedError(f"the terms are for chain {terms.chain_id!r}, not {chain.chain_id!r}")
    _check_shards(proposal, terms)
    _check_windows(terms, offer, chain.params)
    _check_money(terms, offer, chain)
    if terms.accept_until <= chain.height:
        raise RefusedError(
            f"accept_until {terms.accept_until} has passed: the chain is at {chain.height}"
        )
    if terms.accept_until > chain.height + ACCEPT_HORIZON:
        raise RefusedError(
            f"accept_until {terms.accept_until} is more than {ACCEPT_HORIZON} blocks ahead of "
            f"the chain's height {chain.height}"
        )
    if new_bytes > free:
        raise RefusedError(f"not enough space: {new_bytes} bytes asked for, {free} free")


def _check_shards(proposal: ContractProposal, terms: ContractTerms) -> None:
    k, n = proposal.k, proposal.n
    if k > n:
        raise RefusedError(f"k={k} exceeds n={n}")
    slots = set()
    for s in proposal.shards:
        if s.shard >= n:
            raise RefusedError(f"shard index {s.shard} is outside 0..{n - 1}")
        slots.add((s.stripe, s.shard))
    if len(slots) != len(proposal.shards):
        raise RefusedError("a (stripe, shard) slot is listed twice")
    if terms.chunk_count != len(proposal.shards):
        raise RefusedError(
            f"the terms count {terms.chunk_count} chunks, the proposal lists {len(proposal.shards)}"
        )
    if terms.chunk_size > MAX_CHUNK_SIZE:
        raise RefusedError(f"chunks of {terms.chunk_size} bytes: at most {MAX_CHUNK_SIZE}")
    if terms.root != contract_root([s.chunk_id for s in proposal.shards]):
        raise RefusedError("the terms' root is not the contract root of the listed chunks")


def _check_windows(terms: ContractTerms, offer: Offer, params: Params) -> None:
    low, high = params.min_window_blocks, params.max_window_blocks
    if not low <= terms.window_blocks <= high:
        why = f"windows of {terms.window_blocks} blocks: the chain allows {low}..{high}"
        raise RefusedError(why)
    most = min(offer.max_windows, params.max_windows)
    if terms.windows > most:
        raise RefusedError(f"{terms.windows} windows: this host signs at most {most}")
    if terms.chunk_count > params.max_chunk_count or terms.chunk_size > params.max_chunk_size:
        raise RefusedError("more or larger chunks than the chain allows in one contract")


def _check_money(terms: ContractTerms, offer: Offer, chain: Standing) -> None:
    nbytes = terms.chunk_count * terms.chunk_size
    asked = price_for(offer.price, nbytes)
    if terms.price_per_window < asked:
        raise RefusedError(
            f"price too low: {format_tokens(terms.price_per_window)} tokens per window offered, "
            f"this host asks {format_tokens(asked)} for {nbytes} bytes"
        )
    escrow = terms.price_per_window * terms.windows
    most = max_collateral(escrow, offer.collateral_bps)
    if terms.collateral > most:
        raise RefusedError(
            f"collateral of {format_tokens(terms.collateral)} tokens asked; this host locks at "
            f"most {offer.collateral_bps / 100:g}% of the escrow, {format_tokens(most)}"
        )
    spendable = max(0, chain.balance - chain.collateral_pending)
    if terms.collateral > spendable:
        raise RefusedError(
            f"collateral of {format_tokens(terms.collateral)} tokens asked; this host can "
            f"lock {format_tokens(spendable)}"
        )


# -- uploads, reads, manifests ---------------------------------------------------------------


class ContractUploadPolicy:
    """Takes a chunk only where a live contract in ``book`` lists it."""

    def __init__(self, book: HostBook) -> None:
        self.book = book

    def may_store(
        self, uploader_key: bytes, chunk_id: bytes, size: int, placement: Placement
    ) -> bool | str:
        slots = [s for s in self.book.slots(chunk_id) if s[0].cid == placement.cid]
        if not slots:
            return f"no contract of this host lists chunk {chunk_id.hex()[:16]}… of that work"
        for c, stripe, shard in slots:
            if Placement(c.cid, stripe, shard, c.k, c.n) == placement:
                if size != c.chunk_size:
                    return f"the contract's chunks are {c.chunk_size} bytes, not {size}"
                return True
        return (
            f"the contracts list chunk {chunk_id.hex()[:16]}… elsewhere than shard "
            f"{placement.shard} of stripe {placement.stripe} (k={placement.k}, n={placement.n})"
        )


class ReceiptReadPolicy:
    """A work priced on the ledger is served only to a buyer (a receipt) or its owner."""

    def __init__(self, state: Callable[[], State]) -> None:
        self.state = state

    def may_read(self, client_key: bytes, cid: bytes) -> bool:
        state = self.state()
        listing = listing_of(state, cid)
        if listing is None or listing.price == 0:
            return True
        reader = address_of(client_key)
        work = work_of(state, cid)
        return (work is not None and work.owner == reader) or has_receipt(state, reader, cid)


def check_repair(
    state: State, manifest: Manifest | None, requester_key: bytes, req: RepairRequest
) -> str | None:
    """Why the host does not give ``req``'s packet free of charge, or None: the
    requester rebuilds shard ``req.shard`` of stripe ``req.stripe``, which the work's
    manifest (the one this host keeps) names, and a live contract of the
    requester's with the work's owner lists that chunk at ``req.index`` (its path
    folds to the contract's root)."""
    if manifest is None:
        return "this host keeps no manifest of that work"
    if not (0 <= req.stripe < len(manifest.stripes) and req.shard < manifest.n):
        return f"the work has no shard {req.shard} of stripe {req.stripe}"
    contract = contract_of(state, req.contract)
    if contract is None or contract.status is Status.CLOSED:
        return f"no live contract {req.contract.hex()[:16]}… on the chain"
    if contract.host_key != requester_key:
        return "that contract is another host's"
    work = work_of(state, manifest.cid)
    if work is None or contract.publisher != work.owner:
        return "that contract is not with the work's owner"
    if not req.index < contract.chunk_count:
        return f"the contract lists {contract.chunk_count} chunks, not {req.index + 1}"
    chunk_id = manifest.stripes[req.stripe].chunk_ids[req.shard]
    try:
        root = root_from_path(chunk_id, Proof(req.index, contract.chunk_count, tuple(req.path)))
    except ProofMalformedError as e:
        return f"the chunk's path is malformed: {e}"
    if root != contract.root:
        return "the contract does not list that chunk there"
    return None


def read_manifest(raw: bytes) -> Manifest:
    """The manifest in ``raw`` (decoded, not verified); :class:`RefusedError` if it is none."""
    try:
        return decode_manifest(raw)
    except ManifestError as e:
        raise RefusedError(f"not a manifest: {e}") from None


def check_manifest(m: Manifest, contracts: Sequence[BookContract]) -> None:
    """Raise :class:`RefusedError` unless the host keeps ``m`` for the work of
    ``contracts`` (its live contracts of ``m.cid``): there is one, ``m`` verifies,
    and it lists each contract's chunks at their slots."""
    if not contracts:
        raise RefusedError("this host holds no contract for that work")
    try:
        verify_manifest(m, cid=contracts[0].cid)
    except ManifestError as e:
        raise RefusedError(f"the manifest does not verify: {e}") from None
    for c in contracts:
        if (m.k, m.n) != (c.k, c.n):
            raise RefusedError(f"the manifest codes k={m.k} n={m.n}; the contract k={c.k} n={c.n}")
        for s in c.shards:
            if s.stripe >= len(m.stripes) or m.stripes[s.stripe].chunk_ids[s.shard] != s.chunk_id:
                raise RefusedError(
                    f"the manifest does not list chunk {s.chunk_id.hex()[:16]}… as shard "
                    f"{s.shard} of stripe {s.stripe}, as the contract does"
                )
