"""``storenode localnet init``: the homes of a local network on 127.0.0.1.

In ``DIR`` it writes one genesis and a home per node::

    DIR/genesis.json       chain "localnet": the validators, the allocations, the parameters
    DIR/validator-1 ..     a validator's home: it routes, produces blocks and serves the
                           gateway, but rents out no disk
    DIR/node-1 ..          a host's home: a follower of the ledger that rents out disk
    DIR/publisher          a funded wallet's home whose commands talk to validator-1

Every node gets a free wire port and a free HTTP port on 127.0.0.1 and lists
every other node as a peer; every home refers to ``../genesis.json``, so the
folder can be moved as a whole. The genesis funds each node with
:data:`NODE_FUNDS` tokens (fees and collateral for a host) and the publisher
with :data:`PUBLISHER_FUNDS`; its parameters are the contracts' defaults (burn
2% of every payout, penalty 50% of the collateral) except the block time and
the window length, which are short here. Hosts ask :data:`HOST_PRICE` per GiB
per window for up to :data:`HOST_CAPACITY`: a demo's earnings show, a
benchmark's escrow stays small, and its files fit. The publisher codes with
k = 3 of n = 10 shards (Tahoe-LAFS's defaults; fewer when there are fewer
hosts) and bootstraps its DHT from every node.

Nothing is started here: ``storenode localnet up`` (:mod:`.processes`) starts
the nodes, or run ``storenode --home DIR/<name> host`` for each.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contracts import tokens
from storenode.config import GIB, Config, PeerSpec
from storenode.home import init_home
from storenode.identity import Identity, address_hex
from storenode.ledger import Genesis, make_genesis, save_genesis

CHAIN_ID: Final = "localnet"
GENESIS_NAME: Final = "genesis.json"
NODE_FUNDS: Final = tokens(10_000)
PUBLISHER_FUNDS: Final = tokens(1_000_000)
BURN_BPS: Final = 200
PENALTY_BPS: Final = 5_000
DEFAULT_WINDOW_BLOCKS: Final = 20
"""The contracts' shortest default window; with 2 s blocks, 40 s."""
MAX_NODES: Final = 64
HOST_PRICE: Final = tokens(10)
"""What a localnet host asks, in base units per GiB per window: a few MB earn a
legible hundredth of a token per window, and a benchmark's 256 MiB cost a few
hundred of the publisher's million tokens."""
HOST_CAPACITY: Final = 8 * GIB
PUBLISH_K: Final = 3
PUBLISH_N: Final = 10
PUBLISH_WINDOWS: Final = 100
"""How long the publisher's contracts last, in windows (500 s with 1 s blocks, 5-block windows)."""


class LocalnetError(Exception):
    """``localnet init`` cannot write the network; the message says why."""


class LocalnetExistsError(LocalnetError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is not empty: choose a new or empty directory for the localnet")
        self.path = path


class LocalnetParamsError(LocalnetError, ValueError):
    """Counts or times that make no network."""


@dataclass(frozen=True, slots=True)
class LocalHome:
    name: str
    role: str
    """``validator``, ``host`` (a ledger follower that rents out disk) or ``publisher``."""
    home: Path
    address: str
    wire: str | None
    """``host:port`` the node listens on (None for the publisher, which runs no node)."""
    http: str | None
    """``host:port`` of the node's HTTP API and gateway (None for the publisher)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "home": str(self.home),
            "address": self.address,
            "wire": self.wire,
            "http": self.http,
        }


@dataclass(frozen=True, slots=True)
class Localnet:
    genesis_file: Path
    genesis: Genesis
    homes: tuple[LocalHome, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "genesis": str(self.genesis_file),
            "chain_id": self.genesis.chain_id,
            "block_time": self.genesis.block_time,
            "window_blocks": self.genesis.window_blocks,
            "homes": [h.to_json() for h in self.homes],
        }


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` right now (all bound at once, then released)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports


def _names(validators: int, followers: int) -> Iterator[tuple[str, str]]:
    for i in range(1, validators + 1):
        yield f"validator-{i}", "validator"
    for i in range(1, followers + 1):
        yield f"node-{i}", "host"


def init_localnet(
    directory: Path,
    *,
    validators: int = 1,
    followers: int = 1,
    block_time: int = 2,
    window_blocks: int | None = None,
    host: str = "127.0.0.1",
    now: int | None = None,
) -> Localnet:
    """Write the genesis and the homes of a local network in ``directory``
    (which must be new or empty)."""
    if not 1 <= validators <= MAX_NODES or not 0 <= followers <= MAX_NODES:
        raise LocalnetParamsError(
            f"a localnet has 1 to {MAX_NODES} validators and 0 to {MAX_NODES} followers"
        )
    if not 1 <= block_time <= 3600:
        raise LocalnetParamsError("the block time is 1 to 3600 seconds")
    window = DEFAULT_WINDOW_BLOCKS if window_blocks is None else window_blocks
    if window < 1:
        raise LocalnetParamsError("a window is at least one block")
    directory = directory.expanduser().absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise LocalnetExistsError(directory)

    names = list(_names(validators, followers))
    identities = {name: Identity.generate() for name, _ in names}
    publisher = Identity.generate()
    free = iter(free_ports(2 * len(names), host))
    ports = {name: (next(free), next(free)) for name, _ in names}
    specs = {name: PeerSpec(identities[name].public_key, host, ports[name][0]) for name in ports}
    allocations = {ident.address: NODE_FUNDS for ident in identities.values()}
    allocations[publisher.address] = PUBLISHER_FUNDS
    genesis = make_genesis(
        CHAIN_ID,
        [identities[name].public_key for name, role in names if role == "validator"],
        allocations,
        time=int(time.time()) if now is None else now,
        block_time=block_time,
        window_blocks=window,
        burn_bps=BURN_BPS,
        penalty_bps=PENALTY_BPS,
        min_window_blocks=min(window, DEFAULT_WINDOW_BLOCKS),
    )

    directory.mkdir(parents=True, exist_ok=True)
    genesis_file = directory / GENESIS_NAME
    save_genesis(genesis, genesis_file)
    genesis_ref = Path("..") / GENESIS_NAME
    homes = []
    for name, role in names:
        wire_port, http_port = ports[name]
        config = Config(
            listen_host=host,
            listen_port=wire_port,
            peers=tuple(spec for other, spec in specs.items() if other != name),
            genesis_file=genesis_ref,
            host_enabled=role == "host",
            capacity=HOST_CAPACITY,
            price=HOST_PRICE,
            http_enabled=True,
            http_host=host,
            http_port=http_port,
        )
        home, _ = init_home(directory / name, config, identity=identities[name])
        address = address_hex(identities[name].address)
        homes.append(
            LocalHome(name, role, home.root, address, f"{host}:{wire_port}", f"{host}:{http_port}")
        )
    k = max(1, min(PUBLISH_K, followers))
    config = Config(
        genesis_file=genesis_ref,
        client_node=specs[names[0][0]],
        peers=tuple(specs.values()),
        http_enabled=False,
        publish_k=k,
        publish_n=max(k, min(PUBLISH_N, followers)),
        publish_windows=PUBLISH_WINDOWS,
        publish_max_price=max(Config().publish_max_price, HOST_PRICE),
    )
    home, _ = init_home(directory / "publisher", config, identity=publisher)
    address = address_hex(publisher.address)
    homes.append(LocalHome("publisher", "publisher", home.root, address, None, None))
    return Localnet(genesis_file, genesis, tuple(homes))
