"""The HTTP API and gateway over a real hypercorn on 127.0.0.1, read with httpx."""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from storenode.api import HttpBindError, serve_api
from storenode.client.content import (
    ContentCorruptError,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.testing.content import MemoryContentSource

TIMEOUT = 10
PIECE = 16 * 1024
SONG = random.Random(5).randbytes(300_000)


@dataclass
class Node:
    content: MemoryContentSource = field(default_factory=lambda: MemoryContentSource(piece=PIECE))
    fields: dict[str, object] = field(
        default_factory=lambda: {"address": "0x12ab", "height": 7, "peers": 3}
    )

    def status(self) -> Mapping[str, object]:
        return self.fields


@asynccontextmanager
async def gateway(node: Node) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """A client of ``node``'s API served on a free port; the server stops on exit."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_api, node, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client, port
        nursery.cancel_scope.cancel()


async def _get_first_bytes(port: int, path: str) -> tuple[trio.SocketStream, bytes, bytes]:
    """GET ``path`` by hand and read the head and the first bytes of the body.

    The stream is left open, for a test that hangs up or stops the server in
    the middle (httpx's streams complain when dropped half-read).
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or received.endswith(b"\r\n\r\n"):
        data = await stream.receive_some()
        assert data, f"the server closed the connection after {received!r}"
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    return stream, head, body


async def _receive_or_reset(stream: trio.SocketStream) -> bytes:
    """The next bytes, or b"" at the end of the stream or when the peer reset it."""
    try:
        return await stream.receive_some()
    except trio.BrokenResourceError:
        return b""


def _song(node: Node) -> bytes:
    return node.content.add("Track 01 – Intro.wav", "audio/wav", SONG)


async def test_a_whole_work_comes_back_byte_exact_with_its_headers() -> None:
    node = Node()
    cid = _song(node)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            reply = await client.get(f"/content/{cid.hex()}")
    assert reply.status_code == 200
    assert reply.content == SONG
    assert reply.headers["content-type"] == "audio/wav"
    assert reply.headers["content-length"] == str(len(SONG))
    assert reply.headers["accept-ranges"] == "bytes"
    assert reply.headers["etag"] == f'"{cid.hex()}"'
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert reply.headers["content-disposition"] == (
        'inline; filename="Track 01  Intro.wav"; '
        "filename*=UTF-8''Track%2001%20%E2%80%93%20Intro.wav"
    )
    assert "content-range" not in reply.headers
    assert reply.headers["content-security-policy"] == "sandbox"
    assert reply.headers["storenode-manifest"] == "registered"


async def test_a_work_the_registry_does_not_vouch_for_says_so() -> None:
    node = Node()
    cid = _song(node)
    node.content.unregistered.add(cid)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            head = await client.head(f"/content/{cid.hex()}")
            reply = await client.get(f"/content/{cid.hex()}", headers={"Range": "bytes=10-19"})
    assert head.headers["storenode-manifest"] == "unregistered"
    assert reply.status_code == 206
    assert reply.headers["storenode-manifest"] == "unregistered"
    assert reply.content == SONG[10:20]


async def test_ranges_at_random_offsets_come_back_byte_exact() -> None:
    node = Node()
    cid = _song(node)
    rng = random.Random(11)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            for _ in range(12):
                first = rng.randrange(len(SONG))
                last = rng.randrange(first, min(len(SONG), first + 3 * PIECE))
                node.content.reads.clear()
                node.content.bulk_reads.clear()
                reply = await client.get(
                    f"/content/0x{cid.hex()}", headers={"Range": f"bytes={first}-{last}"}
                )
                assert reply.status_code == 206
                assert reply.content == SONG[first : last + 1]
                assert reply.headers["content-range"] == f"bytes {first}-{last}/{len(SONG)}"
                assert reply.headers["content-length"] == str(last + 1 - first)
                # A seek fetches the bytes under the range, not the work.
                assert node.content.reads == [(cid, first, last + 1)]
                assert node.content.bulk_reads == [False]  # a player waits for the first byte


async def test_a_suffix_range_gives_the_end_of_the_work() -> None:
    node = Node()
    cid = _song(node)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            reply = await client.get(f"/content/{cid.hex()}", headers={"Range": "bytes=-1000"})
    assert reply.status_code == 206
    assert reply.content == SONG[-1000:]
    assert reply.headers["content-range"] == f"bytes {len(SONG) - 1000}-{len(SONG) - 1}/{len(SONG)}"


async def test_a_range_past_the_end_is_416_with_the_length() -> None:
    node = Node()
    cid = _song(node)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            reply = await client.get(
                f"/content/{cid.hex()}", headers={"Range": f"bytes={len(SONG)}-"}
            )
    assert reply.status_code == 416
    assert reply.headers["content-range"] == f"bytes */{len(SONG)}"
    assert "300000 bytes long" in reply.json()["error"]


async def test_disjoint_or_malformed_ranges_get_the_whole_work() -> None:
    node = Node()
    cid = _song(node)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            for header in ("bytes=0-9,100-109", "bytes=9-0", "pages=1-2"):
                reply = await client.get(f"/content/{cid.hex()}", headers={"Range": header})
                assert (reply.status_code, reply.content) == (200, SONG), header


async def test_if_range_honours_the_range_only_for_this_works_etag() -> None:
    node = Node()
    cid = _song(node)
    etag = f'"{cid.hex()}"'
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            same = await client.get(
                f"/content/{cid.hex()}", headers={"Range": "bytes=0-9", "If-Range": etag}
            )
            other = await client.get(
                f"/content/{cid.hex()}", headers={"Range": "bytes=0-9", "If-Range": '"00"'}
            )
            cached = await client.get(f"/content/{cid.hex()}", headers={"If-None-Match": etag})
    assert (same.status_code, same.content) == (206, SONG[:10])
    assert (other.status_code, other.content) == (200, SONG)
    assert (cached.status_code, cached.content) == (304, b"")
    assert cached.headers["etag"] == etag


async def test_head_has_the_headers_and_no_body_and_fetches_nothing() -> None:
    node = Node()
    cid = _song(node)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            reply = await client.head(f"/content/{cid.hex()}")
    assert reply.status_code == 200
    assert reply.content == b""
    assert reply.headers["content-length"] == str(len(SONG))
    assert reply.headers["content-type"] == "audio/wav"
    assert reply.headers["etag"] == f'"{cid.hex()}"'
    assert node.content.reads == []


async def test_a_malformed_cid_is_400_and_says_what_a_cid_is() -> None:
    with trio.fail_after(TIMEOUT):
        async with gateway(Node()) as (client, _):
            short = await client.get("/content/abc123")
            not_hex = await client.get("/content/" + "g" * 64)
    for reply in (short, not_hex):
        assert reply.status_code == 400
        assert "64 hex digits" in reply.json()["error"]


async def test_content_errors_get_their_own_status_and_message() -> None:
    node = Node()
    priced = node.content.add("priced.mp3", "audio/mpeg", b"p" * 100)
    gone = node.content.add("gone.mp3", "audio/mpeg", b"g" * 100)
    bad = node.content.add("bad.mp3", "audio/mpeg", b"b" * 100)
    node.content.errors[priced] = PaymentRequiredError(
        "this work costs 2 tokens, above the spending cap of 1 token; raise the cap or buy it",
        price=2,
        cap=1,
    )
    node.content.errors[gone] = ContentUnavailableError("only 1 of 3 hosts answered")
    node.content.errors[bad] = ContentCorruptError("stripe 0 does not match its root")
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            unknown = await client.get(f"/content/{bytes(32).hex()}")
            pay = await client.get(f"/content/{priced.hex()}")
            unavailable = await client.get(f"/content/{gone.hex()}")
            corrupt = await client.get(f"/content/{bad.hex()}")
    assert unknown.status_code == 404
    assert "no manifest" in unknown.json()["error"]
    assert pay.status_code == 402
    assert pay.json() == {
        "error": "this work costs 2 tokens, above the spending cap of 1 token; "
        "raise the cap or buy it",
        "price": 2,
        "cap": 1,
    }
    assert unavailable.status_code == 503
    assert unavailable.json() == {"error": "only 1 of 3 hosts answered"}
    assert unavailable.headers["retry-after"] == "30"
    assert corrupt.status_code == 502
    assert corrupt.json() == {"error": "stripe 0 does not match its root"}


async def test_a_failure_before_the_first_byte_still_gets_its_status() -> None:
    node = Node()
    cid = _song(node)
    node.content.fail_at[cid] = 0
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            reply = await client.get(f"/content/{cid.hex()}")
    assert reply.status_code == 503
    assert "stopped answering" in reply.json()["error"]


async def test_a_failure_mid_stream_cuts_the_body_short_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = Node()
    cid = _song(node)
    node.content.fail_at[cid] = 5 * PIECE + 123
    received = bytearray()
    with trio.fail_after(TIMEOUT):
        async with (
            gateway(node) as (client, _),
            client.stream("GET", f"/content/{cid.hex()}") as reply,
        ):
            assert reply.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
                async for data in reply.aiter_raw():
                    received += data
    assert bytes(received) == SONG[: 5 * PIECE + 123]
    assert any(
        "Cut short the response" in r.getMessage() and cid.hex() in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


async def test_the_first_bytes_go_out_before_the_rest_is_read() -> None:
    node = Node()
    cid = _song(node)
    rest = trio.Event()

    async def hold_after_first(_: bytes, offset: int) -> None:
        if offset > 0:
            await rest.wait()

    node.content.before_piece = hold_after_first
    with trio.fail_after(TIMEOUT):
        async with (
            gateway(node) as (client, _),
            client.stream("GET", f"/content/{cid.hex()}") as reply,
        ):
            chunks = reply.aiter_raw()  # read to its end below
            first = await anext(chunks)
            assert SONG.startswith(first)  # arrived while the source was held
            rest.set()
            body = first + b"".join([chunk async for chunk in chunks])
    assert body == SONG


async def test_a_listener_who_hangs_up_stops_the_read() -> None:
    node = Node()
    cid = _song(node)
    stopped = trio.Event()

    async def stall_after_first(_: bytes, offset: int) -> None:
        if offset > 0:
            try:
                await trio.sleep_forever()
            finally:
                stopped.set()

    node.content.before_piece = stall_after_first
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (_, port):
            stream, head, body = await _get_first_bytes(port, f"/content/{cid.hex()}")
            assert head.startswith(b"HTTP/1.1 200") and SONG.startswith(body)
            await stream.aclose()  # hang up after the first bytes
            await stopped.wait()  # the server cancelled the read when the client left


async def test_status_is_the_nodes_status_as_json() -> None:
    node = Node()
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            reply = await client.get("/api/status")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"address": "0x12ab", "height": 7, "peers": 3}


async def test_the_dashboard_shows_status_and_plays_a_pasted_cid() -> None:
    node = Node()
    cid = _song(node)
    with trio.fail_after(TIMEOUT):
        async with gateway(node) as (client, _):
            home = await client.get("/")
            playing = await client.get("/", params={"cid": cid.hex()})
            audio = await client.get(f"/content/{cid.hex()}", headers={"Range": "bytes=0-3"})
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert "<th>height</th><td>7</td>" in home.text
    assert f'src="/content/{cid.hex()}"' in playing.text
    assert audio.content == SONG[:4]


async def test_unknown_routes_and_methods_answer_json() -> None:
    with trio.fail_after(TIMEOUT):
        async with gateway(Node()) as (client, _):
            missing = await client.get("/nothing/here")
            wrong = await client.post(f"/content/{bytes(32).hex()}")
    assert missing.status_code == 404
    assert "/content/<cid>" in missing.json()["error"]
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert "error" in wrong.json()


async def test_the_server_stops_cleanly_when_cancelled_mid_stream() -> None:
    node = Node()
    cid = _song(node)

    async def stall_after_first(_: bytes, offset: int) -> None:
        if offset > 0:
            await trio.sleep_forever()

    node.content.before_piece = stall_after_first
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, node, "127.0.0.1", 0)
            stream, _, _ = await _get_first_bytes(port, f"/content/{cid.hex()}")
            nursery.cancel_scope.cancel()
        async with stream:
            # The server closed the listener's connection, short of the body.
            while await _receive_or_reset(stream):
                pass
        # The port is closed: nothing listens there any more.
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)


async def test_a_port_in_use_is_a_bind_error_that_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(TIMEOUT), pytest.raises(HttpBindError, match=r"\[http\] port"):
            await serve_api(Node(), "127.0.0.1", port)
