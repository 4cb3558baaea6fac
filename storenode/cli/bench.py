"""``storenode demo`` (the product end to end on a local network) and
``storenode bench`` (speed, side by side with a peer)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_demo(args: argparse.Namespace) -> int:
    from storenode.demo import run_demo

    return run_demo(workdir=args.dir, keep=args.keep, hosts=args.hosts, seed=args.seed)


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    if args.what == "e2e":
        from storenode.bench import e2e

        return e2e.main(
            json_out=args.json,
            quick=args.quick,
            sizes=args.sizes,
            reps=args.reps,
            tahoe_dir=args.tahoe,
            no_tahoe=args.no_tahoe,
        )
    bench = importlib.import_module(f"storenode.bench.{args.what}")
    rc: int = bench.main(json_out=args.json, quick=args.quick)
    return rc


def _sizes_arg(text: str) -> list[int]:
    """``64,256``: whole MiB, each at least 1 (Tahoe's bench.sh counts in whole MiB)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of MiB like 64,256") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes are whole MiB, at least 1")
    return sizes


def _reps_arg(text: str) -> int:
    try:
        reps = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if reps < 1:
        raise argparse.ArgumentTypeError("at least 1 rep")
    return reps


def _tahoe_arg(text: str) -> Path:
    from storenode.bench.tahoe import is_tahoe_dir

    path = Path(text).resolve()
    if not is_tahoe_dir(path):
        raise argparse.ArgumentTypeError(
            f"{text} has no grid.sh and bench.sh: give the Tahoe-LAFS peer folder "
            "(shared/peers/tahoe)"
        )
    return path


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="a localnet of 10 hosts: publish, stream, kill 3 hosts, fetch, watch them miss proofs",
    )
    demo.add_argument(
        "--dir", default=None, help="work in DIR, new or empty (default: a temporary folder)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    demo.add_argument("--hosts", type=int, default=10, metavar="N", help="hosts to start (10)")
    demo.add_argument(
        "--seed", type=int, default=None, help="which hosts die and which range is read"
    )
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="measure speed, side by side with a peer")
    bench.add_argument(
        "what", choices=["coding", "wire", "dht", "ledger", "e2e"], help="which part to measure"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("--quick", action="store_true", help="shorter runs (for smoke tests)")
    e2e = bench.add_argument_group("e2e (publish, fetch and ranged reads on a 10-host localnet)")
    e2e.add_argument(
        "--sizes", type=_sizes_arg, default=None, metavar="MiB,...", help="file sizes (64,256)"
    )
    e2e.add_argument("--reps", type=_reps_arg, default=None, metavar="N", help="reps per size (3)")
    e2e.add_argument(
        "--tahoe",
        type=_tahoe_arg,
        default=None,
        metavar="DIR",
        help="the Tahoe-LAFS peer scripts (default: ../shared/peers/tahoe beside the repository)",
    )
    e2e.add_argument("--no-tahoe", action="store_true", help="measure storenode alone")
    bench.set_defaults(func=_cmd_bench)
