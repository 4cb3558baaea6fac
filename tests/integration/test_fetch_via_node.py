"""Reading a work through the home's running node: the thin client
(:mod:`storenode.client.via_node`) against the real gateway on 127.0.0.1, and
``storenode fetch``/``stream`` as real processes over a home whose
``node.json`` names that gateway."""

from __future__ import annotations

import functools
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from storenode.api import serve_api
from storenode.client.content import (
    ContentCorruptError,
    ContentInfo,
    ContentNotFoundError,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.via_node import (
    NodeNotReachedError,
    RunningNode,
    StartPastEndError,
    open_work,
)
from storenode.homedir import READY_FILE
from storenode.testing.content import MemoryContentSource

T = TypeVar("T")
TIMEOUT = 30
PIECE = 64 * 1024
SONG = random.Random(7).randbytes(3 * 1024 * 1024 + 12_345)


@dataclass
class Node:
    content: MemoryContentSource = field(default_factory=lambda: MemoryContentSource(piece=PIECE))

    def status(self) -> Mapping[str, object]:
        return {"address": "0x12ab"}


@asynccontextmanager
async def serving(node: Node) -> AsyncIterator[RunningNode]:
    """``node``'s gateway on a free port of 127.0.0.1, as ``node.json`` would name it."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_api, node, "127.0.0.1", 0)
        yield RunningNode(os.getpid(), "127.0.0.1", port)
        nursery.cancel_scope.cancel()


def _read_all(running: RunningNode, cid: bytes, start: int = 0) -> tuple[ContentInfo, bytes]:
    out = bytearray()
    buffer = memoryview(bytearray(100_000))
    with open_work(running, cid, start) as reader:
        while got := reader.readinto(buffer):
            out += buffer[:got]
        return reader.info, bytes(out)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await trio.to_thread.run_sync(fn, *args)


# -- the thin client --------------------------------------------------------------------


async def test_a_whole_work_comes_back_byte_exact_with_what_the_node_knows() -> None:
    node = Node()
    cid = node.content.add("Track 02.flac", "audio/flac", SONG)
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            info, data = await _in_thread(_read_all, running, cid)
    assert data == SONG
    assert info == ContentInfo(cid, "Track 02.flac", "audio/flac", len(SONG), True)
    assert node.content.reads == [(cid, 0, len(SONG))]


async def test_a_read_from_an_offset_gets_the_rest_and_the_whole_length() -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)
    node.content.unregistered.add(cid)
    start = 1_234_567
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            info, data = await _in_thread(_read_all, running, cid, start)
    assert data == SONG[start:]
    assert info.length == len(SONG)
    assert info.registered is False


async def test_a_start_at_or_past_the_end_says_the_length() -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            for start in (len(SONG), len(SONG) + 10):
                with pytest.raises(StartPastEndError) as caught:
                    await _in_thread(open_work, running, cid, start)
                assert caught.value.length == len(SONG)


async def test_the_nodes_errors_come_back_as_the_same_errors() -> None:
    node = Node()
    priced = node.content.add("priced.mp3", "audio/mpeg", b"p" * 100)
    gone = node.content.add("gone.mp3", "audio/mpeg", b"g" * 100)
    bad = node.content.add("bad.mp3", "audio/mpeg", b"b" * 100)
    node.content.errors[priced] = PaymentRequiredError(
        "costs 2 tokens, above the cap", price=2, cap=1
    )
    node.content.errors[gone] = ContentUnavailableError("only 1 of 3 hosts answered")
    node.content.errors[bad] = ContentCorruptError("stripe 0 does not match its root")
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            with pytest.raises(ContentNotFoundError, match="no manifest"):
                await _in_thread(open_work, running, bytes(32))
            with pytest.raises(PaymentRequiredError, match="costs 2 tokens") as pay:
                await _in_thread(open_work, running, priced)
            with pytest.raises(ContentUnavailableError, match="only 1 of 3 hosts answered"):
                await _in_thread(open_work, running, gone)
            with pytest.raises(ContentCorruptError, match="stripe 0 does not match"):
                await _in_thread(open_work, running, bad)
    assert (pay.value.price, pay.value.cap) == (2, 1)


async def test_a_node_that_stops_mid_work_is_an_error_after_correct_bytes() -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)
    cut = 20 * PIECE + 99
    node.content.fail_at[cid] = cut
    got = bytearray()

    def read() -> None:
        buffer = memoryview(bytearray(PIECE))
        with open_work(running, cid) as reader:
            while n := reader.readinto(buffer):
                got.extend(buffer[:n])

    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            with pytest.raises(ContentUnavailableError, match=f"at byte {cut} of {len(SONG)}"):
                await _in_thread(read)
    assert bytes(got) == SONG[:cut]


async def test_a_port_with_nothing_or_something_else_on_it_is_not_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(NodeNotReachedError, match="did not answer"):
        open_work(RunningNode(os.getpid(), "127.0.0.1", free_port), bytes(32))

    async def other_server(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, host="127.0.0.1"), other_server, 0
            )
            port = listeners[0].socket.getsockname()[1]
            with pytest.raises(NodeNotReachedError, match="not a storenode gateway"):
                await _in_thread(open_work, RunningNode(os.getpid(), "127.0.0.1", port), bytes(32))
            nursery.cancel_scope.cancel()


# -- the commands, as processes ---------------------------------------------------------


def _home(tmp_path: Path, running: RunningNode | None, *, port: int = 0) -> Path:
    """A home holding only the ``node.json`` of ``running`` (no config, no key:
    a command that reads through the node opens neither)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    address = f"127.0.0.1:{running.port if running else port}"
    doc = {"pid": os.getpid(), "http": address, "started": time.time()}
    (home / READY_FILE).write_text(json.dumps(doc))
    return home


async def _storenode(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "STORENODE_HOME"}
    return await trio.run_process(
        [sys.executable, "-m", "storenode.cli", "--home", str(home), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )


async def test_fetch_writes_the_work_through_the_running_node(tmp_path: Path) -> None:
    node = Node()
    cid = node.content.add("Track 02.flac", "audio/flac", SONG)
    out = tmp_path / "song.flac"
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            home = _home(tmp_path, running)
            done = await _storenode(home, "fetch", cid.hex(), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr.decode()
    doc = json.loads(done.stdout)
    assert doc["bytes"] == len(SONG)
    assert doc["via"] == running.url
    assert doc["hosts"] is None
    assert out.read_bytes() == SONG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "song.flac"]  # no .part left


async def test_fetch_checks_a_work_the_registry_does_not_vouch_for(tmp_path: Path) -> None:
    node = Node()
    honest = node.content.add("honest.wav", "audio/wav", SONG)
    node.content.unregistered.add(honest)
    forged = bytes(range(32))  # a manifest that claims this CID for other bytes
    node.content.works[forged] = node.content.works[honest]
    node.content.unregistered.add(forged)
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            home = _home(tmp_path, running)
            good = await _storenode(home, "fetch", honest.hex(), "-o", str(tmp_path / "a"))
            bad = await _storenode(home, "fetch", forged.hex(), "-o", str(tmp_path / "b"))
    assert good.returncode == 0, good.stderr.decode()
    assert (tmp_path / "a").read_bytes() == SONG
    assert bad.returncode == 1
    assert f"do not hash to {forged.hex()}" in bad.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "home"]  # nothing of b


async def test_fetch_reports_the_nodes_error_and_writes_nothing(tmp_path: Path) -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)
    node.content.fail_at[cid] = 2 * PIECE
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            home = _home(tmp_path, running)
            missing = await _storenode(home, "fetch", bytes(32).hex(), "-o", str(tmp_path / "a"))
            cut = await _storenode(home, "fetch", cid.hex(), "-o", str(tmp_path / "b"))
    assert missing.returncode == 1
    assert "no manifest found" in missing.stderr.decode()
    assert cut.returncode == 1
    assert "stopped sending" in cut.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


async def test_stream_writes_the_rest_of_the_work_from_start(tmp_path: Path) -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            home = _home(tmp_path, running)
            whole = await _storenode(home, "stream", cid.hex())
            rest = await _storenode(home, "stream", cid.hex(), "--start", "1000001")
            at_end = await _storenode(home, "stream", cid.hex(), "--start", str(len(SONG)))
            past = await _storenode(home, "stream", cid.hex(), "--start", str(len(SONG) + 1))
    assert (whole.returncode, rest.returncode, at_end.returncode) == (0, 0, 0)
    assert whole.stdout == SONG
    assert rest.stdout == SONG[1000001:]
    assert at_end.stdout == b""
    assert past.returncode == 2
    assert f"past the end of the work ({len(SONG)} bytes)" in past.stderr.decode()


async def test_a_node_that_does_not_answer_leaves_the_command_to_read_itself(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    home = _home(tmp_path, None, port=free_port)
    with trio.fail_after(TIMEOUT):
        fetched = await _storenode(home, "fetch", bytes(32).hex(), "-o", str(tmp_path / "a"))
        standalone = await _storenode(
            _home(tmp_path, RunningNode(os.getpid(), "127.0.0.1", 1)),
            "fetch",
            "--standalone",
            bytes(32).hex(),
            "-o",
            str(tmp_path / "a"),
        )
        streamed = await _storenode(home, "stream", bytes(32).hex())
    # the command went on without the node: opening the home (which has no config) fails
    for done in (fetched, standalone, streamed):
        assert done.returncode == 2
        assert "no config file at" in done.stderr.decode()


# -- answers only another server would give ---------------------------------------------


@asynccontextmanager
async def answering(reply: Callable[[bytes], bytes]) -> AsyncIterator[RunningNode]:
    """A server on 127.0.0.1 that answers each request with ``reply(request head)``."""

    async def serve(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some()
            if not data:
                return
            head += data
        await stream.send_all(reply(head))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), serve, 0
        )
        yield RunningNode(os.getpid(), "127.0.0.1", listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


def _ok(cid: bytes, body: bytes, *headers: str) -> Callable[[bytes], bytes]:
    lines = [f'ETag: "{cid.hex()}"', f"Content-Length: {len(body)}", *headers]
    return lambda _: (
        ("HTTP/1.1 200 OK\r\n" + "".join(f"{h}\r\n" for h in lines) + "\r\n").encode() + body
    )


async def test_a_node_that_does_not_say_the_registry_vouches_is_checked(tmp_path: Path) -> None:
    # an older node sends no Storenode-Manifest: its bytes are hashed like an unregistered work's
    forged = bytes(range(32))
    with trio.fail_after(TIMEOUT):
        async with answering(_ok(forged, b"not the work")) as running:
            info, _ = await _in_thread(_read_all, running, forged)
            assert info.registered is False
            done = await _storenode(
                _home(tmp_path, running), "fetch", forged.hex(), "-o", str(tmp_path / "a")
            )
    assert done.returncode == 1
    assert f"do not hash to {forged.hex()}" in done.stderr.decode()
    assert not (tmp_path / "a").exists()


async def test_a_range_answered_from_another_offset_is_not_our_gateway() -> None:
    cid = bytes(32)

    def wrong_start(_: bytes) -> bytes:
        return (
            f'HTTP/1.1 206 Partial Content\r\nETag: "{cid.hex()}"\r\nContent-Length: 5\r\n'
            "Content-Range: bytes 0-4/10\r\nStorenode-Manifest: registered\r\n\r\nhello"
        ).encode()

    with trio.fail_after(TIMEOUT):
        async with answering(wrong_start) as running:
            with pytest.raises(NodeNotReachedError, match="not a storenode gateway"):
                await _in_thread(open_work, running, cid, 5)


async def test_stream_from_past_the_start_of_an_empty_work_says_so(tmp_path: Path) -> None:
    node = Node()
    empty = node.content.add("silence.wav", "audio/wav", b"")
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            home = _home(tmp_path, running)
            whole = await _storenode(home, "stream", empty.hex())
            past = await _storenode(home, "stream", empty.hex(), "--start", "5")
    assert whole.returncode == 0 and whole.stdout == b""
    assert past.returncode == 2
    assert "past the end of the work (0 bytes)" in past.stderr.decode()


@pytest.mark.parametrize("force", [False, True])
async def test_a_file_that_appears_at_the_output_during_a_fetch_is_kept_without_force(
    tmp_path: Path, force: bool
) -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)
    out = tmp_path / "song.wav"

    async def someone_writes_the_output(_: bytes, offset: int) -> None:
        if offset > 0 and not out.exists():
            out.write_bytes(b"mine")

    node.content.before_piece = someone_writes_the_output
    args = ["fetch", cid.hex(), "-o", str(out), *(["--force"] if force else [])]
    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            done = await _storenode(_home(tmp_path, running), *args)
    if force:
        assert done.returncode == 0, done.stderr.decode()
        assert out.read_bytes() == SONG
    else:
        assert done.returncode == 1
        assert "appeared while the work was read" in done.stderr.decode()
        assert out.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "song.wav"]


async def test_a_player_that_stops_reading_ends_a_stream_quietly(tmp_path: Path) -> None:
    node = Node()
    cid = node.content.add("a.wav", "audio/wav", SONG)

    def play_a_little(home: Path) -> tuple[bytes, int, bytes]:
        env = {k: v for k, v in os.environ.items() if k != "STORENODE_HOME"}
        argv = [sys.executable, "-m", "storenode.cli", "--home", str(home), "stream", cid.hex()]
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
        ) as player:
            assert player.stdout is not None and player.stderr is not None
            first = player.stdout.read(1000)
            player.stdout.close()  # the player goes away
            code = player.wait(timeout=TIMEOUT)
            return first, code, player.stderr.read()

    with trio.fail_after(TIMEOUT):
        async with serving(node) as running:
            first, code, err = await _in_thread(play_a_little, _home(tmp_path, running))
    assert first == SONG[:1000]
    assert code == 0, err.decode()
    assert err == b""
