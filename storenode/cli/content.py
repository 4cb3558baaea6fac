"""``storenode fetch CID -o FILE`` and ``storenode stream CID``: read a work from its hosts.

Both read as the home's identity through the fetcher
(:func:`storenode.client.session.open_home_fetcher`): the manifest and the
providers from the DHT, the stripes from many hosts at once, a priced work
bought on the way if its price is within ``client.spending_cap``.

* ``fetch`` writes the work to a temporary file beside FILE, syncs it and
  renames it into place once whole, so FILE is either absent or complete,
  also after a crash (an existing FILE is left alone unless ``--force``); the
  kernel is asked to write back every 8 MiB as the pieces come, so the final
  sync waits for little,
  with a progress bar on a terminal's stderr, then a summary (bytes, seconds,
  MB/s, hosts used), or with ``--json`` ``{"cid", "path", "bytes", "seconds",
  "hosts"}``. A work whose manifest the registry does not vouch for is
  checked against its CID as it is written.
* ``stream`` writes the bytes from ``--start`` to the end on stdout and
  nothing else (``storenode stream CID | mpv -``); a reader that goes away
  ends it quietly.

Failures to read (no such work, too few hosts, corrupt data, payment
needed) exit 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from storenode.cli.amounts import hash_arg
from storenode.cli.common import (
    Parents,
    command,
    emit,
    fields,
    home_of,
    to_hex,
    transfer_bar,
    usage_error,
)

if TYPE_CHECKING:
    from rich.console import Console

WRITEBACK_BYTES: Final = 8 << 20
"""``fetch`` asks the kernel to start writing its output back every this many bytes."""


def _cmd_fetch(args: argparse.Namespace) -> int:
    import trio

    path = Path(args.output)
    if path.is_dir():
        raise usage_error(args, f"{path} is a directory: give a file name with -o")
    if path.exists() and not args.force:
        raise usage_error(args, f"{path} exists: give --force to overwrite it")
    if not path.parent.is_dir():
        raise usage_error(args, f"{path.parent} is not a directory")
    home = home_of(args)
    show_bar = sys.stderr.isatty()
    doc = trio.run(_fetch, home, args.cid, path, show_bar)
    emit(args, doc, lambda console: _render(console, doc))
    return 0


async def _fetch(home: Any, cid: bytes, path: Path, show_bar: bool) -> dict[str, Any]:
    import trio
    from Crypto.Hash import keccak

    from storenode.client.content import ContentCorruptError
    from storenode.client.session import open_home_fetcher
    from storenode.files import sync_dir

    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    async with open_home_fetcher(home) as fetcher:
        info = await fetcher.open(cid)
        check = None if fetcher.registered(cid) else keccak.new(digest_bits=256)
        bar = transfer_bar(show=show_bar, transient=True)
        start = trio.current_time()
        try:
            with bar, open(partial, "wb") as out:
                task = bar.add_task(info.name, total=info.length)
                async for piece in fetcher.read(cid, 0, info.length):
                    # in a thread: a slow disk must not stall the requests in flight
                    await trio.to_thread.run_sync(_write, out, piece, check)
                    bar.advance(task, len(piece))
                await trio.to_thread.run_sync(_sync, out)
            if check is not None and check.digest() != cid:
                raise ContentCorruptError(
                    f"the bytes read do not hash to {cid.hex()}: the manifest found for it "
                    "describes another work (its registry entry would name the right one)"
                )
            os.replace(partial, path)
            await trio.to_thread.run_sync(sync_dir, path.parent)
        finally:
            partial.unlink(missing_ok=True)
        seconds = trio.current_time() - start
        hosts = fetcher.stats.hosts_used
    return {
        "cid": to_hex(cid),
        "path": str(path),
        "bytes": info.length,
        "seconds": round(seconds, 3),
        "hosts": hosts,
    }


def _write(out: Any, piece: bytes, check: Any) -> None:
    from storenode.files import start_writeback

    before = out.tell()
    out.write(piece)
    if check is not None:
        check.update(piece)
    if before // WRITEBACK_BYTES != out.tell() // WRITEBACK_BYTES:
        out.flush()
        start_writeback(out.fileno())


def _sync(out: Any) -> None:
    out.flush()
    os.fdatasync(out.fileno())


def _render(console: Console, doc: dict[str, Any]) -> None:
    seconds = doc["seconds"]
    rate = doc["bytes"] / seconds / 1e6 if seconds > 0 else float("inf")
    fields(
        console,
        [
            ("fetched", f"{doc['path']} ({doc['bytes']:,} bytes)"),
            ("work", doc["cid"]),
            ("time", f"{seconds:.2f} s, {rate:.1f} MB/s"),
            ("hosts", f"{doc['hosts']} served it"),
        ],
    )


def _cmd_stream(args: argparse.Namespace) -> int:
    import trio

    if args.start < 0:
        raise usage_error(args, f"--start {args.start}: give 0 or more")
    if sys.stdout.isatty():
        raise usage_error(
            args, "stdout is a terminal: pipe the bytes to a player (storenode stream CID | mpv -)"
        )
    home = home_of(args)
    try:
        trio.run(_stream, args, home)
    except BrokenPipeError:
        # the player went away: that ends a stream, it is no failure
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


async def _stream(args: argparse.Namespace, home: Any) -> None:
    import trio

    from storenode.client.session import open_home_fetcher

    stdout = sys.stdout.buffer
    async with open_home_fetcher(home) as fetcher:
        info = await fetcher.open(args.cid)
        if args.start > info.length:
            raise usage_error(
                args, f"--start {args.start} is past the end of the work ({info.length} bytes)"
            )
        async for piece in fetcher.read(args.cid, args.start, info.length):
            # in a thread: a player that reads slowly must not stall the requests
            await trio.to_thread.run_sync(stdout.write, piece)
        await trio.to_thread.run_sync(stdout.flush)


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    fetch = command(
        sub, "fetch", _cmd_fetch, "read a work from its hosts into a file", parents.printing
    )
    fetch.add_argument("cid", type=hash_arg, metavar="CID", help="the work's content id (hex)")
    fetch.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it")
    fetch.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    stream = command(
        sub,
        "stream",
        _cmd_stream,
        "write a work's bytes to stdout, for a player (storenode stream CID | mpv -)",
        parents.common,
    )
    stream.add_argument("cid", type=hash_arg, metavar="CID", help="the work's content id (hex)")
    stream.add_argument(
        "--start", type=int, default=0, metavar="N", help="the first byte to write (0)"
    )
