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

import msgspec
import trio

from contracts import VerifiedTx, decode_tx, tx_id
from contracts.errors import TxRejectedError as ContractTxRejectedError
from storenode.identity import Identity
from storenode.ledger import (
    AppliedBlock,
    BlockInvalidError,
    BlockNotNextError,
    Chain,
    TxRejectedError,
    encode_block,
)
from storenode.ledger.messages import (
    AccountInfo,
    BlockInfo,
    Blocks,
    ChainStatus,
    ContractList,
    GetAccount,
    GetBlock,
    GetBlocks,
    GetContracts,
    GetListing,
    GetStatus,
    GetTx,
    GetWork,
    ListingInfo,
    NewBlock,
    NewTx,
    Submitted,
    SubmitTx,
    TxInfo,
    WorkReply,
    account_info,
    chain_status,
    contract_list,
    listing_info,
    sync_reply,
    work_reply,
)
from storenode.net.errors import ConnectionLostError, NetError, RequestRefusedError
from storenode.net.peer import Limits, PeerConnection
from storenode.net.rpc import PeerAddress, RpcNode, open_rpc_node
from storenode.wire.errors import WireError
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

TX_FAULTS = frozenset({"malformed", "oversize", "bad_signature"})
"""Rejections of a gossiped transaction that no honest peer can cause (it
checked the transaction before relaying it): the peer is penalized."""
BLOCK_EXCUSED = frozenset({"time_in_future"})
"""Refusals of a block that an honest peer can cause (its clock is ahead of
ours): the block is dropped, the peer is not penalized."""
RETRY_AFTER = 10.0
"""Seconds a configured peer that could not be reached is left out of gossip
(the status poll still asks it)."""
TX_FANOUT = 3
"""Peers other than validators that a node relays each new transaction to.
Only validators need a transaction (to put it in a block); they get it from
the first node that has it among its peers. The random relays carry it to
nodes that have validators among their peers: with each node relaying once to
three, about 94% of all nodes see each transaction (the fraction π reached
solves π = 1 − e^(−3π)), and every one of them that knows a validator hands
it on."""

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


class LedgerStoppedError(RequestRefusedError):
    """The ledger service has stopped (its chain may be closed); a request that
    meets it is answered ``UNAVAILABLE``."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, "the ledger service has stopped")


class LedgerService:
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

    # -- peers -------------------------------------------------------------------------

    def add_peer(self, peer: PeerAddress) -> None:
        """Gossip to, and sync from, ``peer`` (dialled when needed)."""
        if peer.key != self.rpc.identity.public_key:
            self._peers[peer.key] = peer

    def gossip_peers(self, exclude: bytes | None = None) -> list[bytes]:
        """The keys gossip goes to: configured peers not recently unreachable, and
        nodes that told us their status while their connection is open."""
        now = trio.current_time()
        keys = [k for k in self._peers if self._down_until.get(k, 0.0) <= now]
        return [k for k in keys + self._connected_learned() if k != exclude]

    def _connected_learned(self) -> list[bytes]:
        return [
            k for k in self._learned if k not in self._peers and self.rpc.connection(k) is not None
        ]

    def _status_peers(self) -> list[bytes]:
        return [*self._peers, *self._connected_learned()]

    async def _connection(self, key: bytes) -> PeerConnection:
        conn = self.rpc.connection(key)
        if conn is not None:
            return conn
        peer = self._peers.get(key)
        if peer is None:
            raise ConnectionLostError(f"no connection to peer {key.hex()[:16]}…")
        return await self.rpc.connect(peer)

    async def _request(self, key: bytes, body: msgspec.Struct) -> msgspec.Struct:
        conn = await self._connection(key)
        return await conn.request(body, timeout=self.request_timeout)

    async def _notify(self, key: bytes, body: msgspec.Struct) -> None:
        try:
            conn = await self._connection(key)
            await conn.notify(body)
        except NetError as e:
            if key in self._peers:
                if key not in self._down_until:
                    peer = self._peers[key]
                    log.warning(
                        "peer %s at %s:%d is unreachable (%s); retrying every %.0f s",
                        key.hex()[:16],
                        peer.host,
                        peer.port,
                        e,
                        RETRY_AFTER,
                    )
                self._down_until[key] = trio.current_time() + RETRY_AFTER
            else:
                log.debug("gossip to %s failed: %s", key.hex()[:16], e)

    def _gossip(self, body: msgspec.Struct, exclude: bytes | None) -> None:
        for key in self.gossip_peers(exclude):
            self._nursery.start_soon(self._notify, key, body)

    def _relay_tx(self, body: NewTx, exclude: bytes | None) -> None:
        """Send a new transaction to every validator among the peers (they put it in
        blocks) and to :data:`TX_FANOUT` other peers picked at random, which do the
        same once: it spreads through the network in a few hops. Flooding it to every
        peer instead costs n·(n−1) messages per transaction over n nodes, and each
        host's proofs are transactions."""
        peers = self.gossip_peers(exclude)
        validators = [k for k in peers if k in self._validators]
        others = [k for k in peers if k not in self._validators]
        if len(others) > TX_FANOUT:
            others = self._rng.sample(others, TX_FANOUT)
        for key in validators + others:
            self._nursery.start_soon(self._notify, key, body)

    def _penalize(self, key: bytes, why: str) -> None:
        """Count a peer's misbehaviour against it (as a protocol violation) and
        disconnect it."""
        self.stats.peers_penalized += 1
        banned = self.rpc.scores.violation(key, trio.current_time())
        log.warning(
            "disconnecting peer %s: %s%s", key.hex()[:16], why, " (banned)" if banned else ""
        )
        self._learned.discard(key)
        conn = self.rpc.connection(key)
        if conn is not None:
            self._nursery.start_soon(conn.aclose)

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

    # -- syncing -----------------------------------------------------------------------

    def status(self) -> ChainStatus:
        return chain_status(self.chain.genesis, self.chain.tip)

    def _same_chain(self, status: ChainStatus) -> bool:
        genesis = self.chain.genesis
        return status.genesis_hash == genesis.hash and status.chain_id == genesis.chain_id

    async def _ask_status(self, key: bytes, out: dict[bytes, ChainStatus]) -> None:
        try:
            reply = await self._request(key, GetStatus(self.status()))
        except (NetError, WireError) as e:
            log.debug("status of %s: %s", key.hex()[:16], e)
            return
        assert isinstance(reply, ChainStatus)
        self._down_until.pop(key, None)
        if not self._same_chain(reply):
            log.warning("peer %s runs another chain (%s)", key.hex()[:16], reply.chain_id)
            self._peers.pop(key, None)
            self._learned.discard(key)
            return
        out[key] = reply

    async def sync_with_peers(self) -> int:
        """Ask every peer its status and sync from the highest ones ahead of us;
        how many blocks were applied."""
        statuses: dict[bytes, ChainStatus] = {}
        async with trio.open_nursery() as nursery:
            for key in self._status_peers():
                nursery.start_soon(self._ask_status, key, statuses)
        applied = 0
        for key, status in sorted(statuses.items(), key=lambda kv: -kv[1].height):
            if status.height > self.chain.height:
                applied += await self.sync_from(key)
        return applied

    async def sync_from(self, key: bytes, *, wait: bool = True) -> int:
        """Fetch and apply blocks from ``key`` (batches of ``ledger.get_blocks``
        from our tip + 1) until it has no more; how many were applied. One sync
        runs at a time: this one waits for a running one to end, or (``wait``
        false, as gossip-triggered syncs do) returns 0 at once."""
        if self._closed or (not wait and self._sync_lock.locked()):
            return 0
        applied = 0
        async with self._sync_lock:
            while not self._closed:
                try:
                    reply = await self._request(key, GetBlocks(self.chain.height + 1))
                except (NetError, WireError) as e:
                    log.info("sync from %s stopped: %s", key.hex()[:16], e)
                    break
                assert isinstance(reply, Blocks)
                got = await self._apply_batch(key, reply.blocks)
                if not got:  # nothing new (or the peer misbehaved)
                    break
                applied += got
        if applied:
            self.stats.syncs += 1
            log.info(
                "synced %d block%s from %s, now at %d",
                applied,
                "" if applied == 1 else "s",
                key.hex()[:16],
                self.chain.height,
            )
            raw = self.chain.store.block_bytes(self.chain.height)
            if raw is not None:  # announce the new tip: peers behind sync from us
                self._gossip(NewBlock(raw), key)
        return applied

    async def _apply_batch(self, key: bytes, blocks: Iterable[bytes]) -> int | None:
        """Apply a sync reply; the number applied, None if the peer misbehaved."""
        applied = 0
        for raw in blocks:
            try:
                await self._apply(raw)
            except BlockNotNextError as e:
                if e.ahead:  # not the blocks asked for
                    self._penalize(key, f"sync reply skips to block {e.height}")
                    return None
                self.stats.blocks_known += 1
                continue
            except BlockInvalidError as e:
                self._refused(key, e)
                return None
            except LedgerStoppedError:
                return None
            applied += 1
        return applied

    def _refused(self, key: bytes, error: BlockInvalidError) -> None:
        self.stats.blocks_refused += 1
        if error.reason in BLOCK_EXCUSED:
            log.info("dropped a block from %s: %s", key.hex()[:16], error)
        else:
            self._penalize(key, f"invalid block: {error}")

    async def _poll_loop(self) -> None:
        while True:
            await trio.sleep(self.status_interval)
            await self.sync_with_peers()

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

    # -- handlers: gossip and sync -----------------------------------------------------

    async def handle_tx(self, conn: PeerConnection, body: msgspec.Struct) -> None:
        assert isinstance(body, NewTx)
        try:
            await self.submit(body.raw, source=conn.peer_key)
        except TxRejectedError as e:
            if e.reason in TX_FAULTS:
                self._penalize(conn.peer_key, f"relayed an invalid transaction: {e}")
        except LedgerStoppedError:
            return

    async def handle_block(self, conn: PeerConnection, body: msgspec.Struct) -> None:
        assert isinstance(body, NewBlock)
        key = conn.peer_key
        try:
            await self._apply(body.raw)
        except BlockNotNextError as e:
            if e.ahead:
                self._nursery.start_soon(partial(self.sync_from, key, wait=False))
            else:
                self.stats.blocks_known += 1
            return
        except BlockInvalidError as e:
            self._refused(key, e)
            return
        except LedgerStoppedError:
            return
        self._gossip(body, key)

    def handle_status(self, conn: PeerConnection, body: msgspec.Struct) -> ChainStatus:
        assert isinstance(body, GetStatus)
        self._check_open()
        mine = self.status()
        sender = body.sender
        if sender is not None and self._same_chain(sender):
            key = conn.peer_key
            self._learned.add(key)
            self._down_until.pop(key, None)
            if sender.height > mine.height:
                self._nursery.start_soon(partial(self.sync_from, key, wait=False))
        return mine

    def handle_get_blocks(self, conn: PeerConnection, body: msgspec.Struct) -> Blocks:
        assert isinstance(body, GetBlocks)
        self._check_open()
        return sync_reply(self.chain.store.blocks_bytes(body.start, body.start + body.count))

    # -- handlers: clients ---------------------------------------------------------------

    async def handle_submit(self, conn: PeerConnection, body: msgspec.Struct) -> Submitted:
        assert isinstance(body, SubmitTx)
        self._check_open()
        try:
            vtx = await self.submit(body.raw)
        except TxRejectedError as e:
            return Submitted(_tx_id_of(body.raw), False, e.reason, e.message[:512])
        return Submitted(vtx.tx_id, True)

    async def handle_account(self, conn: PeerConnection, body: msgspec.Struct) -> AccountInfo:
        assert isinstance(body, GetAccount)
        async with self._lock:
            self._check_open()
            state = self.chain.state
            next_nonce = self.chain.mempool.next_nonce(body.address)
        return account_info(state, body.address, next_nonce=next_nonce)

    async def handle_get_tx(self, conn: PeerConnection, body: msgspec.Struct) -> TxInfo:
        assert isinstance(body, GetTx)
        async with self._lock:
            self._check_open()
            committed = self.chain.store.transaction(body.tx_id)
            pending = None if committed is not None else self.chain.mempool.get(body.tx_id)
        if committed is not None:
            raw, height, index = committed
            return TxInfo(found=True, height=height, index=index, raw=raw)
        if pending is not None:
            return TxInfo(found=False, pending=True, raw=pending.raw)
        return TxInfo(found=False)

    def handle_get_block(self, conn: PeerConnection, body: msgspec.Struct) -> BlockInfo:
        assert isinstance(body, GetBlock)
        self._check_open()
        raw = self.chain.store.block_bytes(body.height) if body.height else None
        return BlockInfo(False) if raw is None else BlockInfo(True, raw)

    def handle_work(self, conn: PeerConnection, body: msgspec.Struct) -> WorkReply:
        assert isinstance(body, GetWork)
        self._check_open()
        return work_reply(self.chain.state, body.fingerprint)

    def handle_listing(self, conn: PeerConnection, body: msgspec.Struct) -> ListingInfo:
        assert isinstance(body, GetListing)
        self._check_open()
        return listing_info(self.chain.state, body.fingerprint, body.buyer)

    def handle_contracts(self, conn: PeerConnection, body: msgspec.Struct) -> ContractList:
        assert isinstance(body, GetContracts)
        self._check_open()
        return contract_list(self.chain.state, body.address, body.role, body.offset)


def _tx_id_of(raw: bytes) -> bytes | None:
    try:
        return tx_id(decode_tx(raw).tx)
    except ContractTxRejectedError:
        return None


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
