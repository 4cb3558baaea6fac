"""The node's local socket (:mod:`storenode.api.local`) against the thin client's
``fetch_into`` (:mod:`storenode.client.via_node`), both real, on a Unix socket:
the node writes a work into the file the command sent it, says why it stopped
when it stops, refuses what is not a writable regular file, and stops reading
when the command goes away. Then ``storenode fetch`` as a real process over a
home whose ``node.json`` names that socket."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from storenode.api import local
from storenode.api.local import LocalSocketError, serve_local
from storenode.client.content import (
    ContentCorruptError,
    ContentInfo,
    ContentNotFoundError,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.local_protocol import (
    MAX_MESSAGE,
    ErrorReply,
    InfoReply,
    fetch_request,
    parse_reply,
)
from storenode.client.via_node import (
    NodeNotReachedError,
    OutputWriteError,
    RunningNode,
    fetch_into,
)
from storenode.homedir import READY_FILE
from storenode.testing.content import MemoryContentSource

TIMEOUT = 30
PIECE = 64 * 1024
SONG = os.urandom(3 * 1024 * 1024 + 12_345)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a socket address holds 107 bytes, and pytest's
    tmp_path with a long test name may be longer."""
    with tempfile.TemporaryDirectory(prefix="sn-", dir="/tmp") as name:
        yield Path(name)


@asynccontextmanager
async def local_node(source: MemoryContentSource, folder: Path) -> AsyncIterator[RunningNode]:
    """``source`` served on ``folder/node.sock``, as ``node.json`` names a node
    (this process: the socket's server is this process)."""
    async with trio.open_nursery() as nursery:
        path = await nursery.start(serve_local, source, folder / "node.sock")
        yield RunningNode(os.getpid(), "127.0.0.1", 1, str(path))
        nursery.cancel_scope.cancel()


def _fetch(
    running: RunningNode, cid: bytes, out: Path, progress: list[int] | None = None
) -> ContentInfo:
    with open(out, "wb") as f:

        def note(info: ContentInfo, written: int) -> None:
            assert progress is not None
            progress.append(written)

        return fetch_into(running, cid, f.fileno(), note if progress is not None else None)


_T = TypeVar("_T")


async def _in_thread(fn: Callable[..., _T], *args: object) -> _T:
    return await trio.to_thread.run_sync(fn, *args)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- the work in the file ------------------------------------------------------------------


async def test_the_node_writes_the_whole_work_into_the_file_sent(
    short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "PROGRESS_BYTES", 1 << 20)
    source = MemoryContentSource(piece=PIECE)
    cid = source.add("Track 01.flac", "audio/flac", SONG)
    out = tmp_path / "song.flac"
    progress: list[int] = []
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            info = await _in_thread(_fetch, running, cid, out, progress)
    assert info == ContentInfo(cid, "Track 01.flac", "audio/flac", len(SONG), True)
    assert out.read_bytes() == SONG
    assert progress == [1 << 20, 2 << 20, 3 << 20]  # each MiB passed, in order
    assert source.reads == [(cid, 0, len(SONG))]
    assert source.bulk_reads == [True]  # a file being written: no slow start


async def test_an_empty_work_is_an_empty_file(short_dir: Path, tmp_path: Path) -> None:
    source = MemoryContentSource()
    cid = source.add("silence.wav", "audio/wav", b"")
    out = tmp_path / "silence.wav"
    out.write_bytes(b"")
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            info = await _in_thread(_fetch, running, cid, out)
    assert info.length == 0
    assert out.read_bytes() == b""


async def test_the_socket_is_the_users_alone_and_goes_when_the_node_stops(
    short_dir: Path,
) -> None:
    source = MemoryContentSource()
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            assert running.socket is not None
            mode = os.stat(running.socket).st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
    assert not (short_dir / "node.sock").exists()


# -- errors, before and after the first byte -----------------------------------------------


async def test_the_nodes_errors_before_the_first_byte_come_back_as_the_same_errors(
    short_dir: Path, tmp_path: Path
) -> None:
    source = MemoryContentSource()
    priced = source.add("p.wav", "audio/wav", b"x")
    source.errors[priced] = PaymentRequiredError("work costs 2 tokens", price=2, cap=1)
    gone = source.add("g.wav", "audio/wav", b"y")
    source.errors[gone] = ContentUnavailableError("only 1 of 3 hosts answered")
    bad = source.add("b.wav", "audio/wav", b"z")
    source.errors[bad] = ContentCorruptError("stripe 0 does not match its hash")
    out = tmp_path / "out"
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            with pytest.raises(ContentNotFoundError, match="no manifest found"):
                await _in_thread(_fetch, running, bytes(32), out)
            with pytest.raises(PaymentRequiredError, match="costs 2 tokens") as pay:
                await _in_thread(_fetch, running, priced, out)
            with pytest.raises(ContentUnavailableError, match="only 1 of 3 hosts answered"):
                await _in_thread(_fetch, running, gone, out)
            with pytest.raises(ContentCorruptError, match="stripe 0 does not match"):
                await _in_thread(_fetch, running, bad, out)
    assert (pay.value.price, pay.value.cap) == (2, 1)
    assert out.read_bytes() == b""


async def test_a_read_that_fails_midway_says_why_and_where_after_correct_bytes(
    short_dir: Path, tmp_path: Path
) -> None:
    source = MemoryContentSource(piece=PIECE)
    cid = source.add("a.wav", "audio/wav", SONG)
    cut = 20 * PIECE + 99
    source.fail_at[cid] = cut
    out = tmp_path / "a.wav"
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            with pytest.raises(ContentUnavailableError) as failed:
                await _in_thread(_fetch, running, cid, out)
    # the reason is the node's own (through the gateway it was only in its log)
    assert "stopped answering at byte" in str(failed.value)
    assert f"stopped writing at byte {cut} of {len(SONG)}" in str(failed.value)
    assert out.read_bytes() == SONG[:cut]


@pytest.mark.parametrize("reserved", [True, False])
async def test_a_file_the_node_cannot_write_is_an_output_error_not_the_works(
    short_dir: Path, reserved: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot grow past 1 MiB, as a full disk: the node's reservation
    of the whole file fails before the read starts; where the file system cannot
    reserve (``reserved`` False), the write that reaches the 1 MiB fails."""
    if not reserved:
        monkeypatch.setattr(os, "posix_fallocate", lambda fd, offset, length: None)
    source = MemoryContentSource(piece=PIECE)
    cid = source.add("a.wav", "audio/wav", SONG)
    fd = os.memfd_create("out", os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, 1 << 20)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW)
        at = 0 if reserved else 1 << 20
        with trio.fail_after(TIMEOUT):
            async with local_node(source, short_dir) as running:
                failed_at = f"writing the file failed at byte {at}:"
                with pytest.raises(OutputWriteError, match=failed_at):
                    await _in_thread(fetch_into, running, cid, fd)
        assert os.pread(fd, 1 << 20, 0) == (bytes(1 << 20) if reserved else SONG[: 1 << 20])
        assert source.reads == ([] if reserved else [(cid, 0, len(SONG))])
    finally:
        os.close(fd)


class _Broken(MemoryContentSource):
    """A source whose read fails with what no source should raise (a bug)."""

    async def _pieces(self, cid: bytes, data: bytes, start: int, end: int) -> AsyncIterator[bytes]:
        yield data[start : start + PIECE]
        raise RuntimeError("a bug in the reader")


async def test_a_bug_in_one_read_is_logged_and_the_node_serves_on(
    short_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _Broken(piece=PIECE)
    cid = source.add("a.wav", "audio/wav", SONG)
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            with pytest.raises(ContentUnavailableError, match="it closed the socket"):
                await _in_thread(_fetch, running, cid, tmp_path / "a")
            with pytest.raises(ContentUnavailableError, match="it closed the socket"):
                await _in_thread(_fetch, running, cid, tmp_path / "b")  # still answering
    assert "A local fetch failed" in caplog.text
    assert "a bug in the reader" in caplog.text


# -- what the node refuses ----------------------------------------------------------------


async def test_anything_but_a_regular_file_open_for_writing_is_refused(
    short_dir: Path, tmp_path: Path
) -> None:
    source = MemoryContentSource()
    cid = source.add("a.wav", "audio/wav", SONG)
    target = tmp_path / "f"
    target.write_bytes(b"keep")
    read_end, write_end = os.pipe()
    read_only = os.open(target, os.O_RDONLY)
    appending = os.open(target, os.O_WRONLY | os.O_APPEND)
    before = _open_fds()
    try:
        with trio.fail_after(TIMEOUT):
            async with local_node(source, short_dir) as running:
                for fd, why in [
                    (write_end, "only into a regular file"),
                    (read_only, "not open for writing"),
                    (appending, "open for appending"),
                ]:
                    with pytest.raises(NodeNotReachedError, match=why):
                        await _in_thread(fetch_into, running, cid, fd)
                after = _open_fds()
    finally:
        for fd in (read_end, write_end, read_only, appending):
            os.close(fd)
    assert target.read_bytes() == b"keep"
    assert source.reads == []
    assert after <= before + 2  # the listener and its wakeup: no descriptor received is kept


@pytest.mark.parametrize(
    ("packet", "fds", "why"),
    [
        (b"", 1, "JSON object"),
        (b"\xff\xfe", 1, "JSON object"),
        (b"[1, 2]", 1, "one JSON object"),
        (b'{"fetch": "00"}', 1, "64 hex digits"),
        (b'{"fetch": "' + b"0" * 64 + b'", "start": 5}', 1, "the one key 'fetch'"),
        (b'{"fetch": "' + b"g" * 64 + b'"}', 1, "64 hex digits"),
        (b" " * (MAX_MESSAGE + 1), 1, "over 4096"),
        (fetch_request(bytes(32)), 0, "one file descriptor, not 0"),
        (fetch_request(bytes(32)), 2, "one file descriptor, not 2"),
    ],
)
async def test_a_malformed_request_gets_a_bad_request_and_the_node_serves_on(
    short_dir: Path, tmp_path: Path, packet: bytes, fds: int, why: str
) -> None:
    source = MemoryContentSource()
    cid = source.add("a.wav", "audio/wav", SONG)
    files = [os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT) for i in range(fds)]

    def ask(path: str) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            socket.send_fds(sock, [packet], files) if files else sock.send(packet)
            return sock.recv(MAX_MESSAGE)

    try:
        with trio.fail_after(TIMEOUT):
            async with local_node(source, short_dir) as running:
                assert running.socket is not None
                reply = parse_reply(await _in_thread(ask, running.socket))
                info = await _in_thread(_fetch, running, cid, tmp_path / "after")
    finally:
        for fd in files:
            os.close(fd)
    assert isinstance(reply, ErrorReply)
    assert reply.kind == "bad_request"
    assert why in reply.message
    assert info.length == len(SONG)  # the next request is served as if nothing happened


async def test_a_command_that_goes_away_stops_the_nodes_read(
    short_dir: Path, tmp_path: Path
) -> None:
    source = MemoryContentSource(piece=PIECE)
    cid = source.add("a.wav", "audio/wav", SONG)
    offsets: list[int] = []
    reached = threading.Event()
    stopped = trio.Event()

    async def hold_at_the_fifth_piece(_: bytes, offset: int) -> None:
        offsets.append(offset)
        if offset == 4 * PIECE:
            reached.set()
            try:
                await trio.sleep_forever()
            finally:
                stopped.set()

    source.before_piece = hold_at_the_fifth_piece

    def start_and_leave(path: str) -> object:
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock,
            open(tmp_path / "out", "wb") as f,
        ):
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            socket.send_fds(sock, [fetch_request(cid)], [f.fileno()])
            first = parse_reply(sock.recv(MAX_MESSAGE))
            assert reached.wait(TIMEOUT)
            return first  # and the command goes, closing its socket

    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            assert running.socket is not None
            first = await _in_thread(start_and_leave, running.socket)
            await stopped.wait()  # the held read was cancelled
            await trio.sleep(0.2)
    assert isinstance(first, InfoReply)
    assert offsets == [i * PIECE for i in range(5)]  # nothing read after it


async def test_a_socket_served_by_another_process_is_not_the_node(
    short_dir: Path, tmp_path: Path
) -> None:
    source = MemoryContentSource()
    cid = source.add("a.wav", "audio/wav", SONG)
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            someone_else = running._replace(pid=os.getppid())
            with pytest.raises(NodeNotReachedError, match="not the node's"):
                await _in_thread(_fetch, someone_else, cid, tmp_path / "out")
    assert source.reads == []
    with pytest.raises(NodeNotReachedError, match=r"node\.sock"):  # nothing listens any more
        _fetch(running, cid, tmp_path / "out")


async def test_a_stale_socket_is_replaced_and_other_files_are_left_alone(
    short_dir: Path,
) -> None:
    source = MemoryContentSource()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(short_dir / "node.sock"))
    stale.close()  # the file stays, as after a crash
    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            assert running.socket == str(short_dir / "node.sock")
        (short_dir / "node.sock").write_text("not a socket")
        async with trio.open_nursery() as nursery:
            with pytest.raises(LocalSocketError, match="cannot listen"):
                await nursery.start(serve_local, source, short_dir / "node.sock")
            with pytest.raises(LocalSocketError, match="longer than a Unix socket address"):
                await nursery.start(serve_local, source, short_dir / ("x" * 120))
    assert (short_dir / "node.sock").read_text() == "not a socket"


# -- storenode fetch, as a process -----------------------------------------------------------


async def test_fetch_hands_its_file_to_the_node_and_checks_what_it_must(
    short_dir: Path, tmp_path: Path
) -> None:
    source = MemoryContentSource(piece=PIECE)
    cid = source.add("Track 02.flac", "audio/flac", SONG)
    honest = source.add("honest.wav", "audio/wav", SONG[::-1])
    source.unregistered.add(honest)
    forged = bytes(range(32))  # a manifest that claims this CID for other bytes
    source.works[forged] = source.works[honest]
    source.unregistered.add(forged)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "STORENODE_HOME"}

    async def fetch(cid: bytes, name: str) -> subprocess.CompletedProcess[bytes]:
        argv = ["--home", str(home), "fetch", cid.hex(), "-o", str(tmp_path / name), "--json"]
        return await trio.run_process(
            [sys.executable, "-m", "storenode.cli", *argv],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )

    with trio.fail_after(TIMEOUT):
        async with local_node(source, short_dir) as running:
            # no HTTP gateway at all: only the socket can serve it
            doc = {"pid": os.getpid(), "http": "127.0.0.1:1", "socket": running.socket}
            (home / READY_FILE).write_text(json.dumps(doc | {"started": time.time()}))
            done = await fetch(cid, "song.flac")
            good = await fetch(honest, "honest.wav")
            bad = await fetch(forged, "forged.wav")
            missing = await fetch(bytes(32), "missing.wav")
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    assert out["via"] == f"unix:{running.socket}"
    assert out["bytes"] == len(SONG)
    assert (tmp_path / "song.flac").read_bytes() == SONG
    assert good.returncode == 0, good.stderr.decode()
    assert (tmp_path / "honest.wav").read_bytes() == SONG[::-1]
    assert bad.returncode == 1
    assert f"do not hash to {forged.hex()}" in bad.stderr.decode()
    assert missing.returncode == 1
    assert "no manifest found" in missing.stderr.decode()
    # nothing of the failures, and no .part left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "honest.wav", "song.flac"]
