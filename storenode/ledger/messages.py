"""The ledger's wire messages: gossip, sync, submission and queries::

    registry name        kind     body                              answer
    ledger.tx            NOTIFY   NewTx(raw)                        -
    ledger.block         NOTIFY   NewBlock(raw)                     -
    ledger.status        REQUEST  GetStatus(sender)                 ChainStatus
    ledger.get_blocks    REQUEST  GetBlocks(start, count)           Blocks(blocks)
    ledger.submit        REQUEST  SubmitTx(raw)                     Submitted
    ledger.account       REQUEST  GetAccount(address)               AccountInfo
    ledger.get_tx        REQUEST  GetTx(tx_id)                      TxInfo
    ledger.get_block     REQUEST  GetBlock(height)                  BlockInfo
    ledger.work          REQUEST  GetWork(fingerprint)              WorkReply
    ledger.listing       REQUEST  GetListing(fingerprint, buyer)    ListingInfo
    ledger.contracts     REQUEST  GetContracts(address, role, off)  ContractList

Transactions and blocks travel as their canonical bytes (``encode(SignedTx)``,
``encode(Block)``): the receiver decodes and checks them itself
(:meth:`~storenode.ledger.Chain.submit_tx`,
:meth:`~storenode.ledger.Chain.verify_and_apply`) and a block is stored as it
was received. Token amounts are decimal strings of base units (they exceed
2**64, which msgpack cannot carry). ``ledger.tx`` and ``ledger.block`` name
the gossip, so the queries for one transaction or block are ``ledger.get_tx``
and ``ledger.get_block``.

The answers to queries are built from the committed state by the pure
functions at the end (:func:`chain_status`, :func:`account_info`,
:func:`work_reply`, :func:`listing_info`, :func:`contract_list`,
:func:`sync_reply`); the trio shell that serves them is :mod:`storenode.net.ledger`.

Bodies follow docs/specs/wire.md §3.6; importing this module registers them in
:data:`storenode.wire.messages.default_registry`. Spec: docs/specs/ledger.md,
"Gossip and sync".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Final, Literal

import msgspec

from contracts import (
    Role,
    State,
    Status,
    balance_of,
    contract_of,
    contracts_of,
    has_receipt,
    height_of,
    listing_of,
    nonce_of,
    standing_of,
    work_of,
)
from contracts.tx import MAX_TX_SIZE
from storenode.ledger.block import MAX_BLOCK_SIZE
from storenode.ledger.chainstore import Tip
from storenode.ledger.genesis import Genesis
from storenode.wire.messages import U32, U64, Hash32, NodeId, default_registry

MAX_SYNC_BLOCKS: Final = 64
"""Most blocks one ``ledger.get_blocks`` asks for (and gets)."""
SYNC_REPLY_BYTES: Final = MAX_BLOCK_SIZE
"""A ``Blocks`` reply stops before its blocks' bytes would exceed this, but
always carries at least one block: it fits in one 8 MiB wire message."""
MAX_CONTRACTS_LISTED: Final = 256
"""Most contract summaries one ``ledger.contracts`` reply carries (page with ``offset``)."""

RawTx = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_TX_SIZE)]
"""``encode(SignedTx)``: at most 4,096 bytes."""
RawBlock = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_BLOCK_SIZE)]
"""``encode(Block)``: at most 7 MiB, so one block fits in an 8 MiB message."""
AmountText = Annotated[str, msgspec.Meta(min_length=1, max_length=78, pattern=r"^[0-9]+$")]
"""A token amount in base units, as a decimal string (2**256 - 1 has 78 digits)."""
ChainIdText = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Reason = Annotated[str, msgspec.Meta(max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=512)]
WorkText = Annotated[str, msgspec.Meta(max_length=200)]
Height = Annotated[int, msgspec.Meta(ge=1)]
SyncCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_SYNC_BLOCKS)]
RoleName = Literal["host", "publisher"]
ContractStatusName = Literal["pending", "active", "closed"]


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    pass


# -- gossip ------------------------------------------------------------------------------


class NewTx(_Body, frozen=True):
    """A transaction the sender admitted to its mempool (``ledger.tx``)."""

    raw: RawTx


class NewBlock(_Body, frozen=True):
    """A block the sender produced or applied (``ledger.block``)."""

    raw: RawBlock


# -- status and sync ---------------------------------------------------------------------


class ChainStatus(_Body, frozen=True):
    """Where a node's chain is: which chain, and its tip."""

    chain_id: ChainIdText
    genesis_hash: Hash32
    height: U64
    tip_hash: Hash32
    """The genesis hash at height 0."""
    tip_time: U64
    state_root: Hash32


class GetStatus(_Body, frozen=True):
    """``ledger.status``. A node sends its own status (and so becomes a gossip
    peer of the responder while the connection lasts); a client sends None."""

    sender: ChainStatus | None = None


class GetBlocks(_Body, frozen=True):
    """``ledger.get_blocks``: blocks ``start .. start + count - 1`` (those the
    responder has, in order)."""

    start: Height
    count: SyncCount = MAX_SYNC_BLOCKS


class Blocks(_Body, frozen=True):
    """Consecutive blocks from the requested ``start``: fewer than asked when the
    responder's chain ends or :data:`SYNC_REPLY_BYTES` is reached; none when it
    has no block at ``start``."""

    blocks: Annotated[tuple[RawBlock, ...], msgspec.Meta(max_length=MAX_SYNC_BLOCKS)]


# -- clients: submitting -----------------------------------------------------------------


class SubmitTx(_Body, frozen=True):
    """``ledger.submit``: a wallet's transaction for the mempool (gossiped if admitted)."""

    raw: RawTx


class Submitted(_Body, frozen=True):
    """The mempool's answer. ``tx_id`` is None only for bytes that are no
    transaction; ``reason`` is empty when accepted, else the stable rejection
    code (docs/specs/ledger.md 4.5: ``nonce_replayed``, ``insufficient_balance``, …)."""

    tx_id: Hash32 | None
    accepted: bool
    reason: Reason = ""
    message: Text = ""


# -- clients: queries --------------------------------------------------------------------


class GetAccount(_Body, frozen=True):
    """``ledger.account``."""

    address: NodeId


class AccountInfo(_Body, frozen=True):
    """An account at the tip ``height`` (every field zero for an unknown address)."""

    address: NodeId
    height: U64
    balance: AmountText
    nonce: U64
    """Transactions committed so far (the nonce the next committed one carries)."""
    next_nonce: U64
    """The nonce a new transaction should carry, counting those pending in the mempool."""
    burned: AmountText
    """Burned toward its reputation (payout burns and voluntary burns)."""
    reputation: AmountText
    windows_proven: U64
    windows_missed: U64


class GetTx(_Body, frozen=True):
    """``ledger.get_tx``."""

    tx_id: Hash32


class TxInfo(_Body, frozen=True):
    """Where a transaction is: committed (``found``: block ``height``, position
    ``index``), pending in the mempool (``pending``), or neither. ``raw`` is
    its bytes when either."""

    found: bool
    pending: bool = False
    height: U64 = 0
    index: U32 = 0
    raw: Annotated[bytes, msgspec.Meta(max_length=MAX_TX_SIZE)] = b""


class GetBlock(_Body, frozen=True):
    """``ledger.get_block``."""

    height: U64


class BlockInfo(_Body, frozen=True):
    """Block ``height`` as stored (``found`` false above the tip, and for 0:
    the genesis is no block)."""

    found: bool
    raw: Annotated[bytes, msgspec.Meta(max_length=MAX_BLOCK_SIZE)] = b""


class GetWork(_Body, frozen=True):
    """``ledger.work``: a registry entry by fingerprint (keccak256 of the work)."""

    fingerprint: Hash32


class WorkInfo(_Body, frozen=True):
    fingerprint: Hash32
    name: WorkText
    version: WorkText
    date: WorkText
    author: WorkText
    owner: NodeId
    manifest_hash: Hash32
    registered_height: U64
    registered_time: U64


class WorkReply(_Body, frozen=True):
    """The entry, or None when no work is registered under the fingerprint."""

    work: WorkInfo | None


class GetListing(_Body, frozen=True):
    """``ledger.listing``: a work's price per download, and whether ``buyer`` (an
    address) holds a receipt for it: what a reader asks before fetching."""

    fingerprint: Hash32
    buyer: NodeId


class ListingInfo(_Body, frozen=True):
    """``price`` is None when the work has no listing (it is free to read)."""

    height: U64
    price: AmountText | None
    receipt: bool


class GetContracts(_Body, frozen=True):
    """``ledger.contracts``: the storage contracts ``address`` is a party of in
    ``role`` (an address that is both publisher and host of one is listed under
    either), by contract id, from position ``offset``."""

    address: NodeId
    role: RoleName
    offset: U32 = 0


class ContractSummary(_Body, frozen=True):
    contract_id: Hash32
    publisher: NodeId
    host: NodeId
    status: ContractStatusName
    root: Hash32
    chunk_count: U32
    chunk_size: U32
    price_per_window: AmountText
    windows: U32
    window_blocks: U32
    window: U32
    """The open window (while active), or the next one to open."""
    windows_proven: U32
    windows_missed: U32
    escrow: AmountText
    collateral: AmountText
    revision: U64
    opened_height: U64


class ContractList(_Body, frozen=True):
    """At most :data:`MAX_CONTRACTS_LISTED` summaries from ``offset``; ``total``
    counts every contract of the address in that role."""

    height: U64
    total: U32
    contracts: Annotated[tuple[ContractSummary, ...], msgspec.Meta(max_length=MAX_CONTRACTS_LISTED)]


MESSAGES: Final[tuple[tuple[str, type[msgspec.Struct], type[msgspec.Struct] | None], ...]] = (
    ("ledger.tx", NewTx, None),
    ("ledger.block", NewBlock, None),
    ("ledger.status", GetStatus, ChainStatus),
    ("ledger.get_blocks", GetBlocks, Blocks),
    ("ledger.submit", SubmitTx, Submitted),
    ("ledger.account", GetAccount, AccountInfo),
    ("ledger.get_tx", GetTx, TxInfo),
    ("ledger.get_block", GetBlock, BlockInfo),
    ("ledger.work", GetWork, WorkReply),
    ("ledger.listing", GetListing, ListingInfo),
    ("ledger.contracts", GetContracts, ContractList),
)
"""(registry name, request or notify body, response body or None) of every ledger message."""

for _name, _request, _response in MESSAGES:
    default_registry.register(_name, _request, _response)


# -- answers from the state (pure) -------------------------------------------------------

_ROLES: Final[dict[str, frozenset[Role]]] = {
    "host": frozenset({Role.HOST, Role.BOTH}),
    "publisher": frozenset({Role.PUBLISHER, Role.BOTH}),
}
_STATUS_NAMES: Final[dict[Status, ContractStatusName]] = {
    Status.PENDING: "pending",
    Status.ACTIVE: "active",
    Status.CLOSED: "closed",
}


def sync_reply(stored: Iterable[bytes]) -> Blocks:
    """The answer to ``ledger.get_blocks`` from the stored blocks asked for:
    as many as fit in :data:`SYNC_REPLY_BYTES` (the first one always)."""
    out: list[bytes] = []
    size = 0
    for raw in stored:
        if out and size + len(raw) > SYNC_REPLY_BYTES:
            break
        out.append(raw)
        size += len(raw)
    return Blocks(tuple(out))


def chain_status(genesis: Genesis, tip: Tip) -> ChainStatus:
    return ChainStatus(
        chain_id=genesis.chain_id,
        genesis_hash=genesis.hash,
        height=tip.height,
        tip_hash=tip.hash,
        tip_time=tip.time,
        state_root=tip.state_root,
    )


def account_info(state: State, address: bytes, *, next_nonce: int) -> AccountInfo:
    """``address``'s account in ``state``; ``next_nonce`` is the mempool's."""
    standing = standing_of(state, address)
    return AccountInfo(
        address=address,
        height=height_of(state),
        balance=str(int(balance_of(state, address))),
        nonce=nonce_of(state, address),
        next_nonce=next_nonce,
        burned=str(standing.burned),
        reputation=str(standing.reputation),
        windows_proven=standing.windows_proven,
        windows_missed=standing.windows_missed,
    )


def work_reply(state: State, fingerprint: bytes) -> WorkReply:
    work = work_of(state, fingerprint)
    if work is None:
        return WorkReply(None)
    return WorkReply(
        WorkInfo(
            fingerprint=fingerprint,
            name=work.name,
            version=work.version,
            date=work.date,
            author=work.author,
            owner=work.owner,
            manifest_hash=work.manifest_hash,
            registered_height=work.registered_height,
            registered_time=work.registered_time,
        )
    )


def listing_info(state: State, fingerprint: bytes, buyer: bytes) -> ListingInfo:
    listing = listing_of(state, fingerprint)
    return ListingInfo(
        height=height_of(state),
        price=None if listing is None else str(int(listing.price)),
        receipt=has_receipt(state, buyer, fingerprint),
    )


def contract_list(state: State, address: bytes, role: RoleName, offset: int = 0) -> ContractList:
    """The contracts ``address`` is a party of in ``role``, by id, from ``offset``."""
    roles = _ROLES[role]
    ids = [cid for cid, r in contracts_of(state, address) if r in roles]
    summaries = []
    for cid in ids[offset : offset + MAX_CONTRACTS_LISTED]:
        c = contract_of(state, cid)
        if c is None:  # pragma: no cover - the party index and the contracts move together
            continue
        summaries.append(
            ContractSummary(
                contract_id=cid,
                publisher=c.publisher,
                host=c.host,
                status=_STATUS_NAMES[c.status],
                root=c.root,
                chunk_count=c.chunk_count,
                chunk_size=c.chunk_size,
                price_per_window=str(int(c.price_per_window)),
                windows=c.windows,
                window_blocks=c.window_blocks,
                window=c.window,
                windows_proven=c.windows_proven,
                windows_missed=c.windows_missed,
                escrow=str(int(c.escrow)),
                collateral=str(int(c.collateral)),
                revision=c.revision,
                opened_height=c.opened_height,
            )
        )
    return ContractList(height=height_of(state), total=len(ids), contracts=tuple(summaries))
