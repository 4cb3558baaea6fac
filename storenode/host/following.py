"""After each block (apply, then act): the host follows the chain.

A part of :class:`~storenode.host.daemon.HostNode` (a mixin over the node's
state; :class:`_Node` is what it uses). Inside the ledger's commit the node
only takes the new tip's view and the block's events; then, in its own task,
the contract book catches up with the chain's state
(:func:`~storenode.host.book.reconcile`: contracts open, close, or expire
unopened, and the chunks nobody lists any more are deleted and their records
withdrawn), the block's events are logged in an operator's words, and, once
the start-up sync is done, the :class:`~storenode.host.prover.Prover`
answers the open windows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import trio

from contracts.encoding import format_tokens
from contracts.events import (
    ContractClosed,
    Event,
    ProofAccepted,
    WindowSettled,
)
from storenode.host.book import BookContract, BookState, HostBook, reconcile
from storenode.host.chunks import ChunkService
from storenode.host.prover import Prover, TipView, short, view_of
from storenode.identity import Identity
from storenode.ledger import AppliedBlock, Chain
from storenode.net.dht import DhtService
from storenode.net.ledger import LedgerService
from storenode.publish.records import providers_key
from storenode.store.protocol import ChunkStore

log = logging.getLogger("storenode.host.daemon")
"""The daemon's logger: its lines carry one name whichever part of it speaks."""


class _Node(Protocol):
    """What following the chain uses of the node (:class:`~storenode.host.daemon.HostNode`)."""

    chain: Chain
    identity: Identity
    ledger: LedgerService
    dht: DhtService
    store: ChunkStore | None
    book: HostBook | None
    chunks: ChunkService | None
    prover: Prover | None
    _nursery: trio.Nursery
    _view: TipView
    _events: list[Event]
    _changed: trio.Event
    _book_lock: trio.Lock
    _announced: set[bytes]
    _missing: dict[bytes, set[bytes]]

    def ad_changed(self) -> None: ...

    def _withdraw_manifest(self, cid: bytes, raw: bytes) -> None: ...

    async def _act_when_synced(self) -> None: ...

    async def _reconcile(self, view: TipView) -> None: ...

    async def _release(self, contracts: Sequence[BookContract]) -> None: ...

    def _log_events(self, events: Sequence[Event]) -> None: ...


class ChainFollowing:
    """The node's work after each block (a part of :class:`~storenode.host.daemon.HostNode`)."""

    def _on_applied(self: _Node, applied: AppliedBlock) -> None:
        # Runs inside the ledger's commit, with no other call into the chain: the
        # one moment the mempool may be read. Everything else happens in _follow.
        self._view = view_of(self.chain, self.identity.address)
        self._events.extend(applied.events)
        self._changed.set()

    async def _follow(self: _Node) -> None:
        assert self.prover is not None and self.book is not None
        self._nursery.start_soon(self._act_when_synced)
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            view, events = self._view, self._events
            self._events: list[Event] = []
            await self._reconcile(view)
            self._log_events(events)
            if self.ledger.synced.is_set():  # no proofs for the past blocks of a start-up sync
                active = [c for c in self.book.contracts() if c.state is BookState.ACTIVE]
                await self.prover.prove(view, active)

    async def _act_when_synced(self: _Node) -> None:
        await self.ledger.synced.wait()
        self._changed.set()  # prove what is open now, without waiting for the next block

    async def _reconcile(self: _Node, view: TipView) -> None:
        book = self.book
        assert book is not None
        async with self._book_lock:
            moves = reconcile(book.contracts(), view.state, view.height)
            if not moves:
                return
            changed = await trio.to_thread.run_sync(book.apply, moves)
            released = []
            for c in changed:
                if book.get(c.id) is None:
                    log.info(
                        "dropped contract %s: the publisher did not open it by block %d",
                        short(c.id),
                        c.terms.accept_until,
                    )
                    released.append(c)
                elif c.state is BookState.CLOSED:
                    log.info("contract %s is over: its chunks are let go", short(c.id))
                    released.append(c)
                else:
                    log.info(
                        "contract %s is open on the chain: proving %d window(s) of %d blocks",
                        short(c.id),
                        c.terms.windows,
                        c.terms.window_blocks,
                    )
            if released:
                await self._release(released)

    async def _release(self: _Node, contracts: Sequence[BookContract]) -> None:
        """Stop serving, and delete, the chunks of contracts the host let go,
        except those another live contract lists (at that slot, for the index)."""
        book, store, chunks, prover = self.book, self.store, self.chunks, self.prover
        assert book is not None and store is not None and chunks is not None
        assert prover is not None
        doomed: set[bytes] = set()
        for c in contracts:
            self._missing.pop(c.id, None)
            prover.forget(c.id)
            for s in c.shards:
                kept = {(k.cid, stripe, shard) for k, stripe, shard in book.slots(s.chunk_id)}
                if (c.cid, s.stripe, s.shard) not in kept:
                    chunks.forget(c.cid, s.stripe, s.shard)
                if not kept:
                    doomed.add(s.chunk_id)

        def delete() -> int:
            return sum(store.delete(i) for i in sorted(doomed) if not book.lists(i))

        deleted = await trio.to_thread.run_sync(delete)
        if deleted:
            log.info("deleted %d chunk(s) no contract lists any more", deleted)
        works = set(book.works())
        for cid in {c.cid for c in contracts} - works:
            self.dht.withdraw(providers_key(cid))
            self._announced.discard(cid)
            raw = book.manifest(cid)
            if raw is not None:
                self._withdraw_manifest(cid, raw)
                await trio.to_thread.run_sync(book.delete_manifest, cid)
        self.ad_changed()

    def _log_events(self: _Node, events: Sequence[Event]) -> None:
        book, prover = self.book, self.prover
        assert book is not None and prover is not None
        for e in events:
            if not isinstance(e, WindowSettled | ProofAccepted | ContractClosed):
                continue
            if book.get(e.contract_id) is None:
                continue
            c = short(e.contract_id)
            if isinstance(e, ProofAccepted):
                chunk, seg = prover.asked.pop((e.contract_id, e.window), (-1, -1))
                where = f" (chunk {chunk}, segment {seg})" if chunk >= 0 else ""
                log.info("proved window %d of contract %s%s", e.window, c, where)
            elif isinstance(e, WindowSettled) and e.proven:
                log.info(
                    "window %d of contract %s settled: earned %s, burned %s",
                    e.window,
                    c,
                    format_tokens(e.paid),
                    format_tokens(e.burned),
                )
            elif isinstance(e, WindowSettled):
                why = prover.failures.pop((e.contract_id, e.window), "no proof landed in time")
                log.warning(
                    "missed window %d of contract %s: %s; %s tokens went back to the publisher",
                    e.window,
                    c,
                    why,
                    format_tokens(e.refunded),
                )
            else:
                penalty = f", {format_tokens(e.penalty)} burned as a penalty" if e.penalty else ""
                log.info(
                    "contract %s closed: %d window(s) missed, collateral of %s returned%s",
                    c,
                    e.windows_missed,
                    format_tokens(e.returned),
                    penalty,
                )
