"""The ledger service: a :class:`~storenode.ledger.Chain` driven over the wire.

It produces blocks when this node is the scheduled validator, gossips
transactions and blocks to its peers, applies what they gossip, syncs the
blocks it lacks, and answers the ``ledger.*`` requests of peers and clients
(:mod:`storenode.ledger.messages`). A node composes it like this::

    with Chain.open(data_dir / "chain", genesis) as chain:
        async with open_rpc_node(identity) as rpc:
            await rpc.listen(host, port)
            async with trio.open_nursery() as nursery:
                ledger = await nursery.start(
                    partial(serve_ledger, rpc, chain, identity, peers=peers)
                )
                blocks = ledger.subscribe()          # AppliedBlock, after each commit
                ...
                nursery.cancel_scope.cancel()        # stop; then the chain closes

(:func:`open_ledger_node` does the middle for a node that runs nothing else.)

**One call into the chain at a time.** :class:`Chain` is not thread-safe and a
block takes up to ~0.4 s to build or verify, so every call that changes it
(``produce_block`` and ``verify_and_apply`` in a worker thread, ``submit_tx``
inline) runs under one ``trio.Lock``, shielded from cancellation once started so
that a committed block is never left without its after-effects. Queries read
committed, immutable values (the tip's state, stored blocks) without the lock;
those that read the mempool take it.

**Apply, then act**: after each commit, and before the next one, the
listeners (:meth:`LedgerService.on_applied`, :meth:`LedgerService.subscribe`)
get the :class:`AppliedBlock`; then the block is gossiped.

Time: blocks carry unix seconds, so ``clock`` (default :func:`time.time`) gives
``now`` to the chain and the producer's schedule; deadlines use trio's clock.

This module holds the service's core: its state, the lock, producing,
applying and submitting, the listeners, and running and stopping it. Its other
parts are mixins over the same object: gossip and sync with the peers
(:mod:`storenode.net.ledger_gossip`) and the answers to clients
(:mod:`storenode.net.ledger_queries`).

Spec: docs/specs/ledger.md, "Gossip and sync".
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio

from contracts import VerifiedTx
from storenode.identity import Identity
from storenode.ledger import (
    AppliedBlock,
    Chain,
    TxRejectedError,
    encode_block,
)
from storenode.ledger.messages import NewBlock, NewTx
from storenode.net.errors import LedgerStoppedError
from storenode.net.ledger_gossip import (
    BLOCK_EXCUSED,
    BLOCK_FANOUT,
    RETRY_AFTER,
    TX_FANOUT,
    TX_FAULTS,
    GossipAndSync,
)
from storenode.net.ledger_queries import ClientQueries
from storenode.net.peer import Limits
from storenode.net.rpc import PeerAddress, RpcNode, open_rpc_node

log = logging.getLogger(__name__)

AppliedListener = Callable[[AppliedBlock], None]


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a ledger peer listens (a :class:`~storenode.net.rpc.PeerAddress`)."""

    key: bytes
    host: str
    port: int


@dataclass
class LedgerStats:
    blocks_produced: int = 0
    blocks_applied: int = 0
    """Blocks from peers (gossip or sync) verified and applied."""
    blocks_known: int = 0
    """Blocks from peers at or below the tip (already applied): ignored."""
    blocks_refused: int = 0
    """Blocks from peers that broke a rule (:class:`BlockInvalidError`)."""
    txs_accepted: int = 0
    txs_known: int = 0
    """Transactions already pending (gossip from several peers): ignored."""
    txs_rejected: int = 0
    syncs: int = 0
    """Sync runs that applied at least one block."""
    peers_penalized: int = 0


class LedgerService(GossipAndSync, ClientQueries):
    """One node's ledger on the network. Start it with :func:`serve_ledger`."""

    def __init__(
        self,
        rpc: RpcNode,
        chain: Chain,
        identity: Identity,
        nursery: trio.Nursery,
        *,
        peers: Iterable[PeerAddress] = (),
        clock: Callable[[], float] = time.time,
        request_timeout: float = 10.0,
        status_interval: float | None = None,
    ) -> None:
        self.rpc = rpc
        self.chain = chain
        self.identity = identity
        self.clock = clock
        self.request_timeout = request_timeout
        genesis = chain.genesis
        self.status_interval = (
            status_interval if status_interval is not None else 3.0 * genesis.block_time
        )
        self.is_validator = identity.public_key in genesis.validators
        self._validators = frozenset(genesis.validators)
        self._rng = random.Random()
        self.stats = LedgerStats()
        self.synced = trio.Event()
        """Set once the start-up sync has asked every peer (reachable or not)."""
        self._nursery = nursery
        self._lock = trio.Lock()
        self._closed = False
        self._tip_changed = trio.Event()
        self._peers: dict[bytes, PeerAddress] = {}
        self._learned: set[bytes] = set()
        self._down_until: dict[bytes, float] = {}
        self._sync_lock = trio.Lock()
        self._listeners: list[AppliedListener] = []
        self._subscriptions: list[trio.MemorySendChannel[AppliedBlock]] = []
        for peer in peers:
            self.add_peer(peer)
        rpc.route("ledger.tx", self.handle_tx)
        rpc.route("ledger.block", self.handle_block)
        rpc.route_sync("ledger.status", self.handle_status)
        rpc.route_sync("ledger.get_blocks", self.handle_get_blocks)
        rpc.route("ledger.submit", self.handle_submit)
        rpc.route("ledger.account", self.handle_account)
        rpc.route("ledger.get_tx", self.handle_get_tx)
        rpc.route_sync("ledger.get_block", self.handle_get_block)
        rpc.route_sync("ledger.work", self.handle_work)
        rpc.route_sync("ledger.listing", self.handle_listing)
        rpc.route_sync("ledger.contracts", self.handle_contracts)

    # -- apply, then act ---------------------------------------------------------------

    def on_applied(self, listener: AppliedListener) -> None:
        """Call ``listener`` with every block this node commits (produced, gossiped
        or synced), in height order, right after its commit and before the next.
        It must not block (start a task for I/O); an exception it raises is logged."""
        self._listeners.append(listener)

    def subscribe(self, buffer: int = 64) -> trio.MemoryReceiveChannel[AppliedBlock]:
        """A channel of every committed block, in order. A subscriber that falls
        ``buffer`` blocks behind is closed (its iteration ends): it re-derives
        what it missed from the chain's state. Closed too when the service stops."""
        send, receive = trio.open_memory_channel[AppliedBlock](buffer)
        self._subscriptions.append(send)
        return receive

    def _committed(self, applied: AppliedBlock) -> None:
        self._tip_changed.set()
        self._tip_changed = trio.Event()
        for listener in list(self._listeners):
            try:
                listener(applied)
            except Exception:  # a subsystem's bug must not stop the chain
                log.exception("a listener of block %d failed", applied.height)
        for send in list(self._subscriptions):
            try:
                send.send_nowait(applied)
            except trio.WouldBlock:
                log.warning("a block subscriber fell behind at block %d: closed", applied.height)
                send.close()
                self._subscriptions.remove(send)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscriptions.remove(send)

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerStoppedError

    async def _apply(self, raw: bytes) -> AppliedBlock:
        """Verify and apply one block from a peer. Raises the chain's
        BlockNotNextError / BlockInvalidError (nothing changed)."""
        async with self._lock:
            self._check_open()
            with trio.CancelScope(shield=True):
                applied = await trio.to_thread.run_sync(
                    self.chain.verify_and_apply, raw, self.clock()
                )
                self.stats.blocks_applied += 1
                self._committed(applied)
        return applied

    async def produce(self) -> AppliedBlock | None:
        """Produce the next block now if it is this node's to produce (else None),
        and gossip it. The producer loop calls this on schedule."""
        async with self._lock:
            if self._closed or self.chain.next_proposer() != self.identity.public_key:
                return None
            with trio.CancelScope(shield=True):
                applied = await trio.to_thread.run_sync(
                    self.chain.produce_block, self.identity, self.clock()
                )
                self.stats.blocks_produced += 1
                self._committed(applied)
        log.debug("produced block %d (%d txs)", applied.height, len(applied.tx_ids))
        self._gossip(NewBlock(encode_block(applied.block)), None)
        return applied

    async def submit(self, raw: bytes, *, source: bytes | None = None) -> VerifiedTx:
        """Admit a transaction to the mempool and gossip it to every peer but
        ``source`` (:class:`TxRejectedError` with a reason: nothing changed)."""
        async with self._lock:
            self._check_open()
            try:
                vtx = self.chain.submit_tx(raw)
            except TxRejectedError as e:
                if e.reason == "duplicate":
                    self.stats.txs_known += 1
                else:
                    self.stats.txs_rejected += 1
                raise
        self.stats.txs_accepted += 1
        self._relay_tx(NewTx(raw), source)
        return vtx

    # -- producing ---------------------------------------------------------------------

    async def _produce_loop(self) -> None:
        """Strict rotation: block h is ``validators[h mod n]``'s, due ``block_time``
        seconds after its parent's time. A validator waits for its turn (the tip
        moving to the height before its own) and then for the due time."""
        me = self.identity.public_key
        block_time = self.chain.genesis.block_time
        while True:
            changed = self._tip_changed
            if self.chain.next_proposer() != me:
                await changed.wait()
                continue
            delay = self.chain.tip.time + block_time - self.clock()
            if delay <= 0:
                if await self.produce() is None:  # the tip moved meanwhile
                    await changed.wait()
                continue
            with trio.move_on_after(delay):
                await changed.wait()

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Sync from the peers, then produce (a validator) and poll peers'
        status every ``status_interval`` seconds, until cancelled."""
        await self.sync_with_peers()
        self.synced.set()
        async with trio.open_nursery() as nursery:
            if self.is_validator:
                nursery.start_soon(self._produce_loop)
            nursery.start_soon(self._poll_loop)

    async def aclose(self) -> None:
        """Stop touching the chain (waits for a block being applied to finish)."""
        with trio.CancelScope(shield=True):
            async with self._lock:
                self._closed = True
        for send in self._subscriptions:
            send.close()
        self._subscriptions.clear()


async def serve_ledger(
    rpc: RpcNode,
    chain: Chain,
    identity: Identity,
    *,
    peers: Iterable[PeerAddress] = (),
    clock: Callable[[], float] = time.time,
    request_timeout: float = 10.0,
    status_interval: float | None = None,
    task_status: trio.TaskStatus[LedgerService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the ledger of ``chain`` on ``rpc`` until cancelled: routes the
    ``ledger.*`` messages, reports the :class:`LedgerService` as started, then
    syncs from ``peers`` and (if ``identity`` is a validator) produces. When it
    returns, the chain is no longer used: close it then."""
    async with trio.open_nursery() as nursery:
        service = LedgerService(
            rpc,
            chain,
            identity,
            nursery,
            peers=peers,
            clock=clock,
            request_timeout=request_timeout,
            status_interval=status_interval,
        )
        try:
            nursery.start_soon(service.run)
            task_status.started(service)
            await trio.sleep_forever()
        finally:
            await service.aclose()


@asynccontextmanager
async def open_ledger_node(
    chain: Chain,
    identity: Identity,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    peers: Iterable[PeerAddress] = (),
    limits: Limits | None = None,
    clock: Callable[[], float] = time.time,
    request_timeout: float = 10.0,
    status_interval: float | None = None,
) -> AsyncIterator[LedgerService]:
    """A listening node that runs only the ledger of ``chain`` (which the caller
    opens, and closes after the block)."""
    async with open_rpc_node(identity, limits=limits or Limits()) as rpc:
        await rpc.listen(host, port)
        async with trio.open_nursery() as nursery:
            service: LedgerService = await nursery.start(
                partial(
                    serve_ledger,
                    rpc,
                    chain,
                    identity,
                    peers=peers,
                    clock=clock,
                    request_timeout=request_timeout,
                    status_interval=status_interval,
                )
            )
            try:
                yield service
            finally:
                nursery.cancel_scope.cancel()


__all__ = [
    "BLOCK_EXCUSED",
    "BLOCK_FANOUT",
    "RETRY_AFTER",
    "TX_FANOUT",
    "TX_FAULTS",
    "AppliedListener",
    "LedgerService",
    "LedgerStats",
    "LedgerStoppedError",
    "Peer",
    "open_ledger_node",
    "serve_ledger",
]
