"""The ``storenode`` command.

Sub-commands import their modules lazily, so ``storenode --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from storenode.demo import run_demo

    return run_demo(workdir=args.dir, keep=args.keep)


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    bench = importlib.import_module(f"storenode.bench.{args.what}")
    rc: int = bench.main(json_out=args.json, quick=args.quick)
    return rc


def build_parser() -> argparse.ArgumentParser:
    from storenode import __version__

    p = argparse.ArgumentParser(
        prog="storenode",
        description="storenode: decentralized storage and streaming for music and other media",
    )
    p.add_argument("--version", action="version", version=f"storenode {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (INFO)")
    sub = p.add_subparsers(dest="command", required=True)

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from storenode.tuning import tune_allocator

    tune_allocator()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
