"""``storenode localnet init|up|status|start|down``: a local network on 127.0.0.1,
its homes (``init``) and its nodes as real processes (the others)."""

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
        table = Table("name", "role", "address", "wire", "http", "home")
        for h in net.homes:
            table.add_row(h.name, h.role, h.address, h.wire or "-", h.http or "-", str(h.home))
        console.print(table, soft_wrap=False)
        console.print("start each node with  storenode --home <home> host")

    emit(args, net.to_json(), render)
    return 0


def _cmd_localnet_up(args: argparse.Namespace) -> int:
    from storenode.localnet.processes import up

    record = up(
        Path(args.dir),
        hosts=args.hosts,
        block_time=args.block_time,
        window_blocks=args.window_blocks,
        timeout=args.timeout,
    )

    def render(console: Console) -> None:
        from rich.table import Table

        table = Table("name", "role", "pid", "wire", "http")
        for n in record.nodes:
            table.add_row(n.name, n.role, str(n.pid), n.wire or "-", n.http or "-")
        console.print(table, soft_wrap=False)
        console.print(f"gateway    {record.gateway or '(no HTTP API)'}")
        console.print(f"publisher  storenode --home {record.publisher_home} publish PATH...")
        console.print(f"logs       {record.directory}/<name>/node.log")
        console.print(f"stop with  storenode localnet down --dir {record.directory}")

    emit(args, record.summary(), render)
    return 0


def _cmd_localnet_status(args: argparse.Namespace) -> int:
    from storenode.localnet.processes import status

    record, nodes = status(Path(args.dir))
    doc = {"gateway": record.gateway, "nodes": [n.to_json() for n in nodes]}

    def render(console: Console) -> None:
        from rich.table import Table

        table = Table("name", "role", "pid", "state", "height", "chunks", "contracts")
        for n in nodes:
            state = "answering" if n.status else "running" if n.running else "stopped"
            table.add_row(
                n.node.name,
                n.node.role,
                str(n.node.pid),
                state,
                _cell(n.get("height")),
                _cell(n.get("chunks")),
                _contracts_cell(n.get("contracts")),
            )
        console.print(table, soft_wrap=False)

    emit(args, doc, render)
    return 0


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _contracts_cell(value: object) -> str:
    """``{"pending": 1, "active": 9, "closed": 0}`` as ``9 active, 1 pending``."""
    if isinstance(value, dict):
        parts = [f"{count} {state}" for state, count in value.items() if count]
        return ", ".join(parts) or "0"
    return _cell(value)


def _cmd_localnet_start(args: argparse.Namespace) -> int:
    from storenode.localnet.processes import start_nodes

    record = start_nodes(Path(args.dir), args.names, timeout=args.timeout)
    started = [record.node(name) for name in args.names]
    doc = {"nodes": [n.summary() for n in started]}

    def render(console: Console) -> None:
        for n in started:
            console.print(f"started {n.name} (pid {n.pid}): wire {n.wire}, http {n.http or '-'}")

    emit(args, doc, render)
    return 0


def _cmd_localnet_down(args: argparse.Namespace) -> int:
    from storenode.localnet.processes import down

    report = down(Path(args.dir), grace=args.grace)

    def render(console: Console) -> None:
        if report.stopped:
            console.print(f"stopped {', '.join(report.stopped)}")
        if report.killed:
            console.print(
                f"killed {', '.join(report.killed)} (still running {args.grace:g} s after SIGTERM)"
            )
        if not report.stopped and not report.killed:
            console.print("nothing was running")

    emit(args, report.to_json(), render)
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

    lup = command(
        lsub,
        "up",
        _cmd_localnet_up,
        "write a localnet of a validator and N hosts and start every node",
        parents.printing,
    )
    lup.add_argument("--dir", required=True, help="a new or empty directory")
    lup.add_argument("--hosts", type=int, default=10, metavar="N", help="hosts to start (10)")
    lup.add_argument(
        "--block-time", type=int, default=1, metavar="S", help="seconds between blocks (1)"
    )
    lup.add_argument(
        "--window-blocks", type=int, default=5, metavar="W", help="storage window length (5)"
    )
    lup.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="how long to wait for the nodes"
    )
    lstatus = command(
        lsub,
        "status",
        _cmd_localnet_status,
        "whether each node runs, its height, chunks and contracts",
        parents.printing,
    )
    lstatus.add_argument("--dir", required=True, help="the localnet's directory")
    lstart = command(
        lsub,
        "start",
        _cmd_localnet_start,
        "start stopped or killed nodes of a localnet again",
        parents.printing,
    )
    lstart.add_argument("--dir", required=True, help="the localnet's directory")
    lstart.add_argument("names", nargs="+", metavar="NAME", help="node-1, validator-1, ...")
    lstart.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="how long to wait for them"
    )
    ldown = command(
        lsub, "down", _cmd_localnet_down, "stop every node of a localnet", parents.printing
    )
    ldown.add_argument("--dir", required=True, help="the localnet's directory")
    ldown.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between SIGTERM and SIGKILL (10)",
    )
