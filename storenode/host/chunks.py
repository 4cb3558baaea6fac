"""The host's chunk service: accept shards under a contract, serve them and recodings.

:class:`ChunkService` is the core: synchronous methods that take the
authenticated peer's key and a request body and return a response body, or
raise :class:`~storenode.net.errors.RequestRefusedError` with the wire code
to answer. :meth:`ChunkService.route` binds them to an RPC node; the store
work (Merkle hashing, writes with fsync, recoding) runs in a worker thread so
the connection's reader never blocks, except a read of chunks put or read
lately that the page cache still holds and whose CRC matches: that one is
answered on the event loop, where it costs less than the thread's hand-offs.

What it decides:

* ``chunk.put`` — the placement must be possible (``shard < n``, ``k <= n``)
  and agree with what the host already holds of the stripe (same k and n,
  same shard size, the shard slot empty or holding the same chunk); the
  :class:`UploadPolicy` must allow it (the daemon answers from its open or
  signed-pending contracts); the store then checks the bytes against the id
  and the capacity. Any refusal stores nothing.
* ``chunk.put_many`` — the same for each of its chunks, all checked before
  any is stored and stored in one commit: one refusal refuses them all.
* ``chunk.get`` / ``chunk.packet`` — the :class:`ReadPolicy` must allow the
  client to read the work (a priced work needs a receipt).

The shard index (which chunk is which shard of which stripe) lives in
memory; the host daemon rebuilds it from its contract book at start
(:meth:`ChunkService.index_shard` for every listed shard the store holds) and
drops the shards of contracts it lets go (:meth:`ChunkService.forget`). A
chunk held by the store but not indexed is answered ``NOT_FOUND``, since the
work it belongs to, and so the read policy, is unknown.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, Protocol, TypeVar

import msgspec
import trio

from storenode.coding.kernel import view
from storenode.coding.rlnc import Packet, recode, shard_packet
from storenode.coding.rs import ReedSolomon
from storenode.host.messages import (
    MAX_PACKETS_REPLY,
    ChunkData,
    ChunkGet,
    ChunkPut,
    ChunkPutMany,
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
from storenode.net.errors import RequestRefusedError
from storenode.net.peer import PeerConnection
from storenode.net.rpc import RpcNode
from storenode.store.errors import (
    CapacityExceededError,
    ChunkCorruptError,
    ChunkMismatchError,
    ChunkNotFoundError,
)
from storenode.store.protocol import ChunkStore
from storenode.wire.messages import ErrorCode

WARM_CHUNKS: Final = 4096
"""Chunks put or read lately that a read may take from the page cache on the event
loop (4096 shards of 1 MiB stripes at k=3: ~1.4 GB of reads). Any other chunk is
read in a worker thread: finding a cold file can itself wait for the disk."""


class UploadPolicy(Protocol):
    """Whether the host takes a chunk from an uploader (the daemon answers from its
    contract book: the chunk must be that shard of that work in a live contract)."""

    def may_store(
        self, uploader_key: bytes, chunk_id: bytes, size: int, placement: Placement
    ) -> bool | str:
        """True to accept; False, or a reason (shown to the uploader), to refuse."""
        ...


class ReadPolicy(Protocol):
    """Whether a client may read a work (a priced work: only with a receipt)."""

    def may_read(self, client_key: bytes, cid: bytes) -> bool: ...


class AllowAll:
    """Both policies, allowing everything (a free host, tests)."""

    def may_store(
        self, uploader_key: bytes, chunk_id: bytes, size: int, placement: Placement
    ) -> bool | str:
        return True

    def may_read(self, client_key: bytes, cid: bytes) -> bool:
        return True


def impossible(p: Placement) -> str | None:
    """Why no code can have ``p`` (``k > n`` or ``shard >= n``), or None."""
    if p.k > p.n:
        return f"k={p.k} exceeds n={p.n}"
    if p.shard >= p.n:
        return f"shard index {p.shard} is outside 0..{p.n - 1}"
    return None


StripeKey = tuple[bytes, int]
"""``(cid, stripe index)``."""


@dataclass(slots=True)
class _Stripe:
    k: int
    n: int
    shard_size: int
    shards: dict[int, bytes] = field(default_factory=dict)  # shard index -> chunk id


class ShardIndex:
    """Which chunk is which shard of which stripe of which work. Not thread-safe."""

    def __init__(self) -> None:
        self._stripes: dict[StripeKey, _Stripe] = {}
        self._works: dict[bytes, set[bytes]] = {}  # chunk id -> cids it belongs to

    def check(self, chunk_id: bytes, placement: Placement, size: int) -> str | None:
        """Why ``placement`` cannot hold ``chunk_id`` of ``size`` bytes, or None if it can."""
        p = placement
        why = impossible(p)
        if why is not None:
            return why
        s = self._stripes.get((p.cid, p.stripe))
        if s is None:
            return None
        if (s.k, s.n) != (p.k, p.n):
            return f"the stripe is coded with k={s.k} n={s.n} here, not k={p.k} n={p.n}"
        if size != s.shard_size:
            return f"the stripe's shards are {s.shard_size} bytes here, not {size}"
        held = s.shards.get(p.shard)
        if held is not None and held != chunk_id:
            return f"shard {p.shard} of the stripe is already chunk {held.hex()}"
        return None

    def add(self, chunk_id: bytes, placement: Placement, size: int) -> None:
        """Record the chunk at ``placement``; ValueError if :meth:`check` refuses it."""
        why = self.check(chunk_id, placement, size)
        if why is not None:
            raise ValueError(why)
        p = placement
        s = self._stripes.setdefault((p.cid, p.stripe), _Stripe(p.k, p.n, size))
        s.shards[p.shard] = chunk_id
        self._works.setdefault(chunk_id, set()).add(p.cid)

    def remove(self, cid: bytes, stripe: int, shard: int) -> bytes | None:
        """Forget shard ``shard`` of stripe ``stripe`` of work ``cid``; the chunk id
        it held (None if the slot was empty)."""
        s = self._stripes.get((cid, stripe))
        if s is None:
            return None
        chunk_id = s.shards.pop(shard, None)
        if not s.shards:
            del self._stripes[(cid, stripe)]
        if chunk_id is not None and not self._holds(cid, chunk_id):
            works = self._works[chunk_id]
            works.discard(cid)
            if not works:
                del self._works[chunk_id]
        return chunk_id

    def _holds(self, cid: bytes, chunk_id: bytes) -> bool:
        """Whether any slot of work ``cid`` still holds ``chunk_id`` (zero padding
        makes equal shards, so one chunk may fill several slots)."""
        return any(
            key[0] == cid and chunk_id in s.shards.values() for key, s in self._stripes.items()
        )

    def works_of(self, chunk_id: bytes) -> frozenset[bytes]:
        """The cids the chunk is a shard of (empty if not indexed)."""
        return frozenset(self._works.get(chunk_id, ()))

    def shards_of(self, cid: bytes, stripe: int) -> tuple[int, int, dict[int, bytes]]:
        """``(k, n, {shard index: chunk id})`` held of a stripe; KeyError if none."""
        s = self._stripes[(cid, stripe)]
        return s.k, s.n, dict(s.shards)


@lru_cache(maxsize=64)
def _code(k: int, n: int) -> ReedSolomon:
    return ReedSolomon(k, n)


class ChunkService:
    """Answers ``chunk.put``, ``chunk.put_many``, ``chunk.get``, ``chunk.packet`` and
    ``chunk.packets`` from a
    :class:`ChunkStore`."""

    def __init__(
        self,
        store: ChunkStore,
        policy: UploadPolicy,
        *,
        read_policy: ReadPolicy | None = None,
        repair_check: Callable[[bytes, RepairRequest], str | None] | None = None,
        rng: random.Random,
        index: ShardIndex | None = None,
        on_stored: Callable[[ChunkPut], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.read_policy: ReadPolicy = read_policy if read_policy is not None else AllowAll()
        self.repair_check = repair_check
        """Why a ``chunk.repair`` is refused, or None (None: no repairs answered)."""
        self.index = index if index is not None else ShardIndex()
        self.on_stored = on_stored
        """Called in the trio thread for each chunk a put stores (the
        daemon counts a contract's chunks and announces the work)."""
        self._rng = rng
        self._warm: OrderedDict[bytes, None] = OrderedDict()
        """The chunks put or read lately, newest last (at most :data:`WARM_CHUNKS`)."""
        # The index, the rng and the warm list are touched from worker threads:
        # one at a time.
        self._lock = threading.Lock()

    # -- the core: synchronous, may block on the store -------------------------

    def put(self, uploader_key: bytes, req: ChunkPut) -> Stored:
        self.put_many(uploader_key, ChunkPutMany([req]))
        return Stored(req.chunk_id)

    def put_many(self, uploader_key: bytes, req: ChunkPutMany) -> StoredMany:
        """Every chunk is checked before any is stored; the store writes them all
        or none (one commit); a refusal of one refuses the request."""
        if len({put.chunk_id for put in req.chunks}) != len(req.chunks):
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "a chunk appears twice in the request")
        for put in req.chunks:
            self._admit(uploader_key, put)
        self._store(req.chunks)
        with self._lock:
            for put in req.chunks:
                self._index(put)
            self._touch(put.chunk_id for put in req.chunks)
        return StoredMany([put.chunk_id for put in req.chunks])

    def _admit(self, uploader_key: bytes, req: ChunkPut) -> None:
        """Refuse a chunk this host must not take: an impossible placement, one that
        contradicts what it holds, or one no contract of ``uploader_key`` covers."""
        size = len(req.data)
        why = impossible(req.placement)
        if why is not None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, f"impossible placement: {why}")
        with self._lock:
            why = self.index.check(req.chunk_id, req.placement, size)
        if why is not None:
            raise RequestRefusedError(ErrorCode.REFUSED, f"placement refused: {why}")
        verdict = self.policy.may_store(uploader_key, req.chunk_id, size, req.placement)
        if verdict is not True:
            reason = verdict if isinstance(verdict, str) and verdict else "no contract covers it"
            raise RequestRefusedError(ErrorCode.REFUSED, f"chunk not accepted: {reason}")

    def _store(self, puts: Sequence[ChunkPut]) -> None:
        try:
            self.store.put_many([(put.chunk_id, put.data) for put in puts])
        except ChunkMismatchError as e:
            raise RequestRefusedError(
                ErrorCode.REFUSED,
                f"the bytes sent do not hash to chunk id {e.chunk_id.hex()}",
            ) from None
        except CapacityExceededError as e:
            raise RequestRefusedError(
                ErrorCode.REFUSED,
                f"host full: {e.needed} bytes offered, {e.free} free of {e.capacity}",
            ) from None

    def _index(self, req: ChunkPut) -> None:
        """Index a stored chunk (under the lock)."""
        why = self.index.check(req.chunk_id, req.placement, len(req.data))
        if why is not None:  # a concurrent put took the slot first
            raise RequestRefusedError(ErrorCode.REFUSED, f"placement refused: {why}")
        self.index.add(req.chunk_id, req.placement, len(req.data))

    def get(self, client_key: bytes, req: ChunkGet) -> ChunkData:
        reply = self._get(client_key, req, cached=False)
        assert reply is not None
        return reply

    def get_cached(self, client_key: bytes, req: ChunkGet) -> ChunkData | None:
        """:meth:`get` if the chunk is in memory (no wait for the disk); else None."""
        return self._get(client_key, req, cached=True)

    def _get(self, client_key: bytes, req: ChunkGet, *, cached: bool) -> ChunkData | None:
        with self._lock:
            works = self.index.works_of(req.chunk_id)
            if cached and works and req.chunk_id not in self._warm:
                return None
        if not works:
            raise RequestRefusedError(ErrorCode.NOT_FOUND, f"chunk {req.chunk_id.hex()} not held")
        if not any(self.read_policy.may_read(client_key, cid) for cid in works):
            raise RequestRefusedError(ErrorCode.REFUSED, "a priced work: a receipt is needed")
        data = self._read(req.chunk_id, cached=cached)
        # Any bytes-like object goes on the wire as msgpack bin: a view, no copy.
        return None if data is None else ChunkData(memoryview(data))

    def packet(self, client_key: bytes, req: PacketRequest) -> PacketReply:
        reply = self._packet(client_key, req, cached=False)
        assert reply is not None
        return reply

    def packet_cached(self, client_key: bytes, req: PacketRequest) -> PacketReply | None:
        """:meth:`packet` if the stripe's chunks are in memory (no wait for the disk);
        else None."""
        return self._packet(client_key, req, cached=True)

    def repair_packet(self, client_key: bytes, req: RepairRequest) -> PacketReply:
        """A packet for a host rebuilding its shard of the stripe: free of charge, once
        ``repair_check`` finds the host's contract lists that shard."""
        why = (
            "this host answers no repairs"
            if self.repair_check is None
            else self.repair_check(client_key, req)
        )
        if why is not None:
            raise RequestRefusedError(ErrorCode.REFUSED, f"no repair: {why}")
        ask = PacketRequest(req.cid, req.stripe)
        reply = self._packet(client_key, ask, cached=False, free=True)
        assert reply is not None
        return reply

    def _packet(
        self, client_key: bytes, req: PacketRequest, *, cached: bool, free: bool = False
    ) -> PacketReply | None:
        with self._lock:
            try:
                k, n, shards = self.index.shards_of(req.cid, req.stripe)
            except KeyError:
                raise RequestRefusedError(
                    ErrorCode.NOT_FOUND, f"stripe {req.stripe} of {req.cid.hex()} not held"
                ) from None
            if cached and not self._all_warm(shards.values()):
                return None
        if not free:
            self._may_read(client_key, req.cid)
        out = self._stripe_packet(k, n, shards, cached=cached)
        # a shard's bytes or a recoding's array: a view either way, no copy (see _get)
        return None if out is None else PacketReply(out.coefficients, view(out.payload))

    def packets(self, client_key: bytes, req: PacketsRequest) -> PacketsReply:
        reply = self._packets(client_key, req, cached=False)
        assert reply is not None
        return reply

    def packets_cached(self, client_key: bytes, req: PacketsRequest) -> PacketsReply | None:
        """:meth:`packets` if every chunk it reads is in memory; else None."""
        return self._packets(client_key, req, cached=True)

    def _packets(
        self, client_key: bytes, req: PacketsRequest, *, cached: bool
    ) -> PacketsReply | None:
        if len(set(req.stripes)) != len(req.stripes):
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "a stripe appears twice in the request"
            )
        held: list[tuple[int, int, int, dict[int, bytes]]] = []
        with self._lock:
            for stripe in req.stripes:
                try:
                    held.append((stripe, *self.index.shards_of(req.cid, stripe)))
                except KeyError:
                    continue  # not held: left out of the reply
            if cached and not self._all_warm(c for *_, shards in held for c in shards.values()):
                return None
        if held:
            self._may_read(client_key, req.cid)
        packets = []
        size = 0
        for stripe, k, n, shards in held:
            out = self._stripe_packet(k, n, shards, cached=cached)
            if out is None:
                return None
            size += view(out.payload).nbytes
            if size > MAX_PACKETS_REPLY:
                raise RequestRefusedError(
                    ErrorCode.BAD_REQUEST,
                    f"the packets of {len(req.stripes)} stripes are more than the "
                    f"{MAX_PACKETS_REPLY} bytes a reply carries: ask for fewer",
                )
            packets.append(StripePacket(stripe, out.coefficients, view(out.payload)))
        return PacketsReply(packets)

    def _all_warm(self, chunk_ids: Iterable[bytes]) -> bool:
        return all(chunk_id in self._warm for chunk_id in chunk_ids)

    def _may_read(self, client_key: bytes, cid: bytes) -> None:
        if not self.read_policy.may_read(client_key, cid):
            raise RequestRefusedError(ErrorCode.REFUSED, "a priced work: a receipt is needed")

    def _stripe_packet(
        self, k: int, n: int, shards: dict[int, bytes], *, cached: bool
    ) -> Packet | None:
        """The packet a client gets of a stripe of which the host holds ``shards``: the
        shard itself, or a fresh recoding of several (None: ``cached`` and not all in
        memory)."""
        code = _code(k, n)
        packets = []
        for i, chunk_id in sorted(shards.items()):
            data = self._read(chunk_id, cached=cached)
            if data is None:
                return None
            packets.append(shard_packet(code, i, data))
        if len(packets) == 1:
            return packets[0]
        with self._lock:
            return recode(packets, self._rng)

    def index_shard(self, chunk_id: bytes, placement: Placement, size: int) -> str | None:
        """Index a chunk the store holds at ``placement`` (rebuilding the index from
        the contract book); why it cannot be, or None once it is."""
        with self._lock:
            why = self.index.check(chunk_id, placement, size)
            if why is None:
                self.index.add(chunk_id, placement, size)
            return why

    def forget(self, cid: bytes, stripe: int, shard: int) -> None:
        """Stop serving shard ``shard`` of stripe ``stripe`` of ``cid`` (its contract ended)."""
        with self._lock:
            self.index.remove(cid, stripe, shard)

    def _touch(self, chunk_ids: Iterable[bytes]) -> None:
        """Note chunks just put or read (under the lock)."""
        for chunk_id in chunk_ids:
            self._warm[chunk_id] = None
            self._warm.move_to_end(chunk_id)
        while len(self._warm) > WARM_CHUNKS:
            self._warm.popitem(last=False)

    def _read(self, chunk_id: bytes, *, cached: bool = False) -> bytes | bytearray | None:
        """The chunk's checked bytes (None: ``cached`` and not all in memory)."""
        try:
            data = self.store.get_cached(chunk_id) if cached else self.store.get(chunk_id)
        except ChunkNotFoundError:
            raise RequestRefusedError(
                ErrorCode.NOT_FOUND, f"chunk {chunk_id.hex()} not held"
            ) from None
        except ChunkCorruptError:
            # Never serve bad bytes; the prover reports the chunk when it is challenged.
            raise RequestRefusedError(
                ErrorCode.NOT_FOUND, f"chunk {chunk_id.hex()} is damaged here"
            ) from None
        if data is not None:
            with self._lock:
                self._touch((chunk_id,))
        return data

    # -- the shell ---------------------------------------------------------------

    async def handle_chunk_put(self, conn: PeerConnection, body: msgspec.Struct) -> Stored:
        assert isinstance(body, ChunkPut)
        stored = await _in_thread(self.put, conn.peer_key, body)
        if self.on_stored is not None:
            self.on_stored(body)
        return stored

    async def handle_chunk_put_many(self, conn: PeerConnection, body: msgspec.Struct) -> StoredMany:
        assert isinstance(body, ChunkPutMany)
        stored = await _in_thread(self.put_many, conn.peer_key, body)
        if self.on_stored is not None:
            for put in body.chunks:
                self.on_stored(put)
        return stored

    # A read of chunks put or read lately (WARM_CHUNKS) whose bytes the page cache
    # still holds is answered on the event loop: a worker thread's hand-offs cost
    # more than the read itself. Any other read, or one whose bytes need more than
    # the store's quick check, goes to a thread, where the disk may be waited for.

    async def handle_chunk_get(self, conn: PeerConnection, body: msgspec.Struct) -> ChunkData:
        assert isinstance(body, ChunkGet)
        reply = self.get_cached(conn.peer_key, body)
        return reply if reply is not None else await _in_thread(self.get, conn.peer_key, body)

    async def handle_chunk_packet(self, conn: PeerConnection, body: msgspec.Struct) -> PacketReply:
        assert isinstance(body, PacketRequest)
        reply = self.packet_cached(conn.peer_key, body)
        return reply if reply is not None else await _in_thread(self.packet, conn.peer_key, body)

    async def handle_chunk_repair(self, conn: PeerConnection, body: msgspec.Struct) -> PacketReply:
        assert isinstance(body, RepairRequest)
        return await _in_thread(self.repair_packet, conn.peer_key, body)

    async def handle_chunk_packets(
        self, conn: PeerConnection, body: msgspec.Struct
    ) -> PacketsReply:
        assert isinstance(body, PacketsRequest)
        reply = self.packets_cached(conn.peer_key, body)
        return reply if reply is not None else await _in_thread(self.packets, conn.peer_key, body)

    def route(self, node: RpcNode) -> None:
        """Serve the chunk messages on ``node``."""
        node.route("chunk.put", self.handle_chunk_put)
        node.route("chunk.put_many", self.handle_chunk_put_many)
        node.route("chunk.get", self.handle_chunk_get)
        node.route("chunk.packet", self.handle_chunk_packet)
        node.route("chunk.packets", self.handle_chunk_packets)
        node.route("chunk.repair", self.handle_chunk_repair)


_R = TypeVar("_R", bound=msgspec.Struct)
_B = TypeVar("_B", bound=msgspec.Struct)


async def _in_thread(fn: Callable[[bytes, _B], _R], key: bytes, body: _B) -> _R:
    return await trio.to_thread.run_sync(fn, key, body)
