"""The trio shell over real sockets on 127.0.0.1: requests, limits, bad peers."""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass

import msgspec
import pytest
import trio

from storenode.identity import Identity
from storenode.net.errors import (
    ConnectionLostError,
    PeerUnreachableError,
    RequestRefusedError,
    RequestTimeoutError,
)
from storenode.net.peer import Limits, PeerConnection, handshake
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.wire.connection import Role, WireConnection
from storenode.wire.errors import RemoteError
from storenode.wire.messages import ErrorCode, Registry


class Echo(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    text: str


class EchoReply(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    text: str


class Nap(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    seconds: float


class Woke(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    pass


class Blob(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    data: bytes


class BlobSize(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    size: int


@dataclass(frozen=True)
class Addr:
    key: bytes
    host: str
    port: int


def make_registry() -> Registry:
    r = Registry()
    r.register("test.echo", Echo, EchoReply)
    r.register("test.nap", Nap, Woke)
    r.register("test.blob", Blob, BlobSize)
    return r


async def echo(conn: PeerConnection, body: msgspec.Struct) -> msgspec.Struct:
    assert isinstance(body, Echo)
    return EchoReply(body.text)


async def nap(conn: PeerConnection, body: msgspec.Struct) -> msgspec.Struct:
    assert isinstance(body, Nap)
    await trio.sleep(body.seconds)
    return Woke()


async def blob(conn: PeerConnection, body: msgspec.Struct) -> msgspec.Struct:
    assert isinstance(body, Blob)
    return BlobSize(len(body.data))


async def serving(node: RpcNode) -> Addr:
    node.route("test.echo", echo)
    node.route("test.nap", nap)
    node.route("test.blob", blob)
    port = await node.listen("127.0.0.1", 0)
    return Addr(node.identity.public_key, "127.0.0.1", port)


async def test_a_request_gets_its_answer_and_the_connection_is_reused() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        assert await a.request(addr, Echo("hello")) == EchoReply("hello")
        assert await a.request(addr, Echo("again")) == EchoReply("again")
        assert a.connection_count == 1
        assert b.connection_count == 1


async def test_the_server_can_call_back_over_the_inbound_connection() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        a.route("test.echo", echo)
        await a.request(addr, Echo("hi"))
        conn = b.connection(a.identity.public_key)
        assert conn is not None
        assert await conn.request(Echo("back")) == EchoReply("back")
        assert a.connection_count == 1


async def test_many_requests_are_multiplexed_and_answered_out_of_order() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        rng = random.Random(5)
        answers: dict[int, msgspec.Struct] = {}

        async def one(i: int) -> None:
            await a.request(addr, Nap(rng.random() * 0.05))
            answers[i] = await a.request(addr, Echo(f"n{i}"))

        async with trio.open_nursery() as n:
            for i in range(60):
                n.start_soon(one, i)
        assert answers == {i: EchoReply(f"n{i}") for i in range(60)}
        assert a.connection_count == 1


async def test_a_megabyte_message_crosses_intact() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        data = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
        assert await a.request(addr, Blob(data)) == BlobSize(len(data))


async def test_a_request_past_its_deadline_fails_and_the_connection_lives_on() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        with pytest.raises(RequestTimeoutError):
            await a.request(addr, Nap(2.0), timeout=0.1)
        assert await a.request(addr, Echo("still here")) == EchoReply("still here")


async def test_a_handler_past_the_server_deadline_answers_timeout() -> None:
    reg = make_registry()
    async with (
        open_rpc_node(registry=reg) as a,
        open_rpc_node(registry=reg, limits=Limits(request_timeout=0.1)) as b,
    ):
        addr = await serving(b)
        with pytest.raises(RemoteError) as e:
            await a.request(addr, Nap(2.0), timeout=5)
        assert e.value.code == ErrorCode.TIMEOUT


async def test_a_peer_over_its_open_request_limit_is_told_busy() -> None:
    reg = make_registry()
    async with (
        open_rpc_node(registry=reg) as a,
        open_rpc_node(registry=reg, limits=Limits(max_open_requests=2)) as b,
    ):
        addr = await serving(b)
        results: list[object] = []

        async def one() -> None:
            try:
                results.append(await a.request(addr, Nap(0.3)))
            except RemoteError as e:
                results.append(e.code)

        async with trio.open_nursery() as n:
            for _ in range(6):
                n.start_soon(one)
        assert results.count(Woke()) == 2
        assert results.count(ErrorCode.BUSY) == 4
        # and once the work is done, the peer is served again
        assert await a.request(addr, Echo("ok")) == EchoReply("ok")


async def test_a_known_type_this_node_does_not_serve_is_answered_unavailable() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        b.route("test.echo", echo)
        addr = Addr(b.identity.public_key, "127.0.0.1", await b.listen())
        with pytest.raises(RemoteError) as e:
            await a.request(addr, Nap(0))
        assert e.value.code == ErrorCode.UNAVAILABLE


async def test_a_type_the_server_has_never_heard_of_keeps_the_connection() -> None:
    newer, older = make_registry(), Registry()
    older.register("test.echo", Echo, EchoReply)
    async with open_rpc_node(registry=newer) as a, open_rpc_node(registry=older) as b:
        b.route("test.echo", echo)
        addr = Addr(b.identity.public_key, "127.0.0.1", await b.listen())
        with pytest.raises(RemoteError) as e:
            await a.request(addr, Nap(0))
        assert e.value.code == ErrorCode.UNKNOWN_TYPE
        assert await a.request(addr, Echo("fine")) == EchoReply("fine")
        assert b.violations == 0


async def test_a_handler_that_crashes_answers_internal_and_the_node_serves_on() -> None:
    reg = make_registry()

    async def broken(conn: PeerConnection, body: msgspec.Struct) -> msgspec.Struct:
        raise RuntimeError("bug")

    async def refusing(conn: PeerConnection, body: msgspec.Struct) -> msgspec.Struct:
        raise RequestRefusedError(ErrorCode.REFUSED, "no contract")

    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        b.route("test.nap", broken)
        b.route("test.blob", refusing)
        b.route("test.echo", echo)
        addr = Addr(b.identity.public_key, "127.0.0.1", await b.listen())
        with pytest.raises(RemoteError) as e:
            await a.request(addr, Nap(0))
        assert e.value.code == ErrorCode.INTERNAL
        with pytest.raises(RemoteError) as e:
            await a.request(addr, Blob(b""))
        assert (e.value.code, e.value.message) == (ErrorCode.REFUSED, "no contract")
        assert await a.request(addr, Echo("up")) == EchoReply("up")


async def test_dialling_a_peer_that_proves_another_key_fails() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        impostor = Addr(Identity.generate().public_key, addr.host, addr.port)
        with pytest.raises(PeerUnreachableError):
            await a.request(impostor, Echo("who are you"))


async def test_dialling_a_closed_port_fails_promptly() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    async with open_rpc_node(registry=make_registry()) as a:
        with trio.fail_after(5), pytest.raises(PeerUnreachableError):
            await a.request(Addr(Identity.generate().public_key, "127.0.0.1", port), Echo("x"))


def _reset(sock: trio.socket.SocketType) -> None:
    """Make the coming close send a TCP reset (RST) instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_a_peer_that_resets_during_the_handshake_is_unreachable_not_fatal() -> None:
    """A peer that vanishes mid-handshake (its process exits, say) resets the
    connection: the dial fails as unreachable, with no mark against the peer, and
    the node dials others as before."""
    reg = make_registry()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def accept_and_reset(task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        for _ in range(2):
            stream = await listeners[0].accept()
            await stream.receive_some(65536)  # the dialler's first handshake message
            _reset(stream.socket)
            await stream.aclose()

    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        async with trio.open_nursery() as nursery:
            await nursery.start(accept_and_reset)
            gone = Addr(Identity.generate().public_key, "127.0.0.1", port)
            for _ in range(2):
                with trio.fail_after(5), pytest.raises(PeerUnreachableError):
                    await a.request(gone, Echo("anyone?"))
        assert a.violations == 0
        assert await a.request(addr, Echo("still here")) == EchoReply("still here")
    await listeners[0].aclose()


async def test_a_dialler_that_resets_during_the_handshake_leaves_the_server_serving() -> None:
    """The server answers handshake message 1 into a connection its peer has just
    reset: the server logs it and serves on."""
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        for _ in range(3):
            stream = await trio.open_tcp_stream(addr.host, addr.port)
            wire = WireConnection(Identity.generate(), Role.INITIATOR)
            await stream.send_all(wire.start())
            _reset(stream.socket)
            await stream.aclose()
        await trio.sleep(0.2)  # let the server meet the resets
        assert await a.request(addr, Echo("served")) == EchoReply("served")


async def test_a_peer_that_dies_mid_request_fails_the_request() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, trio.open_nursery() as n:
        addr_box: list[Addr] = []
        stop = trio.Event()

        async def server() -> None:
            async with open_rpc_node(registry=reg) as b:
                addr_box.append(await serving(b))
                await stop.wait()

        n.start_soon(server)
        while not addr_box:
            await trio.sleep(0.01)
        n.start_soon(lambda: _stop_soon(stop))
        with pytest.raises(ConnectionLostError):
            await a.request(addr_box[0], Nap(10), timeout=5)


async def _stop_soon(stop: trio.Event) -> None:
    await trio.sleep(0.2)
    stop.set()


async def test_idle_connections_are_closed_and_redialled_on_demand() -> None:
    reg = make_registry()
    fast = Limits(idle_timeout=0.2)
    async with open_rpc_node(registry=reg, limits=fast) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        await a.request(addr, Echo("1"))
        with trio.fail_after(3):
            while a.connection_count or b.connection_count:
                await trio.sleep(0.05)
        assert await a.request(addr, Echo("2")) == EchoReply("2")


async def _raw_authenticated(addr: Addr) -> tuple[trio.SocketStream, WireConnection]:
    stream = await trio.open_tcp_stream(addr.host, addr.port)
    wire = WireConnection(Identity.generate(), Role.INITIATOR, expected_peer=addr.key)
    await handshake(stream, wire, timeout=5)
    return stream, wire


async def _closed_by_peer(stream: trio.SocketStream) -> bool:
    with trio.move_on_after(5):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


@pytest.mark.parametrize("garbage", ["bad_frame", "bad_message"])
async def test_a_peer_that_breaks_the_protocol_is_cut_off_and_others_are_served(
    garbage: str,
) -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as a, open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        stream, wire = await _raw_authenticated(addr)
        if garbage == "bad_frame":
            await stream.send_all(b"\x00\x40" + random.Random(2).randbytes(64))
        else:
            await stream.send_all(wire.send_message(b"\xc1 not msgpack"))
        assert await _closed_by_peer(stream)
        assert b.violations == 1
        assert await a.request(addr, Echo("served")) == EchoReply("served")
        await stream.aclose()


async def test_a_peer_that_keeps_breaking_the_protocol_is_banned() -> None:
    reg = make_registry()
    async with open_rpc_node(registry=reg) as b:
        addr = await serving(b)
        liar = Identity.generate()
        for _ in range(3):
            stream = await trio.open_tcp_stream(addr.host, addr.port)
            wire = WireConnection(liar, Role.INITIATOR, expected_peer=addr.key)
            await handshake(stream, wire, timeout=5)
            await stream.send_all(wire.send_message(b"\xc1"))
            assert await _closed_by_peer(stream)
            await stream.aclose()
        assert b.scores.is_banned(liar.public_key, trio.current_time())
        # a banned peer is dropped right after its handshake
        stream = await trio.open_tcp_stream(addr.host, addr.port)
        wire = WireConnection(liar, Role.INITIATOR, expected_peer=addr.key)
        await handshake(stream, wire, timeout=5)
        assert await _closed_by_peer(stream)
        await stream.aclose()
