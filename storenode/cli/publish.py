"""``storenode publish PATH...``: put files and catalogues on hosts under storage contracts.

A folder is a catalogue (every audio file in it is a work); a file is a work
whatever its type. k, n and the contracts' length default to the home's
``[publish]`` config. ``--json`` prints ``{"works": [{"path", "name", "cid",
"bytes", "stripes", "hosts", "contracts", "cost", "status"}]}``, with
``upload_s`` (the upload's seconds) when chunks were sent and ``note`` when
there is one; otherwise a progress bar (on a terminal) and a table per work.
An interrupted publish resumes when run again; a work already published is
left as it is (``unchanged``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from storenode.cli.amounts import amount_arg, format_amount
from storenode.cli.common import (
    Parents,
    command,
    emit,
    home_of,
    rich_bar,
    to_hex,
    usage_error,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgressBar
    from rich.progress import TaskID

    from storenode.publish.pipeline import WorkResult
    from storenode.publish.works import WorkFile


class BarProgress:
    """The pipeline's progress as a rich bar on stderr, one line per phase of a work."""

    def __init__(self, bar: RichProgressBar) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def phase(self, work: WorkFile, what: str, total: int) -> None:
        self._end()
        self.task = self.bar.add_task(f"{work.name}: {what}", total=total or None)

    def advance(self, amount: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, amount)

    def finish(self, result: WorkResult) -> None:
        self._end()
        self.bar.console.print(f"{result.status} {result.name}  {to_hex(result.cid)}")

    def _end(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None


def _doc(result: WorkResult) -> dict[str, Any]:
    from storenode.identity import address_hex

    doc: dict[str, Any] = {
        "path": result.path,
        "name": result.name,
        "cid": to_hex(result.cid),
        "bytes": result.length,
        "stripes": result.stripes,
        "hosts": [address_hex(h) for h in result.hosts],
        "contracts": [to_hex(c) for c in result.contracts],
        "cost": format_amount(result.cost),
        "status": result.status,
    }
    if result.upload_seconds is not None:
        doc["upload_s"] = round(result.upload_seconds, 3)
    if result.note:
        doc["note"] = result.note
    return doc


def _cmd_publish(args: argparse.Namespace) -> int:
    import trio

    from storenode.publish import PublishError, PublishInputError, discover_works
    from storenode.publish.pipeline import PublishOptions, publish_all

    home = home_of(args)
    config = home.config
    k = config.publish_k if args.k is None else args.k
    n = config.publish_n if args.n is None else args.n
    if not 1 <= k <= n <= 255:
        raise usage_error(args, f"k={k} n={n}: give 1 <= k <= n <= 255")
    if args.windows is not None and not 1 <= args.windows < 2**32:
        raise usage_error(args, f"--windows {args.windows}: give at least 1")
    if not 1 <= len(args.author) <= 200:
        raise usage_error(args, "--author: give 1 to 200 characters")
    try:
        works = discover_works(args.paths)
    except PublishInputError as exc:
        raise usage_error(args, str(exc)) from None
    options = PublishOptions(
        k=k,
        n=n,
        windows=config.publish_windows if args.windows is None else args.windows,
        max_price=config.publish_max_price,
        price=args.price,
        author=args.author,
    )
    show_bar = not args.json and sys.stderr.isatty()
    bar = rich_bar() if show_bar else None
    progress = None if bar is None else BarProgress(bar)
    try:
        with bar or contextlib.nullcontext():
            results = trio.run(publish_all, home, works, options, progress)
    except KeyboardInterrupt:
        sys.stderr.write("storenode: interrupted; run the same command again to resume\n")
        return 130
    except PublishInputError as exc:
        sys.stderr.write(f"storenode: error: {exc}\n")
        return 2
    except PublishError as exc:
        sys.stderr.write(f"storenode: error: {exc}\n")
        return 1
    doc = {"works": [_doc(r) for r in results]}
    emit(args, doc, lambda console: _render(console, doc))
    return 0


def _render(console: Console, doc: dict[str, Any]) -> None:
    from rich.table import Table

    for w in doc["works"]:
        table = Table(
            title=f"{w['name']}: {w['status']}",
            title_justify="left",
            show_header=False,
            box=None,
            padding=(0, 2, 0, 0),
        )
        table.add_row("CID", w["cid"])
        stripes = f"{w['stripes']} stripe" + ("" if w["stripes"] == 1 else "s")
        table.add_row("bytes", f"{_size(w['bytes'])} in {stripes}")
        table.add_row("hosts", "\n".join(w["hosts"]) or "-")
        table.add_row("contracts", str(len(w["contracts"])))
        table.add_row("escrow", f"{w['cost']} tokens")
        if w.get("note"):
            table.add_row("note", w["note"])
        console.print(table, soft_wrap=False)
        console.print()
    if any(w["contracts"] for w in doc["works"]):
        console.print("the contracts:  storenode contracts list")


def _size(n: int) -> str:
    """``n`` bytes for a person: ``"2.9 MiB (3,000,000 bytes)"``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    cmd = command(
        sub,
        "publish",
        _cmd_publish,
        "put files and catalogues (folders of audio files) on hosts under storage contracts",
        parents.printing,
    )
    cmd.add_argument("paths", nargs="+", type=_path, metavar="PATH", help="a file or a folder")
    cmd.add_argument("--k", type=int, default=None, help="shards that rebuild a stripe")
    cmd.add_argument("--n", type=int, default=None, help="shards per stripe (one per host)")
    cmd.add_argument(
        "--windows",
        type=int,
        default=None,
        metavar="W",
        help="challenge windows the contracts last (default: publish.windows)",
    )
    cmd.add_argument(
        "--price",
        type=amount_arg,
        default=None,
        metavar="P",
        help="the price per download in tokens (0 or absent: free to read)",
    )
    cmd.add_argument("--author", default="unknown", help="the author, in the registry")


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text).expanduser()
