"""The composition root: build a node's services from its home and run them.

Two ways to run a node share one set-up (:func:`_open_base`: read the home's
config, identity key and genesis, open the chain in ``<data_dir>/chain``,
listen on the wire) and the ledger (:func:`_start_ledger`:
:func:`storenode.net.ledger.serve_ledger` syncs, gossips, produces if the
node is a validator, answers clients, and every block is logged):

* :func:`run_ledger_node` (``storenode ledger``) runs nothing else;
* :func:`run_host` (``storenode host``) runs the host daemon
  (:func:`open_host_node`): the ledger, the DHT on the same wire port, and,
  when ``host.enabled``, the chunk store, the contract book and the services
  of :class:`storenode.host.daemon.HostNode`; then the HTTP API. Once it
  serves, it writes ``<home>/node.json`` (pid, name, address, public key,
  wire and HTTP addresses, start time) for launchers, and deletes it when it
  stops.

SIGINT or SIGTERM stops either cleanly: the services stop touching the chain
(a block being applied is finished first), connections close, a chunk or book
write in progress completes, the stores and the chain close, and the last
line logged is ``stopped at height N``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from storenode.coding.kernel import backend as gf_backend
from storenode.config import write_atomic
from storenode.dht import Contact, DhtNode
from storenode.groups import single
from storenode.home import Home, open_home
from storenode.homedir import READY_FILE
from storenode.host.book import BookError, HostBook
from storenode.host.daemon import AD_INTERVAL, HostNode, start_http, start_repair
from storenode.host.prover import view_of
from storenode.identity import Identity, address_hex
from storenode.ledger import AppliedBlock, Chain, Genesis, load_genesis
from storenode.net.dht import DhtService
from storenode.net.ledger import LedgerService, serve_ledger
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.store.disk import DiskChunkStore
from storenode.store.errors import StoreError

log = logging.getLogger(__name__)


class NodeError(Exception):
    """The node cannot start; the message says what to do."""


class ListenFailedError(NodeError):
    def __init__(self, host: str, port: int, why: str) -> None:
        super().__init__(
            f"cannot listen on {host}:{port} ({why}): another program (perhaps another "
            "node) uses that port; stop it, or set another wire.port in the config"
        )


class GenesisMissingError(NodeError):
    def __init__(self, path: Path, config_path: Path) -> None:
        super().__init__(
            f"no genesis file at {path}: copy the chain's genesis.json there, "
            f"or set ledger.genesis_file in {config_path}"
        )


class HttpListenFailedError(NodeError):
    """The HTTP API and gateway cannot listen (the message says what to change)."""


class AdvertiseMissingError(NodeError):
    def __init__(self, host: str, config_path: Path) -> None:
        super().__init__(
            f"the node listens on every interface ({host or 'all'}) and no peer can dial that: "
            f"set wire.advertise in {config_path} to the address other nodes reach it at"
        )


class HostStorageError(NodeError):
    """The chunk store or the contract book cannot be opened (the message of the
    store's own error, which says what to do)."""


def _txs(n: int) -> str:
    return "1 tx" if n == 1 else f"{n} txs"


class _BlockLog:
    """Logs each committed block: INFO once synced if it carries transactions or
    was produced here; DEBUG otherwise (an empty block a second would drown the
    log of a follower)."""

    def __init__(self, service: LedgerService, me: bytes) -> None:
        self.service = service
        self.me = me

    def __call__(self, applied: AppliedBlock) -> None:
        mine = applied.block.header.producer == self.me
        notable = self.service.synced.is_set() and (mine or bool(applied.tx_ids))
        level = logging.INFO if notable else logging.DEBUG
        produced = ", produced here" if mine else ""
        txs = _txs(len(applied.tx_ids))
        log.log(level, "block %d applied (%s%s)", applied.height, txs, produced)
        if applied.dropped:
            reasons = sorted({d.reason for d in applied.dropped})
            log.info(
                "dropped %d pending transaction(s) after block %d: %s",
                len(applied.dropped),
                applied.height,
                ", ".join(reasons),
            )


async def _report_synced(service: LedgerService, peers: int) -> None:
    await service.synced.wait()
    chain = service.chain
    log.info(
        "synced to %d (%s); state root %s…",
        chain.height,
        f"{peers} peer(s) configured" if peers else "no peers configured",
        chain.tip.state_root.hex()[:16],
    )
    if service.is_validator:
        n = len(chain.genesis.validators)
        log.info(
            "producing blocks every %d s as validator %d of %d",
            chain.genesis.block_time,
            chain.genesis.validators.index(service.identity.public_key) + 1,
            n,
        )


@dataclass(frozen=True, slots=True)
class _Loaded:
    home: Home
    identity: Identity
    genesis: Genesis


def _load(home_dir: Path, what: str) -> _Loaded:
    home = open_home(home_dir)
    config = home.config
    identity = home.identity()
    if not config.genesis_file.exists():
        raise GenesisMissingError(config.genesis_file, home.config_path)
    genesis = load_genesis(config.genesis_file)
    role = "validator" if identity.public_key in genesis.validators else "follower"
    log.info(
        "starting the %s of %s: chain %s, identity %s (%s)",
        what,
        home.root,
        genesis.chain_id,
        address_hex(identity.address),
        role,
    )
    return _Loaded(home, identity, genesis)


@dataclass(frozen=True, slots=True)
class _Base:
    home: Home
    identity: Identity
    chain: Chain
    rpc: RpcNode
    port: int


@asynccontextmanager
async def _open_base(loaded: _Loaded) -> AsyncIterator[_Base]:
    """The chain opened and the wire listening (no service started yet)."""
    config = loaded.home.config
    with Chain.open(config.chain_dir, loaded.genesis) as chain:
        log.info(
            "opened the chain in %s at height %d (state root %s…)",
            config.chain_dir,
            chain.height,
            chain.tip.state_root.hex()[:16],
        )
        async with open_rpc_node(loaded.identity) as rpc:
            try:
                port = await rpc.listen(config.listen_host, config.listen_port)
            except OSError as exc:
                raise ListenFailedError(
                    config.listen_host, config.listen_port, exc.strerror or str(exc)
                ) from None
            log.info("listening on %s:%d", config.listen_host, port)
            yield _Base(loaded.home, loaded.identity, chain, rpc, port)


async def _start_ledger(base: _Base, nursery: trio.Nursery) -> LedgerService:
    peers = base.home.config.peers
    service: LedgerService = await nursery.start(
        partial(serve_ledger, base.rpc, base.chain, base.identity, peers=peers)
    )
    service.on_applied(_BlockLog(service, base.identity.public_key))
    nursery.start_soon(_report_synced, service, len(peers))
    return service


async def _until_signal(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log.info("received %s: stopping", signal.Signals(signum).name)
        return


async def run_ledger_node(
    home_dir: Path, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the ledger node of the home at ``home_dir`` until SIGINT or SIGTERM
    (or cancellation). Reports the port it listens on as started. Raises the
    config's, key file's, genesis's and chain store's typed errors, and
    :class:`NodeError`, before it starts serving."""
    loaded = _load(home_dir, "ledger node")
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with _open_base(loaded) as base:
                async with trio.open_nursery() as nursery:
                    await _start_ledger(base, nursery)
                    task_status.started(base.port)
                    await _until_signal(signals)
                    nursery.cancel_scope.cancel()
                height = base.chain.height
    except BaseExceptionGroup as group:  # the nurseries wrap what the body raised
        raise single(group) from None
    log.info("stopped at height %d; the chain is closed", height)


@asynccontextmanager
async def open_host_node(
    home_dir: Path,
    *,
    maintenance_interval: float = 60.0,
    ad_interval: float = AD_INTERVAL,
) -> AsyncIterator[HostNode]:
    """The host daemon of the home at ``home_dir``, serving until the block exits
    (then everything is stopped and closed, as on SIGTERM; the last line logged
    is ``stopped at height N``). The daemon and the in-process tests use it.
    Raises what :func:`run_ledger_node` raises, and the chunk store's and
    contract book's typed errors."""
    loaded = _load(home_dir, "host daemon")
    config = loaded.home.config
    if config.public_host is None:
        raise AdvertiseMissingError(config.listen_host, loaded.home.config_path)
    # Choose (and log) the GF(2^8) kernel now rather than on the first decode or
    # recoding: finding and loading ISA-L costs ~8 ms in a node, which a listener's
    # read would otherwise wait for, and a STORENODE_GF_BACKEND that names no kernel
    # stops the node here, saying so, instead of failing every read.
    gf_backend()
    try:
        # The stores close last: after the nursery (no task uses them) and the
        # wire (no request handler does); a write in progress holds their lock.
        with ExitStack() as stack:
            store = book = None
            if config.host_enabled:
                try:
                    store = stack.enter_context(
                        DiskChunkStore(config.chunks_dir, capacity=config.capacity)
                    )
                    book = stack.enter_context(HostBook(config.host_dir))
                except (StoreError, BookError) as exc:
                    raise HostStorageError(str(exc)) from exc
            async with _open_base(loaded) as base:
                async with trio.open_nursery() as nursery:
                    try:
                        yield await _start_host(
                            base,
                            nursery,
                            store,
                            book,
                            maintenance_interval=maintenance_interval,
                            ad_interval=ad_interval,
                        )
                    finally:
                        nursery.cancel_scope.cancel()
                height = base.chain.height
    except BaseExceptionGroup as group:  # the nurseries wrap what the body raised
        raise single(group) from None
    closed = "the chain, chunk store and book are" if config.host_enabled else "the chain is"
    log.info("stopped at height %d; %s closed", height, closed)


async def _start_host(
    base: _Base,
    nursery: trio.Nursery,
    store: DiskChunkStore | None,
    book: HostBook | None,
    *,
    maintenance_interval: float,
    ad_interval: float,
) -> HostNode:
    config = base.home.config
    view = view_of(base.chain, base.identity.address)  # before the ledger touches the chain
    ledger = await _start_ledger(base, nursery)
    public = config.public_host
    assert public is not None  # open_host_node refused a wildcard without wire.advertise
    contact = Contact(base.identity.public_key, public, base.port)
    dht = DhtService(base.rpc, DhtNode(base.identity, contact, now=time.time()), nursery)
    node = HostNode(
        base.home.root,
        config,
        base.identity,
        base.chain,
        base.rpc,
        ledger,
        dht,
        nursery,
        view=view,
        store=store,
        book=book,
        maintenance_interval=maintenance_interval,
        ad_interval=ad_interval,
    )
    await node.start()
    fee = int(base.chain.genesis.params.min_fee)
    if node.store is not None and config.repair:
        start_repair(nursery, node, fee=fee)
    if config.http_enabled:
        from storenode.api import HttpBindError

        try:
            await start_http(nursery, node, fee=fee)
        except HttpBindError as exc:
            raise HttpListenFailedError(str(exc)) from None
    return node


def ready_doc(node: HostNode) -> dict[str, object]:
    """What ``node.json`` says about a running node."""
    config = node.config
    http = None if node.http_port is None else f"{config.http_host}:{node.http_port}"
    return {
        "pid": os.getpid(),
        "name": node.name,
        "address": address_hex(node.identity.address),
        "public_key": node.identity.public_key.hex(),
        "wire": f"{config.public_host}:{node.port}",
        "http": http,
        "socket": None if node.local_socket is None else str(node.local_socket.absolute()),
        "started": int(node.started),
    }


async def run_host(
    home_dir: Path, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the host daemon of the home at ``home_dir`` until SIGINT or SIGTERM (or
    cancellation): :func:`open_host_node`, with ``<home>/node.json`` written once
    it serves and deleted when it stops. Reports the wire port as started."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_host_node(home_dir) as node:
            ready = node.home / READY_FILE
            try:
                write_atomic(ready, json.dumps(ready_doc(node)).encode() + b"\n", replace=True)
                task_status.started(node.port)
                await _until_signal(signals)
            finally:
                ready.unlink(missing_ok=True)
