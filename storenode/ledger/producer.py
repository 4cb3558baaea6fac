"""Building a block: the scheduled proposer executes candidate transactions and signs.

Pure: the tip, the state, the candidates and ``now`` are arguments. A
candidate that fails to apply (the block's other transactions changed what it
relied on) is left out and reported, and so are its sender's later
transactions (their nonces would not follow); every included transaction
applied, so followers re-executing the block reach the same state root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contracts import BlockContext, Event, State, VerifiedTx, apply, begin_block
from contracts.errors import TxRejectedError as ContractTxRejectedError
from storenode.identity import Identity
from storenode.ledger.block import BLOCK_VERSION, Block, Header, sign_block, tx_root
from storenode.ledger.chainstore import Tip
from storenode.ledger.errors import ProposerNotScheduledError
from storenode.ledger.genesis import Genesis


@dataclass(frozen=True, slots=True)
class Built:
    """A signed block with the state after it (not committed), its events, the
    ids of its transactions, and the candidates that failed ``(tx id, reason)``."""

    block: Block
    state: State
    events: tuple[Event, ...]
    tx_ids: tuple[bytes, ...]
    failed: tuple[tuple[bytes, str], ...]


def block_time(tip: Tip, now: float) -> int:
    """The time a block built at ``now`` states: ``now`` in whole seconds, but
    always after the tip's."""
    return max(int(now), tip.time + 1)


def build_block(
    genesis: Genesis,
    tip: Tip,
    state: State,
    candidates: Iterable[VerifiedTx],
    identity: Identity,
    now: float,
) -> Built:
    """Block ``tip.height + 1`` by ``identity`` (:class:`ProposerNotScheduledError`
    unless it is that height's proposer), over ``state`` (the tip's), with the
    candidates that apply, in the order given, within the genesis' size limits."""
    height = tip.height + 1
    proposer = genesis.proposer_for(height)
    if identity.public_key != proposer:
        raise ProposerNotScheduledError(
            f"block {height} is {proposer.hex()[:16]}…'s to produce, not this node's"
        )
    ctx = BlockContext(
        height=height,
        time=block_time(tip, now),
        producer=identity.address,
        previous_hash=tip.hash,
    )
    state, begun = begin_block(state, ctx)
    events: list[Event] = list(begun)
    raws: list[bytes] = []
    ids: list[bytes] = []
    failed: list[tuple[bytes, str]] = []
    stopped: set[bytes] = set()
    room = genesis.max_block_bytes
    for vtx in candidates:
        if len(raws) >= genesis.max_block_txs:
            break
        if vtx.sender in stopped or len(vtx.raw) > room:
            stopped.add(vtx.sender)
            continue
        try:
            state, more = apply(state, vtx, ctx)
        except ContractTxRejectedError as exc:
            failed.append((vtx.tx_id, exc.reason))
            stopped.add(vtx.sender)
            continue
        events += more
        raws.append(vtx.raw)
        ids.append(vtx.tx_id)
        room -= len(vtx.raw)
    header = Header(
        version=BLOCK_VERSION,
        height=height,
        previous_hash=tip.hash,
        time=ctx.time,
        producer=identity.public_key,
        tx_root=tx_root(raws),
        state_root=state.root,
    )
    block = sign_block(identity, header, raws)
    return Built(block, state, tuple(events), tuple(ids), tuple(failed))
