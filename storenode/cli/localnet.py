"""``storenode localnet init``: a genesis and the homes of a local network."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from storenode.cli.common import Parents, command, emit

if TYPE_CHECKING:
    from rich.console import Console


def _cmd_localnet_init(args: argparse.Namespace) -> int:
    from storenode.localnet import init_localnet

    net = init_localnet(
        Path(args.dir),
        validators=args.validators,
        followers=args.followers,
        block_time=args.block_time,
        window_blocks=args.window_blocks,
    )

    def render(console: Console) -> None:
        from rich.table import Table

        g = net.genesis
        console.print(
            f"localnet written to {net.genesis_file.parent}: chain {g.chain_id}, "
            f"a block every {g.block_time} s, windows of {g.window_blocks} blocks, "
            f"burn {g.params.burn_bps / 100:g}% of payouts, penalty "
            f"{g.params.penalty_bps / 100:g}% of collateral"
        )
        table = Table("name", "role", "address", "wire", "home")
        for h in net.homes:
            table.add_row(h.name, h.role, h.address, h.wire or "-", str(h.home))
        console.print(table, soft_wrap=False)
        console.print("start each node with  storenode --home <home> ledger")

    emit(args, net.to_json(), render)
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    localnet = sub.add_parser("localnet", help="a local network on 127.0.0.1")
    lsub = localnet.add_subparsers(dest="localnet_command", required=True)
    linit = command(
        lsub,
        "init",
        _cmd_localnet_init,
        "write a genesis and the homes of a local network",
        parents.printing,
    )
    linit.add_argument("--dir", required=True, help="a new or empty directory")
    linit.add_argument("--validators", type=int, default=1, metavar="N", help="default 1")
    linit.add_argument("--followers", type=int, default=1, metavar="M", help="default 1")
    linit.add_argument(
        "--block-time", type=int, default=2, metavar="S", help="seconds between blocks (2)"
    )
    linit.add_argument(
        "--window-blocks", type=int, default=None, metavar="W", help="storage window length (20)"
    )
