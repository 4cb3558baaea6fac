"""``storenode demo`` (erasure coding end to end, in a local store) and
``storenode bench`` (speed, side by side with a peer)."""

from __future__ import annotations

import argparse


def _cmd_demo(args: argparse.Namespace) -> int:
    from storenode.demo import run_demo

    return run_demo(workdir=args.dir, keep=args.keep)


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    bench = importlib.import_module(f"storenode.bench.{args.what}")
    rc: int = bench.main(json_out=args.json, quick=args.quick)
    return rc


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="code a small catalogue into a LevelDB store, lose chunks, recover it"
    )
    demo.add_argument("--dir", default=None, help="work in DIR (default: a temporary folder)")
    demo.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="measure speed, side by side with a peer")
    bench.add_argument(
        "what", choices=["coding", "wire", "dht", "ledger"], help="which part to measure"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("--quick", action="store_true", help="shorter runs (for smoke tests)")
    bench.set_defaults(func=_cmd_bench)
