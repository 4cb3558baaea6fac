"""The host daemon: one node that follows the ledger, routes the DHT and rents out disk.

A :class:`HostNode` lives on one :class:`~storenode.net.rpc.RpcNode` (one wire
port) next to the node's ledger service. :func:`storenode.node.open_host_node`
builds it; this module holds what it is made of and how it starts:

* **State**: the node's services and the host's (when a chunk store and a
  contract book are given): the :class:`~storenode.host.chunks.ChunkService`
  over the chunk store, taking uploads only for chunks a live contract lists
  and serving priced works only to buyers, its shard index rebuilt from the
  book at start; the :class:`~storenode.host.prover.Prover`.
* **Start**: catch the book up with the chain, rebuild the shard index, route
  the host's messages, start the loops.
* :meth:`HostNode.status`, what the CLI, the HTTP API and the demo show, and
  :func:`start_http`, the HTTP API and gateway.

What the node does once started is in its parts, one module each:

* :mod:`~storenode.host.announcing` (**DHT**): the node's
  :class:`~storenode.net.dht.DhtService`, bootstrapped from the configured
  peers and maintained; the host's ad, its provider records and the
  manifests it keeps;
* :mod:`~storenode.host.handlers` (**Contracts**): ``host.offer``,
  ``contract.propose``, ``manifest.put``, ``manifest.get``;
* :mod:`~storenode.host.following` (**After each block**, apply, then act):
  the book catches up with the chain's state, the block's events are logged
  in an operator's words, and the prover answers the open windows.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from contracts.encoding import format_tokens
from contracts.events import Event
from contracts.reputation import reputation_of
from storenode.client.content import ContentInfo, ContentSource, ContentUnavailableError
from storenode.coding.merkle import MerkleTree
from storenode.config import Config, PeerSpec, format_size
from storenode.host.announcing import AD_INTERVAL, Announcing
from storenode.host.book import BookState, HostBook
from storenode.host.chunks import ChunkService
from storenode.host.earnings import totals
from storenode.host.following import ChainFollowing
from storenode.host.handlers import ContractHandlers
from storenode.host.messages import ChunkPut, RepairRequest
from storenode.host.policy import ContractUploadPolicy, ReceiptReadPolicy, check_repair
from storenode.host.prover import Prover, TipView, short
from storenode.host.repair import Repairer, Slot, stripe_as_host
from storenode.host.scrubber import Scrubber
from storenode.identity import Identity, address_hex
from storenode.ledger import Chain
from storenode.net.dht import DhtService
from storenode.net.ledger import LedgerService
from storenode.net.rpc import RpcNode
from storenode.publish.manifest import ManifestError, decode_manifest
from storenode.store.protocol import ChunkStore

if TYPE_CHECKING:
    from storenode.client.fetch import Fetcher

log = logging.getLogger(__name__)


class HostNode(Announcing, ChainFollowing, ContractHandlers):
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
        self.local_socket: Path | None = None
        """The home's local socket once it listens (docs/specs/local-socket.md)."""
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
        self.scrubber: Scrubber | None = None
        self.repairer: Repairer | None = None
        """Rebuilds damaged chunks once :func:`start_repair` started it."""
        if store is not None and book is not None:
            self.chunks = ChunkService(
                store,
                ContractUploadPolicy(book),
                read_policy=ReceiptReadPolicy(lambda: self._view.state),
                repair_check=self._repair_check,
                rng=random.Random(),
                on_stored=self._on_stored,
            )
            self.prover = Prover(ledger, store, identity, peers=config.peers)
            self.scrubber = Scrubber(
                store, config.scrub_rate, works_of=self._works_of, on_damaged=self._on_damaged
            )
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
            "damaged": len(self.scrubber.damaged) if self.scrubber is not None else 0,
            "repaired": self.repairer.repaired if self.repairer is not None else 0,
            "repair_waiting": self.repairer.waiting if self.repairer is not None else 0,
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
            assert self.scrubber is not None
            self._nursery.start_soon(self.scrubber.run)
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

    # -- chunks ----------------------------------------------------------------------------

    def _on_damaged(self, chunk_id: bytes) -> None:
        if self.repairer is not None:
            self.repairer.request(chunk_id)

    def _slots_of(self, chunk_id: bytes) -> list[Slot]:
        """Where live contracts list ``chunk_id``, with what proves it to other hosts
        (the contract, the chunk's place in it and its path to the contract's root)."""
        assert self.book is not None
        slots = []
        for c, stripe, shard in self.book.slots(chunk_id):
            index = next(
                i for i, s in enumerate(c.shards) if (s.stripe, s.shard) == (stripe, shard)
            )
            path = MerkleTree(c.chunk_ids).proof(index).path
            slots.append(Slot(c.cid, stripe, shard, c.id, index, path))
        return slots

    def _repair_check(self, requester_key: bytes, req: RepairRequest) -> str | None:
        """Why another host's ``chunk.repair`` is refused (in a worker thread)."""
        assert self.book is not None
        raw = self.book.manifest(req.cid)
        try:
            manifest = None if raw is None else decode_manifest(raw)
        except ManifestError:
            manifest = None
        return check_repair(self._view.state, manifest, requester_key, req)

    def _works_of(self, chunk_id: bytes) -> str:
        """The works a chunk belongs to, for a log line."""
        if self.chunks is None:
            return ""
        return ", ".join(short(cid) for cid in sorted(self.chunks.index.works_of(chunk_id)))

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


class _NoReader:
    """The content source of a node that serves no gateway."""

    async def open(self, cid: bytes) -> ContentInfo:
        raise ContentUnavailableError("this node serves no gateway")

    async def read(
        self, cid: bytes, start: int, end: int, *, bulk: bool = False
    ) -> AsyncIterator[bytes]:
        raise ContentUnavailableError("this node serves no gateway")
        yield b""  # pragma: no cover - makes this an async generator


def _reader(nursery: trio.Nursery, node: HostNode, *, fee: int, spending_cap: int) -> Fetcher:
    """A :class:`~storenode.client.fetch.Fetcher` that reads works as this node, over its
    own wire and DHT, asking its own ledger over the wire as any client would."""
    from storenode.client.fetch import Fetcher
    from storenode.client.ledger import LedgerClient

    config = node.config
    own = PeerSpec(node.identity.public_key, config.public_host or "127.0.0.1", node.port)
    ledger = LedgerClient(node.rpc, own, timeout=10.0, hint="the node's own ledger")
    return Fetcher(
        node.rpc,
        node.dht,
        node.identity,
        nursery=nursery,
        ledger=ledger,
        spending_cap=spending_cap,
        fee=fee,
    )


def start_repair(nursery: trio.Nursery, node: HostNode, *, fee: int) -> None:
    """Have ``node`` rebuild the chunks its scrub finds damaged (:mod:`storenode.host.repair`),
    reading their stripes with a fetcher of its own that pays for nothing (a priced
    work's, as the chunk's host: ``chunk.repair``)."""
    assert node.store is not None and node.book is not None and node.scrubber is not None
    reader = _reader(nursery, node, fee=fee, spending_cap=0)
    node.repairer = Repairer(
        node.store,
        reader,
        slots_of=node._slots_of,
        manifest_of=node.book.manifest,
        on_repaired=node.scrubber.healed,
        as_host=stripe_as_host(node.rpc, reader.providers, node.identity.public_key),
    )
    nursery.start_soon(node.repairer.run)


async def start_http(nursery: trio.Nursery, node: HostNode, *, fee: int) -> int:
    """Start the HTTP API and gateway for ``node``; the port it listens on.

    The gateway reads works like ``storenode fetch`` does, as this node: a
    :class:`~storenode.client.fetch.Fetcher` over the node's own wire and DHT,
    asking its own ledger (over the wire, as any client would) and paying for a
    priced work from the node's wallet up to ``[client] spending_cap``. Raises
    :class:`storenode.api.HttpBindError` if the HTTP address cannot be bound."""
    from storenode.api import serve_api

    config = node.config
    node.content = _reader(nursery, node, fee=fee, spending_cap=config.spending_cap)
    port: int = await nursery.start(serve_api, node, config.http_host, config.http_port)
    node.http_port = port
    node.ad_changed()
    await _start_local_socket(nursery, node)
    return port


async def _start_local_socket(nursery: trio.Nursery, node: HostNode) -> None:
    """Serve the home's commands on ``<home>/node.sock`` (:mod:`storenode.api.local`),
    so ``storenode fetch`` hands the node its file; without it they read through
    the gateway, which is slower but the same."""
    from storenode.api.local import LocalSocketError, serve_local
    from storenode.client.local_protocol import SOCKET_NAME

    try:
        node.local_socket = await nursery.start(serve_local, node.content, node.home / SOCKET_NAME)
    except LocalSocketError as exc:
        log.warning("No local socket (commands read through the gateway instead): %s", exc)


__all__ = ["AD_INTERVAL", "HostNode", "start_http", "start_repair"]
