"""The ledger among its peers: gossip and sync.

A part of :class:`~storenode.net.ledger.LedgerService` (a mixin over the
service's state; :class:`_Node` is what it uses). It keeps the peers (the
configured ones, and those that told us their status), relays new
transactions and blocks (to the validators and a few others at random:
:data:`TX_FANOUT`, :data:`BLOCK_FANOUT`),
penalizes peers that break the rules, asks peers their status and syncs the
blocks it lacks, and answers the peer-to-peer requests: ``ledger.tx``,
``ledger.block``, ``ledger.status`` and ``ledger.get_blocks``.
Spec: docs/specs/ledger.md, "Gossip and sync".
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Protocol

import msgspec
import trio

from contracts import VerifiedTx
from storenode.ledger import (
    AppliedBlock,
    BlockInvalidError,
    BlockNotNextError,
    Chain,
    TxRejectedError,
)
from storenode.ledger.messages import (
    Blocks,
    ChainStatus,
    GetBlocks,
    GetStatus,
    NewBlock,
    NewTx,
    chain_status,
    sync_reply,
)
from storenode.net.errors import ConnectionLostError, LedgerStoppedError, NetError
from storenode.net.peer import PeerConnection
from storenode.net.rpc import PeerAddress, RpcNode
from storenode.wire.errors import WireError

if TYPE_CHECKING:
    from storenode.net.ledger import LedgerStats

log = logging.getLogger("storenode.net.ledger")
"""The ledger service's logger: its lines carry one name whichever part of it speaks."""

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
BLOCK_FANOUT = 4
"""Peers other than validators that a node relays a block from gossip to. The
producer sends each block to every one of its peers; a relay sends it on to
every validator among its peers (the next producer must have it to produce on
time) and to four others picked at random, which do the same once: with each
relaying to four, about 98% of the nodes the producer does not reach are
reached (π = 1 − e^(−4π)). A node a block missed sees the next one ahead of
its tip and syncs from its sender, or syncs at its next status poll (every 3
block times). Relaying each block to every peer cost n·(n−1) messages per
block over n nodes that are all each other's peers, every block time."""


class _Node(Protocol):
    """What gossip and sync use of the service (:class:`~storenode.net.ledger.LedgerService`)."""

    rpc: RpcNode
    chain: Chain
    request_timeout: float
    status_interval: float
    stats: LedgerStats
    _validators: frozenset[bytes]
    _rng: random.Random
    _nursery: trio.Nursery
    _closed: bool
    _peers: dict[bytes, PeerAddress]
    _learned: set[bytes]
    _down_until: dict[bytes, float]
    _sync_lock: trio.Lock

    def _check_open(self) -> None: ...

    async def _apply(self, raw: bytes) -> AppliedBlock: ...

    async def submit(self, raw: bytes, *, source: bytes | None = None) -> VerifiedTx: ...

    def gossip_peers(self, exclude: bytes | None = None) -> list[bytes]: ...

    def _connected_learned(self) -> list[bytes]: ...

    def _status_peers(self) -> list[bytes]: ...

    async def _connection(self, key: bytes) -> PeerConnection: ...

    async def _request(self, key: bytes, body: msgspec.Struct) -> msgspec.Struct: ...

    async def _notify(self, key: bytes, body: msgspec.Struct) -> None: ...

    def _gossip(self, body: msgspec.Struct, exclude: bytes | None) -> None: ...

    def _relay(self, body: msgspec.Struct, exclude: bytes | None, fanout: int) -> None: ...

    def _penalize(self, key: bytes, why: str) -> None: ...

    def status(self) -> ChainStatus: ...

    def _same_chain(self, status: ChainStatus) -> bool: ...

    async def _ask_status(self, key: bytes, out: dict[bytes, ChainStatus]) -> None: ...

    async def sync_with_peers(self) -> int: ...

    async def sync_from(self, key: bytes, *, wait: bool = True) -> int: ...

    async def _apply_batch(self, key: bytes, blocks: Iterable[bytes]) -> int | None: ...

    def _refused(self, key: bytes, error: BlockInvalidError) -> None: ...


class GossipAndSync:
    """The service's peers, gossip and sync (a part of
    :class:`~storenode.net.ledger.LedgerService`)."""

    # -- peers -------------------------------------------------------------------------

    def add_peer(self: _Node, peer: PeerAddress) -> None:
        """Gossip to, and sync from, ``peer`` (dialled when needed)."""
        if peer.key != self.rpc.identity.public_key:
            self._peers[peer.key] = peer

    def gossip_peers(self: _Node, exclude: bytes | None = None) -> list[bytes]:
        """The keys gossip goes to: configured peers not recently unreachable, and
        nodes that told us their status while their connection is open."""
        now = trio.current_time()
        keys = [k for k in self._peers if self._down_until.get(k, 0.0) <= now]
        return [k for k in keys + self._connected_learned() if k != exclude]

    def _connected_learned(self: _Node) -> list[bytes]:
        return [
            k for k in self._learned if k not in self._peers and self.rpc.connection(k) is not None
        ]

    def _status_peers(self: _Node) -> list[bytes]:
        return [*self._peers, *self._connected_learned()]

    async def _connection(self: _Node, key: bytes) -> PeerConnection:
        conn = self.rpc.connection(key)
        if conn is not None:
            return conn
        peer = self._peers.get(key)
        if peer is None:
            raise ConnectionLostError(f"no connection to peer {key.hex()[:16]}…")
        return await self.rpc.connect(peer)

    async def _request(self: _Node, key: bytes, body: msgspec.Struct) -> msgspec.Struct:
        conn = await self._connection(key)
        return await conn.request(body, timeout=self.request_timeout)

    async def _notify(self: _Node, key: bytes, body: msgspec.Struct) -> None:
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

    def _gossip(self: _Node, body: msgspec.Struct, exclude: bytes | None) -> None:
        for key in self.gossip_peers(exclude):
            self._nursery.start_soon(self._notify, key, body)

    def _relay(self: _Node, body: msgspec.Struct, exclude: bytes | None, fanout: int) -> None:
        """Send ``body`` to every validator among the peers and to ``fanout`` other
        peers picked at random (never to ``exclude``, the peer it came from)."""
        peers = self.gossip_peers(exclude)
        validators = [k for k in peers if k in self._validators]
        others = [k for k in peers if k not in self._validators]
        if len(others) > fanout:
            others = self._rng.sample(others, fanout)
        for key in validators + others:
            self._nursery.start_soon(self._notify, key, body)

    def _relay_tx(self: _Node, body: NewTx, exclude: bytes | None) -> None:
        """Send a new transaction to every validator among the peers (they put it in
        blocks) and to :data:`TX_FANOUT` other peers picked at random, which do the
        same once: it spreads through the network in a few hops. Flooding it to every
        peer instead costs n·(n−1) messages per transaction over n nodes, and each
        host's proofs are transactions."""
        self._relay(body, exclude, TX_FANOUT)

    def _penalize(self: _Node, key: bytes, why: str) -> None:
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

    # -- syncing -----------------------------------------------------------------------

    def status(self: _Node) -> ChainStatus:
        return chain_status(self.chain.genesis, self.chain.tip)

    def _same_chain(self: _Node, status: ChainStatus) -> bool:
        genesis = self.chain.genesis
        return status.genesis_hash == genesis.hash and status.chain_id == genesis.chain_id

    async def _ask_status(self: _Node, key: bytes, out: dict[bytes, ChainStatus]) -> None:
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

    async def sync_with_peers(self: _Node) -> int:
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

    async def sync_from(self: _Node, key: bytes, *, wait: bool = True) -> int:
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

    async def _apply_batch(self: _Node, key: bytes, blocks: Iterable[bytes]) -> int | None:
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

    def _refused(self: _Node, key: bytes, error: BlockInvalidError) -> None:
        self.stats.blocks_refused += 1
        if error.reason in BLOCK_EXCUSED:
            log.info("dropped a block from %s: %s", key.hex()[:16], error)
        else:
            self._penalize(key, f"invalid block: {error}")

    async def _poll_loop(self: _Node) -> None:
        while True:
            await trio.sleep(self.status_interval)
            await self.sync_with_peers()

    # -- handlers: gossip and sync -----------------------------------------------------

    async def handle_tx(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> None:
        assert isinstance(body, NewTx)
        try:
            await self.submit(body.raw, source=conn.peer_key)
        except TxRejectedError as e:
            if e.reason in TX_FAULTS:
                self._penalize(conn.peer_key, f"relayed an invalid transaction: {e}")
        except LedgerStoppedError:
            return

    async def handle_block(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> None:
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
        self._relay(body, key, BLOCK_FANOUT)  # the producer sent it to all of its peers

    def handle_status(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> ChainStatus:
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

    def handle_get_blocks(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> Blocks:
        assert isinstance(body, GetBlocks)
        self._check_open()
        return sync_reply(self.chain.store.blocks_bytes(body.start, body.start + body.count))
