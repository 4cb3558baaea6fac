"""``storenode init`` (create a node home), ``storenode host`` (run its daemon) and
``storenode ledger`` (run a node that only keeps the ledger)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from storenode.cli.common import Parents, command, emit, fields, home_dir, home_of, usage_error

if TYPE_CHECKING:
    from rich.console import Console


def _cmd_init(args: argparse.Namespace) -> int:
    from storenode.config import Config, PeerSpec, format_size
    from storenode.home import init_home
    from storenode.identity import address_hex

    peers = []
    for text in args.peer:
        try:
            peers.append(PeerSpec.parse(text))
        except ValueError as exc:
            raise usage_error(args, f"--peer {text!r}: {exc}") from None
    default = Config()
    config = Config(
        listen_host=args.host or default.listen_host,
        listen_port=args.port or default.listen_port,
        peers=tuple(peers),
        genesis_file=Path(args.genesis).absolute() if args.genesis else default.genesis_file,
    )
    home, wrote_key = init_home(home_dir(args), config)
    identity = home.identity()
    doc = {
        "home": str(home.root),
        "config": str(home.config_path),
        "key_file": str(home.config.identity_file),
        "key_created": wrote_key,
        "address": address_hex(identity.address),
        "public_key": identity.public_key.hex(),
        "wire": f"{config.listen_host}:{config.listen_port}",
    }

    def render(console: Console) -> None:
        console.print(f"created the storenode home {home.root}")
        fields(
            console,
            [
                ("config", home.config_path),
                ("identity key", f"{doc['key_file']} ({'new' if wrote_key else 'kept'})"),
                ("address", doc["address"]),
                ("public key", doc["public_key"]),
                ("listens on", doc["wire"]),
            ],
        )
        genesis = home.config.genesis_file
        if not genesis.exists():
            console.print(f"next: put the chain's genesis file at {genesis}, then run")
        else:
            console.print("next: run")
        console.print(f"  storenode --home {home.root} host")
        console.print(
            f"(it rents out up to {format_size(home.config.capacity)}; set host.capacity and "
            f"host.price in {home.config_path} first)"
        )

    emit(args, doc, render)
    return 0


def _run(args: argparse.Namespace, runner_name: str) -> int:
    import trio

    from storenode import node
    from storenode.logs import use_format

    home = home_of(args)
    level = getattr(logging, home.config.log_level.upper())
    if args.verbose:
        level = min(level, logging.INFO)
    logging.getLogger().setLevel(level)
    use_format(home.config.log_format)
    trio.run(getattr(node, runner_name), home.root)
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    return _run(args, "run_ledger_node")


def _cmd_host(args: argparse.Namespace) -> int:
    return _run(args, "run_host")


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    init = command(
        sub, "init", _cmd_init, "create a node home: identity key and config.toml", parents.printing
    )
    init.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    init.add_argument("--port", type=int, help="port to listen on (default 7400)")
    init.add_argument("--genesis", metavar="FILE", help="the chain's genesis file")
    init.add_argument(
        "--peer", action="append", default=[], metavar="KEY@HOST:PORT", help="a peer (repeat)"
    )
    command(
        sub,
        "host",
        _cmd_host,
        "run the node's daemon: ledger, DHT, and (host.enabled) the chunk store, "
        "storage contracts and proofs; HTTP API (http.enabled)",
        parents.common,
    )
    command(sub, "ledger", _cmd_ledger, "run a node that only keeps the ledger", parents.common)
