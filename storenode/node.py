"""The composition root: build a node's services from its home and run them.

So far a node runs the ledger (:func:`run_ledger_node`, ``storenode ledger``):
it reads the home's config, identity key and genesis, opens the chain in
``<data_dir>/chain``, listens on the wire, serves the ledger
(:func:`storenode.net.ledger.serve_ledger`: sync, gossip, produce if it is a
validator, answer clients) and logs what happens in an operator's words.
SIGINT or SIGTERM stops it cleanly: the service stops touching the chain
(a block being applied is finished first), connections close, the chain
closes, and the last line logged is ``stopped at height N``.
"""

from __future__ import annotations

import logging
import signal
from functools import partial
from pathlib import Path

import trio

from storenode.home import open_home
from storenode.identity import address_hex
from storenode.ledger import AppliedBlock, Chain, load_genesis
from storenode.net.ledger import LedgerService, serve_ledger
from storenode.net.rpc import open_rpc_node

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


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _txs(n: int) -> str:
    return "1 tx" if n == 1 else f"{n} txs"


class _BlockLog:
    """Logs each committed block (DEBUG while the start-up sync runs)."""

    def __init__(self, service: LedgerService, me: bytes) -> None:
        self.service = service
        self.me = me

    def __call__(self, applied: AppliedBlock) -> None:
        level = logging.INFO if self.service.synced.is_set() else logging.DEBUG
        produced = ", produced here" if applied.block.header.producer == self.me else ""
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


async def run_ledger_node(
    home_dir: Path, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the ledger node of the home at ``home_dir`` until SIGINT or SIGTERM
    (or cancellation). Reports the port it listens on as started. Raises the
    config's, key file's, genesis's and chain store's typed errors, and
    :class:`NodeError`, before it starts serving."""
    home = open_home(home_dir)
    config = home.config
    identity = home.identity()
    if not config.genesis_file.exists():
        raise GenesisMissingError(config.genesis_file, home.config_path)
    genesis = load_genesis(config.genesis_file)
    role = "validator" if identity.public_key in genesis.validators else "follower"
    log.info(
        "starting the ledger node of %s: chain %s, identity %s (%s)",
        home.root,
        genesis.chain_id,
        address_hex(identity.address),
        role,
    )
    try:
        with (
            trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
            Chain.open(config.chain_dir, genesis) as chain,
        ):
            log.info(
                "opened the chain in %s at height %d (state root %s…)",
                config.chain_dir,
                chain.height,
                chain.tip.state_root.hex()[:16],
            )
            async with open_rpc_node(identity) as rpc:
                try:
                    port = await rpc.listen(config.listen_host, config.listen_port)
                except OSError as exc:
                    raise ListenFailedError(
                        config.listen_host, config.listen_port, exc.strerror or str(exc)
                    ) from None
                log.info("listening on %s:%d", config.listen_host, port)
                async with trio.open_nursery() as nursery:
                    service: LedgerService = await nursery.start(
                        partial(serve_ledger, rpc, chain, identity, peers=config.peers)
                    )
                    service.on_applied(_BlockLog(service, identity.public_key))
                    nursery.start_soon(_report_synced, service, len(config.peers))
                    task_status.started(port)
                    async for signum in signals:
                        log.info("received %s: stopping", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        break
            height = chain.height
    except BaseExceptionGroup as group:  # the nurseries wrap what the body raised
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    log.info("stopped at height %d; the chain is closed", height)
