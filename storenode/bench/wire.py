"""``storenode bench wire``: the encrypted wire against plain TCP, same run.

One connection over loopback; the sender streams 1 MiB messages and the
receiver, in its own process (each end gets a core, as two nodes would),
decrypts and reassembles every one, then answers with one short message. The
figure is MB of message bodies per second from the first byte sent to the
answer received.

``encrypted_MBps``: Noise-XX-authenticated AES-256-GCM frames
(:class:`~storenode.wire.connection.WireConnection` on both ends).
``plain_MBps``: the same messages, each preceded by its length (u32), over
plain trio TCP: the ceiling the wire is measured against.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from typing import Any

import trio

from storenode.identity import Identity
from storenode.net.peer import handshake
from storenode.wire.connection import MessageReceived, Role, WireConnection

MB = 1_000_000
MESSAGE = 1 << 20
ACK = b"done"
TARGET_MBPS = 500


async def _receive_messages(
    stream: trio.SocketStream, wire: WireConnection | None, count: int
) -> None:
    got = 0
    if wire is not None:
        while got < count:
            while (event := wire.next_event()) is not None:
                if isinstance(event, MessageReceived):
                    got += 1
            if got < count:
                wire.receive_data(await stream.receive_some(1 << 18))
        await stream.send_all(wire.send_message(ACK))
        return
    buf = bytearray()
    need = 4
    header = True
    while got < count:
        data = await stream.receive_some(1 << 18)
        if not data:
            raise ConnectionError("sender went away")
        buf += data
        while len(buf) >= need:
            if header:
                (need,) = struct.unpack_from(">I", buf)
                del buf[:4]
                header = False
            else:
                del buf[:need]
                got += 1
                need, header = 4, True
    await stream.send_all(ACK)


async def _serve(encrypted: bool, count: int) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    stream = await listeners[0].accept()
    wire = None
    if encrypted:
        wire = WireConnection(Identity.generate(), Role.RESPONDER)
        await handshake(stream, wire, timeout=10)
    await _receive_messages(stream, wire, count)
    await stream.aclose()


async def _send(port: int, encrypted: bool, count: int) -> float:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    body = bytes(range(256)) * (MESSAGE // 256)
    wire = None
    if encrypted:
        wire = WireConnection(Identity.generate(), Role.INITIATOR)
        await handshake(stream, wire, timeout=10)
    start = time.perf_counter()
    for _ in range(count):
        if wire is not None:
            await stream.send_all(wire.send_message(body))
        else:
            await stream.send_all(struct.pack(">I", len(body)) + body)
    # wait for the answer
    if wire is not None:
        while True:
            event = wire.next_event()
            if isinstance(event, MessageReceived):
                break
            wire.receive_data(await stream.receive_some(1 << 16))
    else:
        while await stream.receive_some(16) != ACK:
            pass
    elapsed = time.perf_counter() - start
    await stream.aclose()
    return count * MESSAGE / elapsed / MB


def _one_run(encrypted: bool, count: int) -> float:
    child = subprocess.Popen(
        [sys.executable, "-m", "storenode.bench.wire", "--serve", str(int(encrypted)), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        return trio.run(_send, port, encrypted, count)
    finally:
        child.wait(timeout=60)


def run(quick: bool = False) -> dict[str, Any]:
    count = 64 if quick else 512
    rounds = 1 if quick else 3
    enc = max(_one_run(True, count) for _ in range(rounds))
    plain = max(_one_run(False, count) for _ in range(rounds))
    return {
        "message_bytes": MESSAGE,
        "messages": count,
        "encrypted_MBps": enc,
        "plain_MBps": plain,
        "targets_met": {"encrypted_MBps": enc >= TARGET_MBPS},
    }


def main(json_out: bool = False, quick: bool = False) -> int:
    r = run(quick=quick)
    if json_out:
        print(json.dumps(r, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"storenode bench wire — one connection, {r['messages']} × 1 MiB messages")
    t.add_column("what")
    t.add_column("MB/s", justify="right")
    t.add_column("target", justify="right")
    t.add_row(
        "encrypted (Noise XX, AES-256-GCM)",
        f"{r['encrypted_MBps']:,.0f}",
        f"≥ {TARGET_MBPS} "
        + ("[green]met[/]" if r["targets_met"]["encrypted_MBps"] else "[red]MISSED[/]"),
    )
    t.add_row("plain trio TCP (ceiling)", f"{r['plain_MBps']:,.0f}", "")
    Console().print(t)
    return 0


if __name__ == "__main__":
    from storenode.tuning import tune_allocator

    tune_allocator()  # the receiving node, like any storenode process
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        trio.run(_serve, sys.argv[2] == "1", int(sys.argv[3]))
    else:
        sys.exit(main(json_out="--json" in sys.argv))
