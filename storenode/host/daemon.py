"""The host daemon: one node that follows the ledger, routes the DHT and rents out disk.

A :class:`HostNode` lives on one :class:`~storenode.net.rpc.RpcNode` (one wire
port) next to the node's ledger service. :func:`storenode.node.open_host_node`
builds it; this module is what it does once built:

* **DHT**: the node's :class:`~storenode.net.dht.DhtService`, bootstrapped from
  the configured peers and maintained; the host's ad (:class:`HostAd`) under
  its bucket of the host directory (``hosts_key(host_bucket(key))``) at
  start, every :data:`AD_INTERVAL` seconds and soon after its free space
  changes; a provider record under ``providers_key(cid)`` for
  each work it holds chunks of; the manifests it keeps, in pieces.
* **Contracts** (``host.offer``, ``contract.propose``, ``manifest.put``,
  ``manifest.get``; the checks are :mod:`storenode.host.policy`'s): a signed
  proposal is written to the :class:`~storenode.host.book.HostBook` before the
  signature leaves, so the host never forgets a promise.
* **Chunks**: the :class:`~storenode.host.chunks.ChunkService` over the chunk
  store, taking uploads only for chunks a live contract lists and serving
  priced works only to buyers; its shard index is rebuilt from the book at
  start.
* **After each block** (apply, then act): the book catches up with the
  chain's state (:func:`~storenode.host.book.reconcile`: contracts open,
  close, or expire unopened, and the chunks nobody lists any more are
  deleted), the block's events are logged in an operator's words, and the
  :class:`~storenode.host.prover.Prover` answers the open windows.

:meth:`HostNode.status` is what the CLI, the HTTP API and the demo show.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final, cast

import msgspec
import trio

from contracts.encoding import format_tokens
from contracts.entries import PARAMS_KEY, Params
from contracts.events import (
    ContractClosed,
    Event,
    ProofAccepted,
    WindowSettled,
)
from contracts.reputation import reputation_of
from contracts.storage import contract_id
from contracts.token import balance_of
from contracts.tx import sign_terms
from storenode.client.content import ContentInfo, ContentSource, ContentUnavailableError
from storenode.config import Config, PeerSpec, format_size
from storenode.dht import Contact
from storenode.host.book import BookContract, BookState, HostBook, reconcile
from storenode.host.chunks import ChunkService
from storenode.host.earnings import totals
from storenode.host.messages import (
    ChunkPut,
    ContractAccepted,
    ContractProposal,
    ManifestData,
    ManifestGet,
    ManifestPut,
    ManifestStored,
    OfferRequest,
)
from storenode.host.policy import (
    ContractUploadPolicy,
    Offer,
    ReceiptReadPolicy,
    RefusedError,
    Standing,
    check_manifest,
    check_proposal,
    decode_terms,
    read_manifest,
)
from storenode.host.prover import Prover, TipView, short, view_of
from storenode.identity import Identity, address_hex, address_of, keccak256
from storenode.ledger import AppliedBlock, Chain
from storenode.net.dht import DhtService
from storenode.net.errors import RequestRefusedError
from storenode.net.ledger import LedgerService
from storenode.net.peer import PeerConnection
from storenode.net.rpc import RpcNode
from storenode.publish.records import (
    HOST_AD_TTL,
    MANIFEST_TTL,
    HostAd,
    encode_host_ad,
    encode_pointer,
    host_bucket,
    hosts_key,
    manifest_key,
    manifest_piece_key,
    providers_key,
    split_manifest,
)
from storenode.store.protocol import ChunkStore
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

AD_INTERVAL: Final = 300.0
"""Seconds between two publications of the host's ad (its TTL is an hour)."""
AD_SETTLE: Final = 1.0
"""Seconds the ad waits after a change of free space, so a burst of proposals
makes one publication."""


class HostNode:
    """A running node: ledger, DHT and (when ``store`` and ``book`` are given) the
    host's services. Attributes are public for the CLI, the API and tests."""

    def __init__(
        self,
        home: Path,
        config: Config,
        identity: Identity,
        chain: Chain,
        rpc: RpcNode,
        ledger: LedgerService,
        dht: DhtService,
        nursery: trio.Nursery,
        *,
        view: TipView,
        store: ChunkStore | None = None,
        book: HostBook | None = None,
        maintenance_interval: float = 60.0,
        ad_interval: float = AD_INTERVAL,
    ) -> None:
        self.home = home
        self.config = config
        self.identity = identity
        self.chain = chain
        self.rpc = rpc
        self.ledger = ledger
        self.dht = dht
        self.store = store
        self.book = book
        self.started = time.time()
        self.http_port: int | None = None
        """The HTTP API's port once it listens (None: not serving HTTP)."""
        self.content: ContentSource = _NoReader()
        """What the gateway reads works through (set with the HTTP API)."""
        self.maintenance_interval = maintenance_interval
        self.ad_interval = ad_interval
        self._nursery = nursery
        self._view = view
        self._events: list[Event] = []
        self._changed = trio.Event()
        self._changed.set()  # catch up with the first view at once
        self._book_lock = trio.Lock()
        self._ad_dirty = trio.Event()
        self._announced: set[bytes] = set()
        self._held: set[bytes] = set()  # works with a chunk stored at start: announced then
        self._missing: dict[bytes, set[bytes]] = {}  # contract id -> chunk ids not stored yet
        self.chunks: ChunkService | None = None
        self.prover: Prover | None = None
        if store is not None and book is not None:
            self.chunks = ChunkService(
                store,
                ContractUploadPolicy(book),
                read_policy=ReceiptReadPolicy(lambda: self._view.state),
                rng=random.Random(),
                on_stored=self._on_stored,
            )
            self.prover = Prover(ledger, store, identity, peers=config.peers)
        ledger.on_applied(self._on_applied)

    # -- reading -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.home.name

    @property
    def port(self) -> int:
        assert self.rpc.port is not None
        return self.rpc.port

    @property
    def height(self) -> int:
        return self._view.height

    @property
    def free(self) -> int:
        """Bytes of capacity not promised to pending or open contracts."""
        if self.book is None:
            return 0
        return max(0, self.config.capacity - self.book.promised_bytes)

    def ad_changed(self) -> None:
        """Publish the host's ad again soon (its free space or addresses changed)."""
        self._ad_dirty.set()

    def ad(self) -> HostAd:
        config = self.config
        return HostAd(
            key=self.identity.public_key,
            host=config.public_host or config.listen_host,
            port=self.port,
            http_port=self.http_port or 0,
            chain_id=self.chain.genesis.chain_id,
            price=str(config.price),
            collateral_bps=config.collateral_bps,
            max_windows=config.max_windows,
            free=self.free,
        )

    def status(self) -> dict[str, Any]:
        """What the node is doing, as JSON-able values (amounts: base units as
        decimal strings)."""
        state = self._view.state
        contracts = self.book.contracts() if self.book is not None else []
        t = totals(state, contracts)
        counts = {s.label: 0 for s in BookState}
        for c in contracts:
            counts[c.state.label] += 1
        store = self.store
        return {
            "name": self.name,
            "address": address_hex(self.identity.address),
            "public_key": self.identity.public_key.hex(),
            "height": self._view.height,
            "synced": self.ledger.synced.is_set(),
            "peers": self.rpc.connection_count,
            "host_enabled": self.book is not None,
            "capacity": self.config.capacity if store is not None else 0,
            "used": store.used_bytes if store is not None else 0,
            "free": self.free,
            "chunks": store.chunk_count if store is not None else 0,
            "contracts": counts,
            "windows": {"proven": t.windows_proven, "missed": t.windows_missed},
            "earned": str(int(t.earned)),
            "burned": str(int(t.burned)),
            "reputation": str(int(reputation_of(state, self.identity.address))),
            "works": [cid.hex() for cid in self.book.works()] if self.book is not None else [],
        }

    # -- starting ------------------------------------------------------------------------

    async def start(self) -> None:
        """Catch the book up with the chain, rebuild the shard index, route the
        host's messages and start the loops."""
        if self.chunks is not None:
            assert self.book is not None
            await self._reconcile(self._view)
            await trio.to_thread.run_sync(self._rebuild)
            self.chunks.route(self.rpc)
            self.rpc.route_sync("host.offer", self.handle_offer)
            self.rpc.route("contract.propose", self.handle_propose)
            self.rpc.route("manifest.put", self.handle_manifest_put)
            self.rpc.route_sync("manifest.get", self.handle_manifest_get)
            self._nursery.start_soon(self._follow)
        self._nursery.start_soon(self._network)

    def _rebuild(self) -> None:
        """Delete chunks no live contract lists (left by a crash between the book
        letting a contract go and the store deleting its chunks), index the rest."""
        assert self.store is not None and self.book is not None and self.chunks is not None
        orphans = [i for i in self.store.ids() if not self.book.lists(i)]
        for chunk_id in orphans:
            self.store.delete(chunk_id)
        live = self.book.live()
        for c in live:
            missing = self._missing[c.id] = set()
            for s in c.shards:
                if not self.store.has(s.chunk_id):
                    missing.add(s.chunk_id)
                    continue
                self._held.add(c.cid)
                why = self.chunks.index_shard(s.chunk_id, c.placement(s), c.chunk_size)
                if why is not None:
                    log.warning("cannot serve a chunk of contract %s: %s", short(c.id), why)
        if orphans:
            log.info("deleted %d chunk(s) that no contract lists", len(orphans))
        counts = {s: sum(c.state is s for c in self.book.contracts()) for s in BookState}
        log.info(
            "hosting %d pending and %d active contract(s) (%d closed); %d chunk(s), %s of %s "
            "used; %s free to offer at %s tokens per GiB per window",
            counts[BookState.PENDING],
            counts[BookState.ACTIVE],
            counts[BookState.CLOSED],
            self.store.chunk_count,
            format_size(self.store.used_bytes),
            format_size(self.config.capacity),
            format_size(self.free),
            format_tokens(self.config.price),
        )

    # -- the network -----------------------------------------------------------------------

    async def _network(self) -> None:
        """Join the DHT, then keep it and the host's records alive."""
        seeds = [Contact(p.key, p.host, p.port) for p in self.config.peers]
        if seeds:
            await self.dht.bootstrap(seeds)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.dht.maintain, self.maintenance_interval)
            if self.book is not None:
                for cid in sorted(self._held - self._announced):
                    self._announced.add(cid)
                    nursery.start_soon(self._announce, cid)
                for cid in self.book.manifests():
                    raw = self.book.manifest(cid)
                    if raw is not None:
                        nursery.start_soon(self._publish_manifest, cid, raw)
                nursery.start_soon(self._advertise)

    async def _advertise(self) -> None:
        while True:
            accepted = await self.dht.publish(
                hosts_key(host_bucket(self.identity.public_key)),
                encode_host_ad(self.ad()),
                ttl=HOST_AD_TTL,
            )
            log.debug("published the host ad (%s free) on %d node(s)", self.free, accepted)
            with trio.move_on_after(self.ad_interval):
                await self._ad_dirty.wait()
                await trio.sleep(AD_SETTLE)
            self._ad_dirty = trio.Event()

    async def _announce(self, cid: bytes) -> None:
        await self.dht.announce_provider(providers_key(cid))
        log.debug("announced this host as a provider of work %s", short(cid))

    async def _publish_manifest(self, cid: bytes, raw: bytes) -> None:
        pointer, pieces = split_manifest(raw)
        for i, piece in enumerate(pieces):
            await self.dht.publish(
                manifest_piece_key(pointer.manifest_hash, i), piece, ttl=MANIFEST_TTL
            )
        await self.dht.publish(manifest_key(cid), encode_pointer(pointer), ttl=MANIFEST_TTL)
        log.debug("published the manifest of work %s (%d piece(s))", short(cid), len(pieces))

    def _withdraw_manifest(self, cid: bytes, raw: bytes) -> None:
        pointer, pieces = split_manifest(raw)
        for i in range(len(pieces)):
            self.dht.withdraw(manifest_piece_key(pointer.manifest_hash, i))
        self.dht.withdraw(manifest_key(cid))

    # -- after each block ------------------------------------------------------------------

    def _on_applied(self, applied: AppliedBlock) -> None:
        # Runs inside the ledger's commit, with no other call into the chain: the
        # one moment the mempool may be read. Everything else happens in _follow.
        self._view = view_of(self.chain, self.identity.address)
        self._events.extend(applied.events)
        self._changed.set()

    async def _follow(self) -> None:
        assert self.prover is not None and self.book is not None
        self._nursery.start_soon(self._act_when_synced)
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            view, events = self._view, self._events
            self._events = []
            await self._reconcile(view)
            self._log_events(events)
            if self.ledger.synced.is_set():  # no proofs for the past blocks of a start-up sync
                active = [c for c in self.book.contracts() if c.state is BookState.ACTIVE]
                await self.prover.prove(view, active)

    async def _act_when_synced(self) -> None:
        await self.ledger.synced.wait()
        self._changed.set()  # prove what is open now, without waiting for the next block

    async def _reconcile(self, view: TipView) -> None:
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

    async def _release(self, contracts: Sequence[BookContract]) -> None:
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

    def _log_events(self, events: Sequence[Event]) -> None:
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

    # -- chunks ----------------------------------------------------------------------------

    def _on_stored(self, put: ChunkPut) -> None:
        assert self.book is not None
        cid = put.placement.cid
        if cid not in self._announced:
            self._announced.add(cid)
            self._nursery.start_soon(self._announce, cid)
        for c, _, _ in self.book.slots(put.chunk_id):
            missing = self._missing.get(c.id)
            if missing is None or put.chunk_id not in missing:
                continue
            missing.discard(put.chunk_id)
            if not missing:
                log.info(
                    "stored %d of %d chunks of contract %s (work %s)",
                    c.terms.chunk_count,
                    c.terms.chunk_count,
                    short(c.id),
                    short(c.cid),
                )

    # -- handlers ----------------------------------------------------------------------------

    def handle_offer(self, conn: PeerConnection, body: msgspec.Struct) -> HostAd:
        assert isinstance(body, OfferRequest)
        return self.ad()

    async def handle_propose(self, conn: PeerConnection, body: msgspec.Struct) -> ContractAccepted:
        assert isinstance(body, ContractProposal)
        book, store = self.book, self.store
        assert book is not None and store is not None
        try:
            terms = decode_terms(body.terms)
        except RefusedError as e:
            raise RequestRefusedError(e.code, str(e)) from None
        cid = contract_id(terms)
        async with self._book_lock:
            existing = book.get(cid)
            if existing is not None:
                if not existing.live:
                    raise RequestRefusedError(ErrorCode.REFUSED, f"contract {cid.hex()} is over")
                if (existing.cid, existing.k, existing.n, existing.shards) != (
                    body.cid,
                    body.k,
                    body.n,
                    body.shards,
                ):
                    raise RequestRefusedError(
                        ErrorCode.REFUSED, "these terms were signed here for other shards"
                    )
                return ContractAccepted(cid, sign_terms(self.identity, terms))
            view = self._view
            pending = sum(c.terms.collateral for c in book.live() if c.state is BookState.PENDING)
            standing = Standing(
                chain_id=self.chain.genesis.chain_id,
                height=view.height,
                params=cast(Params, view.state.get(PARAMS_KEY)),
                balance=balance_of(view.state, self.identity.address),
                collateral_pending=pending,
            )
            try:
                check_proposal(
                    body,
                    terms,
                    host_key=self.identity.public_key,
                    offer=Offer.of(self.config),
                    chain=standing,
                    free=self.free,
                    new_bytes=book.new_bytes(body.shards, terms.chunk_size),
                )
            except RefusedError as e:
                log.info("refused a contract from %s: %s", _who(terms.publisher), e)
                raise RequestRefusedError(e.code, str(e)) from None
            contract = BookContract(
                cid,
                terms,
                body.terms,
                body.cid,
                body.k,
                body.n,
                body.shards,
                BookState.PENDING,
                view.height,
            )
            await trio.to_thread.run_sync(book.add, contract)
            self._missing[cid] = await trio.to_thread.run_sync(
                lambda: {i for i in contract.chunk_ids if not store.has(i)}
            )
        log.info(
            "accepted contract %s from %s: %d chunks (%s), %d windows at %s tokens per window",
            short(cid),
            _who(terms.publisher),
            terms.chunk_count,
            format_size(contract.nbytes),
            terms.windows,
            format_tokens(terms.price_per_window),
        )
        self.ad_changed()
        return ContractAccepted(cid, sign_terms(self.identity, terms))

    async def handle_manifest_put(
        self, conn: PeerConnection, body: msgspec.Struct
    ) -> ManifestStored:
        assert isinstance(body, ManifestPut)
        book = self.book
        assert book is not None

        def check() -> bytes:
            m = read_manifest(body.raw)
            check_manifest(m, [c for c in book.live() if c.cid == m.cid])
            return m.cid

        try:
            cid = await trio.to_thread.run_sync(check)
        except RefusedError as e:
            raise RequestRefusedError(e.code, str(e)) from None
        digest = keccak256(body.raw)
        async with self._book_lock:
            old = book.manifest(cid)
            if old == body.raw:
                return ManifestStored(digest)
            await trio.to_thread.run_sync(book.put_manifest, cid, body.raw)
        if old is not None:
            self._withdraw_manifest(cid, old)
        log.info("keeping the manifest of work %s (%s)", short(cid), format_size(len(body.raw)))
        self._nursery.start_soon(self._publish_manifest, cid, body.raw)
        return ManifestStored(digest)

    def handle_manifest_get(self, conn: PeerConnection, body: msgspec.Struct) -> ManifestData:
        assert isinstance(body, ManifestGet)
        assert self.book is not None
        raw = self.book.manifest(body.cid)
        if raw is None:
            raise RequestRefusedError(
                ErrorCode.NOT_FOUND, f"no manifest of work {body.cid.hex()} is kept here"
            )
        return ManifestData(raw)


class _NoReader:
    """The content source of a node that serves no gateway."""

    async def open(self, cid: bytes) -> ContentInfo:
        raise ContentUnavailableError("this node serves no gateway")

    async def read(self, cid: bytes, start: int, end: int) -> AsyncIterator[bytes]:
        raise ContentUnavailableError("this node serves no gateway")
        yield b""  # pragma: no cover - makes this an async generator


def _who(public_key: bytes) -> str:
    return address_hex(address_of(public_key))


async def start_http(nursery: trio.Nursery, node: HostNode, *, fee: int) -> int:
    """Start the HTTP API and gateway for ``node``; the port it listens on.

    The gateway reads works like ``storenode fetch`` does, as this node: a
    :class:`~storenode.client.fetch.Fetcher` over the node's own wire and DHT,
    asking its own ledger (over the wire, as any client would) and paying for a
    priced work from the node's wallet up to ``[client] spending_cap``. Raises
    :class:`storenode.api.HttpBindError` if the HTTP address cannot be bound."""
    from storenode.api import serve_api
    from storenode.client.fetch import Fetcher
    from storenode.client.ledger import LedgerClient

    config = node.config
    own = PeerSpec(node.identity.public_key, config.public_host or "127.0.0.1", node.port)
    ledger = LedgerClient(node.rpc, own, timeout=10.0, hint="the node's own ledger")
    node.content = Fetcher(
        node.rpc,
        node.dht,
        node.identity,
        nursery=nursery,
        ledger=ledger,
        spending_cap=config.spending_cap,
        fee=fee,
    )
    port: int = await nursery.start(serve_api, node, config.http_host, config.http_port)
    node.http_port = port
    node.ad_changed()
    return port


__all__ = ["AD_INTERVAL", "HostNode", "start_http"]
