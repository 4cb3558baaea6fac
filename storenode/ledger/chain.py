"""The chain a node runs: genesis, chain store and mempool behind one object.

Sans-IO and synchronous: a trio shell feeds it transactions and blocks from
the wire and the clock's ``now``, and acts on what it returns. **Apply, then
act**: :meth:`Chain.produce_block` and :meth:`Chain.verify_and_apply` return
only after the block is durable (one LevelDB write batch, ``sync=True``);
the :class:`AppliedBlock` they return carries the block's events (a
``WindowOpened`` for a host to prove, a ``WindowSettled`` for a wallet), and
the caller runs side effects from those afterwards. Subsystems whose own
records must move with the chain (a host's contract book, a wallet index)
register a :class:`BlockIndexer`: its writes go into the block's batch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts import BlockContext, Event, State, VerifiedTx
from storenode.identity import Identity, address_of
from storenode.ledger.block import Block, block_hash, check_bounds, decode_block
from storenode.ledger.chainstore import ChainStore, Tip, Write
from storenode.ledger.errors import LedgerError
from storenode.ledger.genesis import Genesis
from storenode.ledger.mempool import Dropped, Mempool, MempoolLimits
from storenode.ledger.producer import build_block
from storenode.ledger.verify import check_header, execute_block

MAX_FUTURE_S = 15
"""How far ahead of a follower's clock a block's time may be (seconds)."""


class BlockIndexer(Protocol):
    """A subsystem that keeps records in the chain store's database, written in
    the same batch as each block. ``writes_for`` must be pure (no side effects:
    the batch may still fail); keys must be outside ``lg/``."""

    def writes_for(self, block: Block, events: Sequence[Event]) -> Iterable[Write]: ...


@dataclass(frozen=True, slots=True)
class AppliedBlock:
    """A block that is now the durable tip, and what it did."""

    block: Block
    hash: bytes
    tx_ids: tuple[bytes, ...]
    """The ids of ``block.transactions``, in order."""
    events: tuple[Event, ...]
    """``begin_block``'s events, then each transaction's, in block order."""
    dropped: tuple[Dropped, ...] = ()
    """Pending transactions the mempool dropped because of this block."""

    @property
    def height(self) -> int:
        return self.block.header.height


class Chain:
    """One node's view of the chain. Build it with :meth:`open`.

    Not thread-safe: make one call at a time (a trio shell may run the slow
    ones, ``verify_and_apply`` and ``produce_block``, in a worker thread, as
    long as it does not call the chain meanwhile)."""

    def __init__(
        self,
        genesis: Genesis,
        store: ChainStore,
        *,
        mempool_limits: MempoolLimits | None = None,
        max_future_s: int = MAX_FUTURE_S,
        indexers: Sequence[BlockIndexer] = (),
    ) -> None:
        if store.genesis != genesis:
            raise LedgerError("the chain store holds another genesis")
        self.genesis = genesis
        self.store = store
        self.max_future_s = max_future_s
        self.indexers: list[BlockIndexer] = list(indexers)
        self.mempool = Mempool(store.state, self.next_context(), limits=mempool_limits)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        create: bool = True,
        mempool_limits: MempoolLimits | None = None,
        max_future_s: int = MAX_FUTURE_S,
        indexers: Sequence[BlockIndexer] = (),
    ) -> Chain:
        """The chain in the LevelDB directory ``path`` (created at the genesis if empty)."""
        store = ChainStore(path, genesis, create=create)
        try:
            return cls(
                genesis,
                store,
                mempool_limits=mempool_limits,
                max_future_s=max_future_s,
                indexers=indexers,
            )
        except BaseException:
            store.close()
            raise

    # -- reading ------------------------------------------------------------------------

    @property
    def tip(self) -> Tip:
        return self.store.tip

    @property
    def height(self) -> int:
        return self.store.tip.height

    @property
    def state(self) -> State:
        """The committed contract state at the tip (query it with ``contracts.*_of``)."""
        return self.store.state

    def next_proposer(self) -> bytes:
        """The public key of the validator that produces the next block."""
        return self.genesis.proposer_for(self.height + 1)

    def next_context(self, time: int | None = None) -> BlockContext:
        """The next block's context; its time defaults to the tip's plus the block time."""
        tip = self.store.tip
        height = tip.height + 1
        return BlockContext(
            height=height,
            time=tip.time + self.genesis.block_time if time is None else time,
            producer=address_of(self.genesis.proposer_for(height)),
            previous_hash=tip.hash,
        )

    # -- transactions -------------------------------------------------------------------

    def submit_tx(self, raw: bytes) -> VerifiedTx:
        """Admit a transaction to the mempool (``TxRejectedError`` with a reason)."""
        return self.mempool.add(raw)

    # -- blocks -------------------------------------------------------------------------

    def produce_block(self, identity: Identity, now: float) -> AppliedBlock:
        """Build, sign and apply the next block with the mempool's best
        transactions (``ProposerNotScheduledError`` unless ``identity`` is the
        next proposer). Transactions that fail to apply are dropped from the
        mempool, not included. Returns after the block is durable."""
        genesis = self.genesis
        candidates = self.mempool.take(genesis.max_block_txs, genesis.max_block_bytes)
        built = build_block(genesis, self.tip, self.state, candidates, identity, now)
        self.mempool.discard(tx_id for tx_id, _ in built.failed)
        by_id = {vtx.tx_id: vtx for vtx in candidates}
        failed = tuple(
            Dropped(tx_id, by_id[tx_id].sender, by_id[tx_id].tx.nonce, reason)
            for tx_id, reason in built.failed
        )
        applied = self._store(built.block, built.state, built.tx_ids, built.events)
        return dataclasses.replace(applied, dropped=failed + applied.dropped)

    def verify_and_apply(self, block: Block | bytes, now: float) -> AppliedBlock:
        """Check a block from a peer, re-execute it and make it the durable tip.

        Raises :class:`BlockNotNextError` for a block that is not the tip's
        next (known, or ahead: sync), :class:`BlockInvalidError` (with a
        ``reason``) for one that breaks a rule; in both cases nothing changes.
        """
        if isinstance(block, bytes | bytearray | memoryview):
            block = decode_block(block)
        else:
            check_bounds(block)
        check_header(self.genesis, self.tip, block, now=now, max_future=self.max_future_s)
        executed = execute_block(self.state, block, known=self.mempool.get)
        return self._store(block, executed.state, executed.tx_ids, executed.events)

    def _store(
        self, block: Block, state: State, tx_ids: Sequence[bytes], events: tuple[Event, ...]
    ) -> AppliedBlock:
        extra = [w for indexer in self.indexers for w in indexer.writes_for(block, events)]
        committed = self.store.apply_block(block, state, tx_ids, extra_writes=extra)
        self.mempool.remove_committed(block, tx_ids)
        dropped = self.mempool.recheck(committed, self.next_context())
        return AppliedBlock(block, block_hash(block.header), tuple(tx_ids), events, tuple(dropped))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
