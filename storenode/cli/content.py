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
  "hosts", "via"}`` (``via``: ``"hosts"``, or the URL of the node read through,
  when ``hosts`` is null; ``seconds``: from the work opened to the file in
  place, or through a node from the request, its opening included). A work
  whose manifest the registry does not vouch for is checked against its CID
  as it is written.
* ``stream`` writes the bytes from ``--start`` to the end on stdout and
  nothing else (``storenode stream CID | mpv -``); a reader that goes away
  ends it quietly.

When the home's own node is running (``storenode host``, its ``node.json``
naming a live process with an HTTP API), both read through it
(:mod:`storenode.client.via_node`): the node is already in the network and
pays with the same key under the same cap, so the command skips ~0.3 s of
start-up. ``fetch`` hands the node its open temporary file over the home's
local socket and the node writes the work into it (decision 0014; through the
gateway when the node has no socket); ``stream`` copies the bytes from the
gateway to stdout. ``--standalone`` reads from the hosts in the command's own
process anyway; so does a command whose node does not answer.

Failures to read (no such work, too few hosts, corrupt data, payment
needed) exit 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from storenode.cli.amounts import hash_arg
from storenode.cli.common import (
    OutputExistsError,
    Parents,
    command,
    emit,
    fields,
    home_dir,
    home_of,
    to_hex,
    transfer_bar,
    usage_error,
)
from storenode.files import start_writeback, sync_dir

if TYPE_CHECKING:
    from rich.console import Console

    from storenode.client.content import ContentInfo
    from storenode.client.via_node import RunningNode

WRITEBACK_BYTES: Final = 8 << 20
"""``fetch`` asks the kernel to start writing its output back every this many bytes."""
PIECE_BYTES: Final = 1 << 20
"""What a read through the home's node asks of the socket at a time."""
STANDALONE_HELP: Final = (
    "read from the hosts in this process even if the home's node is running "
    "(by default a running node does the reading)"
)

log = logging.getLogger(__name__)


def _cmd_fetch(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if path.is_dir():
        raise usage_error(args, f"{path} is a directory: give a file name with -o")
    if path.exists() and not args.force:
        raise usage_error(args, f"{path} exists: give --force to overwrite it")
    if not path.parent.is_dir():
        raise usage_error(args, f"{path.parent} is not a directory")
    show_bar = sys.stderr.isatty()
    node = None if args.standalone else _running_node(args)
    if node is not None:
        from storenode.client.via_node import NodeNotReachedError

        try:
            doc = _fetch_via_node(node, args.cid, path, show_bar, args.force)
        except NodeNotReachedError as exc:
            log.info("Reading from the hosts instead: %s", exc)
        else:
            emit(args, doc, lambda console: _render(console, doc))
            return 0
    import trio

    from storenode.tuning import tune_allocator

    tune_allocator()
    doc = trio.run(_fetch, home_of(args), args.cid, path, show_bar, args.force)
    emit(args, doc, lambda console: _render(console, doc))
    return 0


def _running_node(args: argparse.Namespace) -> RunningNode | None:
    from storenode.client.via_node import running_node

    return running_node(home_dir(args))


async def _fetch(home: Any, cid: bytes, path: Path, show_bar: bool, force: bool) -> dict[str, Any]:
    import trio

    from storenode.client.session import open_home_fetcher

    partial = _partial(path)
    async with open_home_fetcher(home) as fetcher:
        info = await fetcher.open(cid)
        check = None if info.registered else _keccak()
        bar = transfer_bar(show=show_bar, transient=True)
        start = trio.current_time()
        try:
            with bar, open(partial, "wb") as out:
                await trio.to_thread.run_sync(_reserve, out, info.length)
                task = bar.add_task(info.name, total=info.length)
                async for piece in fetcher.read(cid, 0, info.length, bulk=True):
                    # in a thread: a slow disk must not stall the requests in flight
                    await trio.to_thread.run_sync(_write, out, piece, check)
                    bar.advance(task, len(piece))
                await trio.to_thread.run_sync(_sync, out)
            await trio.to_thread.run_sync(_put_in_place, cid, check, partial, path, force)
        finally:
            partial.unlink(missing_ok=True)
        seconds = trio.current_time() - start
        hosts = fetcher.stats.hosts_used
    return _fetched(cid, path, info.length, seconds, hosts, "hosts")


def _fetch_via_node(
    node: RunningNode, cid: bytes, path: Path, show_bar: bool, force: bool
) -> dict[str, Any]:
    """``fetch`` through the home's running node: the same file, checked the same way.

    The node writes the work straight into the file over its local socket when it
    has one; a node that does not answer there streams it through its gateway."""
    import time

    from storenode.client.via_node import NodeNotReachedError

    partial = _partial(path)
    start = time.monotonic()
    try:
        with transfer_bar(show=show_bar, transient=True) as bar, open(partial, "wb") as out:
            info, check = None, None
            if node.socket is not None:
                try:
                    info = _node_writes(node, cid, out, bar)
                    via = f"unix:{node.socket}"
                except NodeNotReachedError as exc:
                    log.info("Reading through the gateway instead: %s", exc)
            if info is None:
                info = _gateway_streams(node, cid, out, bar)
                via = node.url
            _sync(out)
            if not info.registered:
                check = _hash_file(partial)
        _put_in_place(cid, check, partial, path, force)
    finally:
        partial.unlink(missing_ok=True)
    return _fetched(cid, path, info.length, time.monotonic() - start, None, via)


def _node_writes(node: RunningNode, cid: bytes, out: Any, bar: Any) -> ContentInfo:
    """The node writes the work into ``out`` itself (its local socket)."""
    from storenode.client.via_node import OutputWriteError, fetch_into

    task = None
    shown = 0

    def progress(info: ContentInfo, written: int) -> None:
        nonlocal task, shown
        if task is None:
            task = bar.add_task(info.name, total=info.length)
        bar.advance(task, written - shown)
        shown = written

    try:
        return fetch_into(node, cid, out.fileno(), progress)
    except OutputWriteError as exc:  # the node's words, and the file's name
        raise OutputWriteError(f"{out.name}: {exc}", errno=exc.errno) from None


def _gateway_streams(node: RunningNode, cid: bytes, out: Any, bar: Any) -> ContentInfo:
    """The node streams the work over HTTP and this process writes it into ``out``."""
    from storenode.client.via_node import open_work

    with open_work(node, cid) as reader:
        info = reader.info
        _reserve(out, info.length)
        buffer = memoryview(bytearray(PIECE_BYTES))
        task = bar.add_task(info.name, total=info.length)
        while got := reader.readinto(buffer):
            _write(out, buffer[:got], None)
            bar.advance(task, got)
    return info


def _hash_file(path: Path) -> Any:
    """keccak256 of the file at ``path``, as a hash object (for ``_put_in_place``)."""
    check = _keccak()
    buffer = memoryview(bytearray(PIECE_BYTES))
    with open(path, "rb") as f:
        while got := f.readinto(buffer):
            check.update(buffer[:got])
    return check


def _fetched(
    cid: bytes, path: Path, length: int, seconds: float, hosts: int | None, via: str
) -> dict[str, Any]:
    """What ``fetch`` reports (``--json``'s object)."""
    return {
        "cid": to_hex(cid),
        "path": str(path),
        "bytes": length,
        "seconds": round(seconds, 3),
        "hosts": hosts,
        "via": via,
    }


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _keccak() -> Any:
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256)


def _put_in_place(cid: bytes, check: Any, partial: Path, path: Path, force: bool) -> None:
    """Move the whole, synced ``partial`` to ``path`` (and sync the folder), once its
    bytes hash to ``cid`` if ``check`` hashed them. Without ``force`` a file that
    appeared at ``path`` during the read is left alone (a hard link fails where a
    rename would replace it)."""
    from storenode.client.content import ContentCorruptError

    if check is not None and check.digest() != cid:
        raise ContentCorruptError(
            f"the bytes read do not hash to {cid.hex()}: the manifest found for it "
            "describes another work (its registry entry would name the right one)"
        )
    if force:
        os.replace(partial, path)
    else:
        try:
            os.link(partial, path)
        except FileExistsError:
            raise OutputExistsError(
                f"{path} appeared while the work was read: nothing was written "
                "(give --force to overwrite it)"
            ) from None
        except OSError:  # a file system without hard links: the check at the start stands
            os.replace(partial, path)
        else:
            partial.unlink()
    sync_dir(path.parent)


def _write(out: Any, piece: bytes | memoryview, check: Any) -> None:
    before = out.tell()
    try:
        out.write(piece)
        if before // WRITEBACK_BYTES != out.tell() // WRITEBACK_BYTES:
            out.flush()
            start_writeback(out.fileno())
    except OSError as exc:
        raise _write_failed(out, exc) from None
    if check is not None:
        check.update(piece)


def _sync(out: Any) -> None:
    try:
        out.flush()
        os.fdatasync(out.fileno())
    except OSError as exc:
        raise _write_failed(out, exc) from None


def _reserve(out: Any, length: int) -> None:
    """Allocate the output's ``length`` bytes before the first is read: a disk without
    room fails the command at once (the node does the same for a file it writes)."""
    if length:
        try:
            os.posix_fallocate(out.fileno(), 0, length)
        except OSError as exc:
            raise _write_failed(out, exc) from None


def _write_failed(out: Any, exc: OSError) -> Exception:
    from storenode.client.via_node import OutputWriteError

    return OutputWriteError(f"writing {out.name} failed: {exc.strerror}", errno=exc.errno or 0)


def _render(console: Console, doc: dict[str, Any]) -> None:
    seconds = doc["seconds"]
    rate = doc["bytes"] / seconds / 1e6 if seconds > 0 else float("inf")
    if doc["hosts"] is None:
        source = ("through", f"the home's running node ({doc['via']})")
    else:
        source = ("hosts", f"{doc['hosts']} served it")
    fields(
        console,
        [
            ("fetched", f"{doc['path']} ({doc['bytes']:,} bytes)"),
            ("work", doc["cid"]),
            ("time", f"{seconds:.2f} s, {rate:.1f} MB/s"),
            source,
        ],
    )


def _cmd_stream(args: argparse.Namespace) -> int:
    if args.start < 0:
        raise usage_error(args, f"--start {args.start}: give 0 or more")
    if sys.stdout.isatty():
        raise usage_error(
            args, "stdout is a terminal: pipe the bytes to a player (storenode stream CID | mpv -)"
        )
    try:
        if args.standalone or not _stream_via_node(args):
            import trio

            from storenode.tuning import tune_allocator

            tune_allocator()

            trio.run(_stream, args, home_of(args))
    except BrokenPipeError:
        # the player went away: that ends a stream, it is no failure
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


def _stream_via_node(args: argparse.Namespace) -> bool:
    """``stream`` through the home's running node; False if there is none to ask."""
    from storenode.client.via_node import NodeNotReachedError, StartPastEndError, open_work

    node = _running_node(args)
    if node is None:
        return False
    try:
        reader = open_work(node, args.cid, args.start)
    except NodeNotReachedError as exc:
        log.info("Reading from the hosts instead: %s", exc)
        return False
    except StartPastEndError as exc:
        if args.start == exc.length:
            return True  # nothing is left to write
        raise usage_error(
            args, f"--start {args.start} is past the end of the work ({exc.length} bytes)"
        ) from None
    stdout = sys.stdout.buffer
    buffer = memoryview(bytearray(PIECE_BYTES))
    with reader:
        while got := reader.readinto(buffer):
            stdout.write(buffer[:got])
    stdout.flush()
    return True


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
    fetch.add_argument("--standalone", action="store_true", help=STANDALONE_HELP)
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
    stream.add_argument("--standalone", action="store_true", help=STANDALONE_HELP)
