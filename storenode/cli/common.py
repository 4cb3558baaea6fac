"""What the sub-commands share: printing (``--json`` or rich), the home and its
node, registering a command, and errors as exit codes (0 done, 1 failed, 2 bad
input)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from storenode.cli.amounts import format_amount

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from storenode.client.ledger import LedgerClient
    from storenode.home import Home


# -- output --------------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160  # piped: leave addresses and hashes whole
    return console


def emit(args: argparse.Namespace, doc: dict[str, Any], render: Callable[[Console], None]) -> None:
    """Print ``doc`` as one JSON object if ``--json``, else ``render`` it for a person."""
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        render(_console())


def fields(console: Console, rows: Sequence[tuple[str, object]]) -> None:
    from rich.text import Text

    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        console.print(Text.assemble((label.ljust(width), "bold"), str(value)))


def to_hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def plain(value: Any) -> Any:
    """A transaction body's value as JSON: addresses and hashes as 0x hex,
    amounts as decimals of tokens, records as objects."""
    import msgspec

    from contracts import Amount

    if isinstance(value, Amount):
        return format_amount(value)
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def tx_doc(raw: bytes) -> dict[str, Any]:
    from contracts import decode_tx, tx_id
    from storenode.identity import address_hex, address_of

    signed = decode_tx(raw)
    tx = signed.tx
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(tx.body).__name__).lower()
    return {
        "tx": to_hex(tx_id(tx)),
        "type": kind,
        "sender": address_hex(address_of(tx.sender)),
        "nonce": tx.nonce,
        "fee": format_amount(tx.fee),
        "body": plain(tx.body),
    }


# -- homes and nodes -----------------------------------------------------------------------


def home_dir(args: argparse.Namespace) -> Path:
    from storenode.homedir import default_home

    return Path(args.home).expanduser() if args.home else default_home()


def home_of(args: argparse.Namespace) -> Home:
    """The home of ``--home`` (else $STORENODE_HOME, else ~/.storenode), opened."""
    from storenode.home import open_home

    return open_home(home_dir(args))


def with_client(args: argparse.Namespace, work: Callable[[LedgerClient, Home], Any]) -> Any:
    """Run ``await work(client, home)`` with a client of the node the home talks to."""
    import trio

    from storenode.client.ledger import open_home_client

    home = home_of(args)

    async def main() -> Any:
        async with open_home_client(home) as client:
            return await work(client, home)

    return trio.run(main)


# -- commands ------------------------------------------------------------------------------


class Parents(NamedTuple):
    """Parent parsers that give a command its common options."""

    common: argparse.ArgumentParser
    """``--home``"""
    printing: argparse.ArgumentParser
    """``--home``, ``--json``"""
    sending: argparse.ArgumentParser
    """``--home``, ``--json``, ``--fee``, ``--wait``, ``--timeout``"""


def command(
    parent: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    base: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` that runs ``func(args)``, with ``base``'s options."""
    cmd = parent.add_parser(name, help=help, description=help, parents=[base])
    cmd.set_defaults(func=func, parser=cmd)
    return cmd


# -- errors --------------------------------------------------------------------------------


class UsageError(Exception):
    """Bad arguments found by a command: reported by its parser (exit 2)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class OutputExistsError(Exception):
    """A command's output file appeared while it worked, and ``--force`` was not
    given: it was left alone (exit 1)."""


def usage_error(args: argparse.Namespace, message: str) -> UsageError:
    return UsageError(args.parser, message)


_EXIT_CODES: tuple[tuple[str, str, int], ...] = (
    # (module, exception class, exit code): the first class that matches decides.
    ("storenode.home", "KeyFileExistsError", 1),
    ("storenode.client.via_node", "OutputWriteError", 1),
    ("storenode.config.reading", "ConfigError", 2),
    ("storenode.coding.errors", "GfBackendUnavailableError", 2),  # STORENODE_GF_BACKEND
    ("storenode.home", "KeyFileError", 2),
    ("storenode.ledger.errors", "GenesisInvalidError", 2),
    ("storenode.localnet.homes", "LocalnetParamsError", 2),
    ("storenode.client.content", "ContentError", 1),  # the message says which
    ("storenode.client.ledger", "ClientError", 1),
    ("storenode.home", "HomeError", 1),
    ("storenode.ledger.errors", "ChainStoreError", 1),
    ("storenode.localnet.homes", "LocalnetError", 1),
    ("storenode.node", "NodeError", 1),
)


def exit_code(exc: Exception) -> int | None:
    """2 for bad input, 1 for a failure, None for a bug (re-raised).

    Only the modules already imported are looked at: an exception of a class
    whose module was never imported cannot have been raised, and importing them
    all (the ledger, the node, the localnet) made failing commands slower: a
    fetch through the node of a work nobody has took 480-585 ms, now 93-112."""
    if isinstance(exc, OutputExistsError):
        return 1
    for module, name, code in _EXIT_CODES:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return code
    return None


class Bar(Protocol):
    """What the commands use of a progress bar (rich's ``Progress`` has it)."""

    def __enter__(self) -> Any: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any: ...
    def add_task(self, description: str, *, total: float | None = ...) -> Any: ...
    def advance(self, task_id: Any, advance: float = ...) -> None: ...


class _NoBar:
    """A bar that draws nothing, for output that is not a terminal: it spares the
    command importing rich (~40 ms of its start-up)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None

    def add_task(self, description: str, *, total: float | None = None) -> int:
        return 0

    def advance(self, task_id: Any, advance: float = 1) -> None:
        return None


def transfer_bar(*, show: bool, transient: bool = False) -> Bar:
    """A rich progress bar of bytes on stderr (name, bar, bytes, speed, time left);
    ``show`` false: a bar that draws nothing, so callers need no second path."""
    return rich_bar(transient=transient) if show else _NoBar()


def rich_bar(*, transient: bool = False) -> Progress:
    """The rich progress bar of :func:`transfer_bar`, always drawn."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )
