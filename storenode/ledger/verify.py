"""A follower's checks of a block: its header against the tip, then every
transaction re-executed and the state root compared.

Pure: the tip, the state and ``now`` are arguments; nothing is stored here
(:class:`~storenode.ledger.chain.Chain` stores what passes). The rules, in the
order they are checked (the first failure is the :class:`BlockInvalidError`'s
``reason``), are the table of docs/specs/ledger.md, "Blocks and chain".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contracts import Event, State, VerifiedTx, apply, begin_block
from contracts.errors import TxRejectedError as ContractTxRejectedError
from contracts.tx import decode_tx, tx_id, verify_tx
from storenode.ledger.block import Block, block_context, check_signature, tx_root
from storenode.ledger.chainstore import Tip
from storenode.ledger.errors import BlockInvalidError, BlockNotNextError
from storenode.ledger.genesis import Genesis

KnownTx = Callable[[bytes], VerifiedTx | None]
"""Looks up a transaction already verified (by id), to skip its signature check."""


@dataclass(frozen=True, slots=True)
class Executed:
    """A block re-executed: the state after it (not committed: its
    ``changes()`` go into the write batch), what happened, and the transactions' ids."""

    state: State
    events: tuple[Event, ...]
    tx_ids: tuple[bytes, ...]


def check_header(genesis: Genesis, tip: Tip, block: Block, *, now: float, max_future: int) -> None:
    """Everything but the transactions: height (:class:`BlockNotNextError`),
    previous hash, proposer, time, size, tx root, signature."""
    header = block.header
    if header.height != tip.height + 1:
        raise BlockNotNextError(header.height, tip.height)
    if header.previous_hash != tip.hash:
        raise BlockInvalidError(
            "wrong_previous", f"block {header.height} does not follow the tip's hash"
        )
    proposer = genesis.proposer_for(header.height)
    if header.producer != proposer:
        raise BlockInvalidError(
            "wrong_proposer",
            f"block {header.height} is {proposer.hex()[:16]}…'s to produce, "
            f"not {header.producer.hex()[:16]}…'s",
        )
    if header.time <= tip.time:
        raise BlockInvalidError(
            "time_not_after_previous", f"time {header.time} is not after {tip.time}"
        )
    if header.time > now + max_future:
        raise BlockInvalidError(
            "time_in_future", f"time {header.time} is more than {max_future} s after {int(now)}"
        )
    if len(block.transactions) > genesis.max_block_txs or block.tx_bytes > genesis.max_block_bytes:
        raise BlockInvalidError(
            "too_large",
            f"{len(block.transactions)} transactions of {block.tx_bytes} bytes; at most "
            f"{genesis.max_block_txs} and {genesis.max_block_bytes}",
        )
    if tx_root(block.transactions) != header.tx_root:
        raise BlockInvalidError("bad_tx_root", "the transactions do not hash to the tx root")
    check_signature(block)


def execute_block(state: State, block: Block, *, known: KnownTx | None = None) -> Executed:
    """Re-execute ``block`` on ``state`` (the tip's) and compare the state root.

    Every transaction must decode, verify and apply (``bad_tx``, with its index
    and reason); the root after the last must be the header's (``bad_state_root``).
    """
    header = block.header
    ctx = block_context(header)
    state, begun = begin_block(state, ctx)
    events = list(begun)
    ids: list[bytes] = []
    for index, raw in enumerate(block.transactions):
        try:
            signed = decode_tx(raw)
            vtx = None if known is None else known(tx_id(signed.tx))
            if vtx is None or vtx.raw != raw:
                vtx = verify_tx(signed)
            state, more = apply(state, vtx, ctx)
        except ContractTxRejectedError as exc:
            raise BlockInvalidError(
                "bad_tx", f"transaction {index}: {exc}", tx_index=index, tx_reason=exc.reason
            ) from None
        events += more
        ids.append(vtx.tx_id)
    if state.root != header.state_root:
        raise BlockInvalidError(
            "bad_state_root", f"re-executing block {header.height} gives another state root"
        )
    return Executed(state, tuple(events), tuple(ids))
