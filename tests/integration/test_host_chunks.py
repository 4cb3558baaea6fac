"""The host's chunk service over real sockets on 127.0.0.1: a client node and a host node."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import pytest

import storenode.host.chunks as chunks_module
from storenode.coding.merkle import merkle_root
from storenode.coding.rlnc import Packet, ProgressiveDecoder, shard_packet
from storenode.coding.rs import ReedSolomon
from storenode.host import (
    AllowAll,
    ChunkData,
    ChunkGet,
    ChunkPut,
    ChunkPutMany,
    ChunkService,
    PacketReply,
    PacketRequest,
    PacketsReply,
    PacketsRequest,
    Placement,
    RepairRequest,
    Stored,
    StoredMany,
    StripePacket,
)
from storenode.net.peer import PeerConnection
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.store import MemoryChunkStore
from storenode.wire.errors import RemoteError
from storenode.wire.messages import ErrorCode

CID = bytes(range(32))
K, N = 3, 6
BLOCK = 4096


@dataclass(frozen=True)
class Addr:
    key: bytes
    host: str
    port: int


class OnlyFrom:
    """Upload policy: one uploader has a contract, nobody else."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def may_store(
        self, uploader_key: bytes, chunk_id: bytes, size: int, placement: Placement
    ) -> bool | str:
        return True if uploader_key == self.key else "no open contract with this uploader"


class NobodyReads:
    def may_read(self, client_key: bytes, cid: bytes) -> bool:
        return False


@asynccontextmanager
async def host_and_client(
    store: MemoryChunkStore, *, uploads_from_client: bool = True, readable: bool = True
) -> AsyncIterator[tuple[RpcNode, Addr, MemoryChunkStore]]:
    async with open_rpc_node() as client, open_rpc_node() as host:
        policy = OnlyFrom(client.identity.public_key if uploads_from_client else b"\0" * 32)
        service = ChunkService(
            store,
            policy,
            read_policy=None if readable else NobodyReads(),
            rng=random.Random(7),
        )
        service.route(host)
        port = await host.listen("127.0.0.1", 0)
        yield client, Addr(host.identity.public_key, "127.0.0.1", port), store


def stripe_shards(seed: int = 1) -> tuple[bytes, list[bytes]]:
    stripe = random.Random(seed).randbytes(K * BLOCK)
    return stripe, [bytes(s) for s in ReedSolomon(K, N).encode_stripe(stripe)]


def put_of(shard: bytes, index: int, *, stripe: int = 0) -> ChunkPut:
    return ChunkPut(merkle_root(shard), Placement(CID, stripe, index, K, N), shard)


Body = ChunkPut | ChunkGet | PacketRequest | PacketsRequest | RepairRequest


async def refused(client: RpcNode, addr: Addr, body: Body) -> str:
    """The refusal's message; fails unless the host answered with an error."""
    with pytest.raises(RemoteError) as info:
        await client.request(addr, body)
    return str(info.value)


async def code_of(client: RpcNode, addr: Addr, body: Body) -> int:
    with pytest.raises(RemoteError) as info:
        await client.request(addr, body)
    return int(info.value.code)


async def test_a_put_under_the_policy_is_stored_and_read_back_byte_exact() -> None:
    _, shards = stripe_shards()
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, store):
        put = put_of(shards[4], 4)
        assert await client.request(addr, put) == Stored(put.chunk_id)
        assert await client.request(addr, put) == Stored(put.chunk_id)  # idempotent
        reply = await client.request(addr, ChunkGet(put.chunk_id))
        assert reply == ChunkData(memoryview(shards[4]))
        assert store.chunk_count == 1


async def test_bytes_that_do_not_match_the_id_are_refused_and_nothing_is_stored() -> None:
    _, shards = stripe_shards()
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, store):
        bad = ChunkPut(merkle_root(shards[0]), Placement(CID, 0, 0, K, N), shards[1])
        assert await code_of(client, addr, bad) == ErrorCode.REFUSED
        assert "do not hash to chunk id" in await refused(client, addr, bad)
        assert store.chunk_count == 0 and store.used_bytes == 0
        assert await code_of(client, addr, ChunkGet(bad.chunk_id)) == ErrorCode.NOT_FOUND
        # The slot stays free for the right bytes.
        good = put_of(shards[0], 0)
        assert await client.request(addr, good) == Stored(good.chunk_id)


async def test_a_batch_of_puts_is_stored_whole_and_read_back() -> None:
    _, shards = stripe_shards()
    _, more = stripe_shards(2)
    puts = [put_of(shards[i], i) for i in (0, 1, 2)] + [put_of(more[5], 5, stripe=1)]
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, store):
        reply = await client.request(addr, ChunkPutMany(puts))
        assert reply == StoredMany([p.chunk_id for p in puts])
        assert await client.request(addr, ChunkPutMany(puts)) == reply  # idempotent
        assert store.chunk_count == 4
        for put in puts:
            got = await client.request(addr, ChunkGet(put.chunk_id))
            assert got == ChunkData(memoryview(put.data))
        # The stripe's shards were indexed: the host answers packets of it.
        packet = await client.request(addr, PacketRequest(CID, 1))
        assert isinstance(packet, PacketReply) and packet.payload == more[5]


@pytest.mark.parametrize("fault", ["bytes", "placement", "duplicate", "full"])
async def test_one_bad_chunk_refuses_the_whole_batch_and_stores_nothing(fault: str) -> None:
    _, shards = stripe_shards()
    puts = [put_of(shards[i], i) for i in (0, 1, 2)]
    if fault == "bytes":
        puts[1] = ChunkPut(puts[1].chunk_id, puts[1].placement, shards[4])
    elif fault == "placement":
        puts[2] = ChunkPut(puts[2].chunk_id, Placement(CID, 0, N, K, N), shards[2])
    elif fault == "duplicate":
        puts[2] = puts[0]
    capacity = 2 * BLOCK if fault == "full" else 1 << 20
    async with host_and_client(MemoryChunkStore(capacity=capacity)) as (client, addr, store):
        with pytest.raises(RemoteError) as info:
            await client.request(addr, ChunkPutMany(puts))
        expected = {
            "bytes": "do not hash to chunk id",
            "placement": "impossible placement",
            "duplicate": "appears twice",
            "full": "host full",
        }[fault]
        assert expected in str(info.value)
        assert store.chunk_count == 0 and store.used_bytes == 0
        for put in puts:
            assert await code_of(client, addr, ChunkGet(put.chunk_id)) == ErrorCode.NOT_FOUND


async def test_a_put_the_policy_does_not_allow_is_refused_with_its_reason() -> None:
    _, shards = stripe_shards()
    store = MemoryChunkStore(capacity=1 << 20)
    async with host_and_client(store, uploads_from_client=False) as (client, addr, _):
        put = put_of(shards[0], 0)
        assert await code_of(client, addr, put) == ErrorCode.REFUSED
        assert "no open contract" in await refused(client, addr, put)
        assert store.chunk_count == 0


async def test_a_full_host_refuses_saying_so_and_keeps_every_stored_byte() -> None:
    _, shards = stripe_shards()
    async with host_and_client(MemoryChunkStore(capacity=2 * BLOCK + 10)) as (client, addr, store):
        for i in (0, 1):
            await client.request(addr, put_of(shards[i], i))
        third = put_of(shards[2], 2)
        assert await code_of(client, addr, third) == ErrorCode.REFUSED
        assert "host full" in await refused(client, addr, third)
        assert store.chunk_count == 2 and store.used_bytes == 2 * BLOCK
        for i in (0, 1):
            reply = await client.request(addr, ChunkGet(merkle_root(shards[i])))
            assert reply == ChunkData(memoryview(shards[i]))


async def test_an_unknown_chunk_is_not_found() -> None:
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, _):
        assert await code_of(client, addr, ChunkGet(b"\x11" * 32)) == ErrorCode.NOT_FOUND
        assert await code_of(client, addr, PacketRequest(CID, 0)) == ErrorCode.NOT_FOUND


async def test_placements_that_cannot_be_or_disagree_with_the_stripe_are_refused() -> None:
    _, shards = stripe_shards()
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, store):
        root = merkle_root(shards[0])
        beyond_n = ChunkPut(root, Placement(CID, 0, N, K, N), shards[0])
        assert await code_of(client, addr, beyond_n) == ErrorCode.BAD_REQUEST
        k_over_n = ChunkPut(root, Placement(CID, 0, 0, 7, 6), shards[0])
        assert await code_of(client, addr, k_over_n) == ErrorCode.BAD_REQUEST
        await client.request(addr, put_of(shards[0], 0))
        other_code = ChunkPut(merkle_root(shards[1]), Placement(CID, 0, 1, K, N + 1), shards[1])
        assert await code_of(client, addr, other_code) == ErrorCode.REFUSED
        taken = ChunkPut(merkle_root(shards[1]), Placement(CID, 0, 0, K, N), shards[1])
        assert "already chunk" in await refused(client, addr, taken)
        assert store.chunk_count == 1


async def test_recodings_of_three_held_shards_complete_a_stripe_with_other_packets() -> None:
    stripe, shards = stripe_shards(seed=3)
    code = ReedSolomon(K, N)
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, _):
        for i in (3, 4, 5):  # parity shards only: every recoding needs real arithmetic
            await client.request(addr, put_of(shards[i], i))
        first = await client.request(addr, PacketRequest(CID, 0))
        second = await client.request(addr, PacketRequest(CID, 0))
        assert isinstance(first, PacketReply) and isinstance(second, PacketReply)
        assert first != second  # fresh randomness each time
        assert len(first.coefficients) == K and len(first.payload) == BLOCK

        decoder = ProgressiveDecoder(K)
        assert decoder.add(shard_packet(code, 0, shards[0]))  # a shard from another host
        assert decoder.add(Packet(first.coefficients, first.payload))
        assert decoder.add(Packet(second.coefficients, second.payload))
        assert decoder.complete
        assert decoder.stripe() == stripe


async def test_a_host_holding_one_shard_answers_with_that_shard_as_a_packet() -> None:
    _, shards = stripe_shards()
    code = ReedSolomon(K, N)
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, _):
        await client.request(addr, put_of(shards[4], 4))
        reply = await client.request(addr, PacketRequest(CID, 0))
        expected = shard_packet(code, 4, shards[4])
        assert reply == PacketReply(expected.coefficients, memoryview(shards[4]))


async def test_a_batch_gets_a_packet_of_each_stripe_held_in_the_order_asked() -> None:
    code = ReedSolomon(K, N)
    stripes = [stripe_shards(seed=10 + s)[1] for s in range(4)]
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, _):
        for s in (0, 2, 3):  # stripe 1 is not held here
            await client.request(addr, put_of(stripes[s][4], 4, stripe=s))
        reply = await client.request(addr, PacketsRequest(CID, [3, 1, 0, 2]))
        row = code.generator[4].tobytes()
        assert reply == PacketsReply(
            [StripePacket(s, row, memoryview(stripes[s][4])) for s in (3, 0, 2)]  # 1 left out
        )
        # one answer per stripe, as chunk.packet gives it
        single = await client.request(addr, PacketRequest(CID, 2))
        assert single == PacketReply(row, memoryview(stripes[2][4]))
        # none held: an empty answer, not an error
        assert await client.request(addr, PacketsRequest(CID, [7, 8])) == PacketsReply([])


async def test_a_batch_naming_a_stripe_twice_or_too_big_for_a_reply_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, shards = stripe_shards()
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, _):
        for s in range(3):
            await client.request(addr, put_of(shards[0], 0, stripe=s))
        twice = PacketsRequest(CID, [0, 1, 0])
        assert await code_of(client, addr, twice) == ErrorCode.BAD_REQUEST
        assert "twice" in await refused(client, addr, twice)
        monkeypatch.setattr(chunks_module, "MAX_PACKETS_REPLY", 2 * BLOCK)
        big = PacketsRequest(CID, [0, 1, 2])
        assert await code_of(client, addr, big) == ErrorCode.BAD_REQUEST
        assert "ask for fewer" in await refused(client, addr, big)
        two = await client.request(addr, PacketsRequest(CID, [0, 1]))
        assert isinstance(two, PacketsReply) and len(two.packets) == 2


async def test_a_client_the_read_policy_refuses_gets_refused() -> None:
    _, shards = stripe_shards()
    store = MemoryChunkStore(capacity=1 << 20)
    async with host_and_client(store, readable=False) as (client, addr, _):
        put = put_of(shards[0], 0)
        await client.request(addr, put)
        assert await code_of(client, addr, ChunkGet(put.chunk_id)) == ErrorCode.REFUSED
        assert "receipt" in await refused(client, addr, ChunkGet(put.chunk_id))
        assert await code_of(client, addr, PacketRequest(CID, 0)) == ErrorCode.REFUSED
        assert await code_of(client, addr, PacketsRequest(CID, [0, 1])) == ErrorCode.REFUSED


async def test_a_host_that_checks_no_repairs_refuses_them() -> None:
    _, shards = stripe_shards()
    async with host_and_client(MemoryChunkStore(capacity=1 << 20)) as (client, addr, _):
        await client.request(addr, put_of(shards[0], 0))
        ask = RepairRequest(CID, 0, 1, bytes(32), 0, [])
        assert await code_of(client, addr, ask) == ErrorCode.REFUSED
        assert "answers no repairs" in await refused(client, addr, ask)


def test_allow_all_satisfies_both_policies() -> None:
    allow = AllowAll()
    placement = Placement(CID, 0, 0, K, N)
    assert allow.may_store(b"k", b"c", 1, placement) is True and allow.may_read(b"k", CID)


class RecordingStore(MemoryChunkStore):
    """A memory store that says which thread read it and how; ``cold``: none of its
    chunks is in memory, so every read has to wait (as for a disk)."""

    def __init__(self, *, cold: bool) -> None:
        super().__init__(capacity=1 << 20)
        self.cold = cold
        self.reads: list[tuple[str, bool]] = []  # (how, on the main thread)

    def get_cached(self, chunk_id: bytes) -> bytes | None:  # type: ignore[override]
        # (the memory store's own reads are never cold; this one's may be, as a disk's)
        self.reads.append(("cached", threading.current_thread() is threading.main_thread()))
        return None if self.cold else MemoryChunkStore.get(self, chunk_id)

    def get(self, chunk_id: bytes) -> bytes:
        self.reads.append(("get", threading.current_thread() is threading.main_thread()))
        return super().get(chunk_id)


@pytest.mark.parametrize("cold", [False, True])
async def test_reads_from_memory_are_answered_at_once_and_others_in_a_worker_thread(
    cold: bool,
) -> None:
    _, shards = stripe_shards()
    store = RecordingStore(cold=cold)
    async with host_and_client(store) as (client, addr, _):
        await client.request(addr, put_of(shards[1], 1))
        store.reads.clear()
        packet = await client.request(addr, PacketRequest(CID, 0))
        data = await client.request(addr, ChunkGet(merkle_root(shards[1])))
    assert packet == PacketReply(ReedSolomon(K, N).generator[1].tobytes(), memoryview(shards[1]))
    assert data == ChunkData(memoryview(shards[1]))
    if cold:
        assert store.reads == [("cached", True), ("get", False)] * 2
    else:
        assert store.reads == [("cached", True)] * 2


class _Conn:
    peer_key = b"\x01" * 32


def _conn() -> PeerConnection:
    """What a handler uses of the connection it is called for: the peer's key."""
    return cast("PeerConnection", _Conn())


def _indexed(store: MemoryChunkStore, shards: list[bytes], *stripes: int) -> ChunkService:
    """A service over chunks already in ``store`` (as after a restart): shard 1 of each
    of ``stripes``, indexed but neither put nor read through the service."""
    service = ChunkService(store, AllowAll(), rng=random.Random(1))
    for stripe in stripes:
        put = put_of(shards[1], 1, stripe=stripe)
        store.put(put.chunk_id, put.data)
        assert service.index_shard(put.chunk_id, put.placement, len(put.data)) is None
    return service


async def test_a_chunk_not_put_or_read_lately_is_read_in_a_thread_first() -> None:
    _, shards = stripe_shards()
    store = RecordingStore(cold=False)
    service = _indexed(store, shards, 0)
    store.reads.clear()
    want = PacketReply(ReedSolomon(K, N).generator[1].tobytes(), memoryview(shards[1]))
    assert await service.handle_chunk_packet(_conn(), PacketRequest(CID, 0)) == want
    assert await service.handle_chunk_packet(_conn(), PacketRequest(CID, 0)) == want
    assert store.reads == [("get", False), ("cached", True)]


async def test_only_the_chunks_touched_last_are_read_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunks_module, "WARM_CHUNKS", 2)
    _, shards = stripe_shards()
    store = RecordingStore(cold=False)
    service = _indexed(store, shards, 0, 1, 2)  # the same bytes: one chunk, three slots
    for stripe in (0, 1, 2):
        await service.handle_chunk_packet(_conn(), PacketRequest(CID, stripe))
    store.reads.clear()
    await service.handle_chunk_packet(_conn(), PacketRequest(CID, 0))
    assert store.reads == [("cached", True)]  # one chunk id, touched last


async def test_a_batch_is_read_on_the_event_loop_only_if_all_its_chunks_are_warm() -> None:
    stripes = [stripe_shards(seed=20 + s)[1] for s in range(2)]
    store = RecordingStore(cold=False)
    service = ChunkService(store, AllowAll(), rng=random.Random(1))
    for s in (0, 1):
        await service.handle_chunk_put(_conn(), put_of(stripes[s][2], 2, stripe=s))
    store.reads.clear()
    reply = await service.handle_chunk_packets(_conn(), PacketsRequest(CID, [0, 1]))
    assert [p.stripe for p in reply.packets] == [0, 1]
    assert store.reads == [("cached", True)] * 2
    cold = _indexed(store, stripe_shards(seed=30)[1], 2)  # another service: nothing warm
    store.reads.clear()
    reply = await cold.handle_chunk_packets(_conn(), PacketsRequest(CID, [2]))
    assert [p.stripe for p in reply.packets] == [2]
    assert store.reads == [("get", False)]


async def test_a_stripe_with_one_cold_shard_is_read_in_a_thread() -> None:
    _, shards = stripe_shards(seed=5)
    store = RecordingStore(cold=False)
    service = _indexed(store, shards, 0)  # shard 1, not touched
    await service.handle_chunk_put(_conn(), put_of(shards[4], 4))  # shard 4, touched
    store.reads.clear()
    reply = await service.handle_chunk_packet(_conn(), PacketRequest(CID, 0))
    assert ("get", False) in store.reads and all(how == "get" for how, _ in store.reads)
    assert len(reply.coefficients) == K and len(reply.payload) == BLOCK
