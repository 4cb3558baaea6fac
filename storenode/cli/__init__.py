"""The ``storenode`` command.

Sub-commands import what they need lazily, and the parser is built for the
command named only (its module of sub-commands imported then; the whole
parser for help or a word it does not know), so a command starts fast.
Every command takes ``--home DIR`` (before or after its name; default
``$STORENODE_HOME``, else ``~/.storenode``); those that print take ``--json``
(one JSON object on stdout) and otherwise print for a person (rich).

Token amounts are read and shown as decimals of whole tokens (``1.5`` is
1.5 × 10^18 base units), exactly, never through a float. Exit codes: 0 done,
1 failed (the node refused, is unreachable, or has no such thing), 2 bad
input (arguments, config, key or genesis file).

One module per group of sub-commands: :mod:`~storenode.cli.node` (``init``,
``ledger``), :mod:`~storenode.cli.localnet`, :mod:`~storenode.cli.wallet`,
:mod:`~storenode.cli.chain` (``chain``, ``registry``, ``contracts``),
:mod:`~storenode.cli.content` (``fetch``, ``stream``) and
:mod:`~storenode.cli.bench` (``demo``, ``bench``); what they share is in
:mod:`~storenode.cli.amounts` and :mod:`~storenode.cli.common`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Final

from storenode.cli.amounts import (
    DECIMALS,
    MAX_UNITS,
    MAX_WHOLE_DIGITS,
    TOKEN,
    AmountInvalidError,
    address_arg,
    amount_arg,
    format_amount,
    hash_arg,
    parse_amount,
    parse_hex,
)
from storenode.cli.common import Parents, UsageError, exit_code

__all__ = [
    "DECIMALS",
    "MAX_UNITS",
    "MAX_WHOLE_DIGITS",
    "TOKEN",
    "AmountInvalidError",
    "address_arg",
    "amount_arg",
    "build_parser",
    "format_amount",
    "hash_arg",
    "main",
    "parse_amount",
    "parse_hex",
]


_GROUPS: Final = {
    "node": ("init", "host", "ledger"),
    "localnet": ("localnet",),
    "wallet": ("wallet",),
    "chain": ("chain", "registry", "contracts"),
    "publish": ("publish",),
    "content": ("fetch", "stream"),
    "bench": ("demo", "bench"),
}
"""Each module of sub-commands (under ``storenode.cli``) and the commands it adds, in
the order ``storenode --help`` lists them."""

_GROUP_OF: Final = {command: group for group, commands in _GROUPS.items() for command in commands}


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names, if it names one before any option that needs
    the whole parser (help, version, an unknown word)."""
    words = iter(argv)
    for word in words:
        if word == "--home":
            next(words, None)
        elif word in ("-v", "--verbose") or word.startswith("--home="):
            continue
        else:
            return word if word in _GROUP_OF else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command's parser: with ``command``, only the sub-commands of its module
    (building them all costs every invocation ~8 ms), else every one."""
    from storenode import __version__

    home_help = "the node's home directory (default: $STORENODE_HOME, else ~/.storenode)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS, metavar="DIR", help=home_help)
    printing = argparse.ArgumentParser(add_help=False, parents=[common])
    printing.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sending = argparse.ArgumentParser(add_help=False, parents=[printing])
    sending.add_argument(
        "--fee", type=amount_arg, default=None, help="fee in tokens (default: the chain's minimum)"
    )
    sending.add_argument("--wait", action="store_true", help="wait until it is in a block")
    sending.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="how long --wait waits (60 s)"
    )
    parents = Parents(common=common, printing=printing, sending=sending)

    p = argparse.ArgumentParser(
        prog="storenode",
        description="storenode: decentralized storage and streaming for music and other media",
    )
    p.add_argument("--version", action="version", version=f"storenode {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (INFO)")
    p.add_argument("--home", default=None, metavar="DIR", help=home_help)
    sub = p.add_subparsers(dest="command", required=True)
    groups = _GROUPS if command is None else (_GROUP_OF[command],)
    for group in groups:
        module = importlib.import_module(f"storenode.cli.{group}")
        if group == "bench":
            module.add_commands(sub)
        else:
            module.add_commands(sub, parents)
    return p


_THIN: Final = frozenset({"fetch", "stream"})
"""Commands that usually move no bytes themselves (their home's node does): they tune
the allocator only if they end up reading from the hosts in their own process."""


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    command = _command_in(argv)
    if command not in _THIN:
        from storenode.tuning import tune_allocator

        tune_allocator()
    parser = build_parser(command)
    args = parser.parse_args(argv)
    args.home = getattr(args, "home", None)
    args.json = getattr(args, "json", False)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        rc: int = args.func(args)
    except UsageError as exc:
        exc.parser.error(str(exc))  # exits 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        sys.stderr.write(f"storenode: error: {exc}\n")
        return code
    return rc
