"""The node's local socket: a command of the node's own home hands the node the
file it opened, and the node writes a work into it.

Through the gateway, ``storenode fetch`` receives the work over a TCP
connection on loopback and writes it itself: every byte is copied into the
node's socket, out of the command's, and into the file, in two processes
sharing the machine's cores. Here the command sends the node its open file
(``SCM_RIGHTS``) with the CID, and the node writes each piece into it as the
fetcher decodes it, in a worker thread so a slow disk never stalls the
requests in flight; the command only waits, shows progress, syncs the file and
renames it into place. A failure at any point reaches the command as the same
:class:`~storenode.client.content.ContentError`, with the node's words.

The socket is ``<home>/node.sock``, ``AF_UNIX``/``SOCK_SEQPACKET``, mode 0600;
the node answers only processes of its own user (``SO_PEERCRED``) and writes
only into a regular file open for writing without ``O_APPEND``. Messages are
in docs/specs/local-socket.md and :mod:`storenode.client.local_protocol`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
import struct
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from pathlib import Path
from typing import Final

import trio

from storenode.client.content import ContentError, ContentInfo, ContentSource
from storenode.client.local_protocol import (
    MAX_MESSAGE,
    MAX_PATH,
    LocalMessageError,
    encode,
    error_reply,
    info_reply,
    parse_request,
    plain_error_reply,
)
from storenode.files import start_writeback

logger = logging.getLogger(__name__)

PROGRESS_BYTES: Final = 8 << 20
"""The node says how far it got, and starts the file's writeback, every this many bytes."""
_BACKLOG: Final = 16
_UCRED: Final = struct.Struct("3i")  # pid, uid, gid


class LocalSocketError(Exception):
    """The local socket could not be opened (the node then serves without it)."""


async def serve_local(
    content: ContentSource,
    path: Path,
    *,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve fetches into files on the Unix socket at ``path`` until cancelled.

    A stale socket file at ``path`` (left by a node that crashed; the home's
    lock says no other node runs) is replaced; anything else there is
    :class:`LocalSocketError`, as is a path too long for a socket address.
    The file is removed when the serving stops."""
    sock = await _bind(path)
    try:
        task_status.started(path)
        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await sock.accept()
                nursery.start_soon(_serve_one, content, conn)
    finally:
        sock.close()
        path.unlink(missing_ok=True)


async def _bind(path: Path) -> trio.socket.SocketType:
    if len(os.fsencode(path)) > MAX_PATH:
        raise LocalSocketError(
            f"{path} is longer than a Unix socket address allows ({MAX_PATH} bytes)"
        )
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        old_mask = os.umask(0o177)  # the file is born 0600: no window where others may connect
        try:
            await sock.bind(os.fsencode(path))
        finally:
            os.umask(old_mask)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise LocalSocketError(f"cannot listen on {path}: {exc.strerror}") from None
    return sock


async def _serve_one(content: ContentSource, conn: trio.socket.SocketType) -> None:
    with conn:
        try:
            pid, uid, _ = _UCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            )
            if uid != os.getuid():
                logger.warning("Refused a local request from pid %d of user %d", pid, uid)
                return
            with trio.fail_after(10):  # a command sends its request as it connects
                data, fds = await _receive(conn)
        except (OSError, trio.TooSlowError):
            return
        try:
            await _fetch_into(content, conn, data, fds)
        except OSError:
            pass  # the command went away: nothing is left to tell it
        except Exception:  # a bug in one read must not take the node's socket down
            logger.exception("A local fetch failed; the command is told the node stopped")
        finally:
            for fd in fds:
                os.close(fd)


async def _receive(conn: trio.socket.SocketType) -> tuple[bytes, list[int]]:
    """One packet and the descriptors that came with it (all of them, to be closed)."""
    # A packet longer than MAX_MESSAGE comes back cut to MAX_MESSAGE + 1 bytes, which
    # parse_request refuses; descriptors beyond the 16 room is made for are closed by
    # the kernel.
    data, ancillary, _, _ = await conn.recvmsg(
        MAX_MESSAGE + 1, socket.CMSG_SPACE(16 * 4), socket.MSG_CMSG_CLOEXEC
    )
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    return data, fds


async def _fetch_into(
    content: ContentSource, conn: trio.socket.SocketType, data: bytes, fds: list[int]
) -> None:
    try:
        request = parse_request(data)
        if len(fds) != 1:
            raise LocalMessageError(f"a request carries one file descriptor, not {len(fds)}")
        _check_writable(fds[0])
    except LocalMessageError as exc:
        await conn.send(plain_error_reply("bad_request", str(exc), None))
        return
    fd = fds[0]
    try:
        info = await content.open(request.cid)
    except ContentError as exc:
        await conn.send(error_reply(exc, None))
        return
    await conn.send(info_reply(info))
    progress = _Progress()
    outcome: bytes | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_on_hangup, conn, nursery.cancel_scope)
        # Everything the write raises is handled in here: out of the nursery it
        # would come wrapped in an exception group.
        try:
            await _write_work(content, conn, info, fd, progress)
            outcome = encode({"done": progress.written})
        except ContentError as exc:
            logger.warning(
                "Stopped writing work %s (%s) for a local fetch at byte %d of %d: %s",
                request.cid.hex(),
                info.name,
                progress.written,
                info.length,
                exc,
            )
            outcome = error_reply(exc, progress.written)
        except _WriteFailedError as exc:
            outcome = plain_error_reply(
                "write_failed",
                f"writing the file failed at byte {exc.at}: {exc.reason.strerror}",
                exc.at,
                errno=exc.reason.errno or 0,
            )
        except OSError:
            pass  # the command went away while told of progress
        nursery.cancel_scope.cancel()
    if outcome is not None:  # None: the command hung up, or went away
        await conn.send(outcome)


class _Progress:
    written = 0


async def _write_work(
    content: ContentSource,
    conn: trio.socket.SocketType,
    info: ContentInfo,
    fd: int,
    progress: _Progress,
) -> None:
    if info.length:  # the whole file's blocks first: a disk too small fails at once
        await trio.to_thread.run_sync(_reserve, fd, info.length)
    try:
        async with aclosing(_pieces(content, info.cid, info.length)) as pieces:
            async for piece in pieces:
                before = progress.written
                after = before + len(piece)
                boundary = before // PROGRESS_BYTES != after // PROGRESS_BYTES
                await trio.to_thread.run_sync(_write_at, fd, piece, before, boundary)
                progress.written = after
                if boundary:
                    await conn.send(encode({"written": after}))
    except BaseException:
        with suppress(OSError):  # the file holds what was written, not the reservation
            os.ftruncate(fd, progress.written)
        raise


async def _pieces(content: ContentSource, cid: bytes, length: int) -> AsyncGenerator[bytes, None]:
    """The work's non-empty pieces, with the source's read closed however it ends."""
    source = content.read(cid, 0, length, bulk=True)  # a file, not a stream
    try:
        async for piece in source:
            if piece:
                yield piece
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


class _WriteFailedError(Exception):
    """The file could not be written at byte ``at`` (the disk full, say)."""

    def __init__(self, at: int, reason: OSError) -> None:
        super().__init__(at, reason)
        self.at = at
        self.reason = reason


def _reserve(fd: int, length: int) -> None:
    """Allocate the file's ``length`` bytes before any is written (``fallocate``): a
    disk without room says so before the read starts, and the writes that follow
    allocate nothing (a third less CPU for them, measured on ext4)."""
    try:
        os.posix_fallocate(fd, 0, length)
    except OSError as exc:
        raise _WriteFailedError(0, exc) from exc


def _write_at(fd: int, piece: bytes | memoryview, offset: int, writeback: bool) -> None:
    view = memoryview(piece)
    done = 0
    try:
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)
    except OSError as exc:
        raise _WriteFailedError(offset + done, exc) from exc
    if writeback:
        start_writeback(fd)


def _check_writable(fd: int) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise LocalMessageError("the node writes a work only into a regular file")
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if flags & os.O_ACCMODE not in (os.O_WRONLY, os.O_RDWR):
        raise LocalMessageError("the file sent is not open for writing")
    if flags & os.O_APPEND:
        raise LocalMessageError("the file sent is open for appending: the node writes at offsets")


async def _cancel_on_hangup(conn: trio.socket.SocketType, scope: trio.CancelScope) -> None:
    """Stop the read once the command closes its end (or sends anything more)."""
    with suppress(OSError):  # reset: gone all the same
        await conn.recv(1)
    scope.cancel()


__all__ = ["PROGRESS_BYTES", "LocalSocketError", "serve_local"]
