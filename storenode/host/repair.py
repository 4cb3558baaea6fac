"""Repair: the host rebuilds a chunk its disk damaged from the other hosts of its
stripe.

A damaged chunk is refused to readers and cannot be proven, so without repair
the host misses every window of its contracts from then on. The scrub finds
the damage (:mod:`storenode.host.scrubber`); the :class:`Repairer` then reads
the chunk's stripe as any reader would, through a
:class:`~storenode.client.content.ContentSource` (the node's fetcher, which
checks the stripe against its manifest's hash and asks the other hosts, not
the damaged copy), codes the shard this host holds from it again, and puts it:
the store checks the bytes against the chunk id and replaces the damaged copy
in place (``ChunkStore.put`` over a held chunk that fails its read check).

Nothing is paid for a repair. A priced work this node holds no receipt for is
read as the chunk's host (:func:`stripe_as_host`): each other host is asked
with ``chunk.repair``, which names the contract listing the chunk and proves
it is there, and answers free of charge once it has checked that against the
chain and the manifest it keeps (:func:`storenode.host.policy.check_repair`).
Repairs run one at a time, in the order the damage was found; a chunk that
cannot be rebuilt now is tried again when the scrub finds it again, but not
before :data:`RETRY_AFTER` (a small store is scrubbed every second or so, and a
chunk of a priced work would otherwise be tried, and logged, as often).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, NamedTuple, TypeVar

import trio

from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentSource,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.stripes import decode_packets
from storenode.coding.rlnc import Packet, ProgressiveDecoder
from storenode.coding.rs import ReedSolomon
from storenode.dht import Contact
from storenode.host.messages import PacketReply, RepairRequest
from storenode.net.errors import NetError
from storenode.net.rpc import RpcNode
from storenode.publish.manifest import Manifest, ManifestError, decode_manifest
from storenode.store.errors import StoreError
from storenode.store.protocol import ChunkStore
from storenode.wire.errors import RemoteError, WireError

log = logging.getLogger("storenode.host.daemon")
"""The daemon's logger: its lines carry one name whichever part of it speaks."""

QUEUE: Final = 1024
"""Damaged chunks waiting for repair at most; more wait for the scrub's next pass."""
RETRY_AFTER = 300.0
"""Seconds before a chunk that could not be rebuilt is tried again."""

_T = TypeVar("_T")


class Slot(NamedTuple):
    """Where a contract lists a chunk: shard ``shard`` of stripe ``stripe`` of ``cid``;
    and what shows other hosts so (``chunk.repair``): the contract's id, the chunk's
    position in it and its path to the contract's root."""

    cid: bytes
    stripe: int
    shard: int
    contract: bytes = b""
    position: int = -1
    path: tuple[bytes, ...] = ()


StripeAsHost = Callable[[Manifest, Slot], Awaitable[bytearray]]
"""Reads a stripe by asking the other hosts as the host of ``slot`` (``chunk.repair``)."""


class Repairer:
    """Rebuilds damaged chunks of ``store`` (see the module docstring).

    ``slots_of(chunk_id)`` says where live contracts list a chunk, and
    ``manifest_of(cid)`` gives the raw manifest the host keeps for a work (None:
    none kept); ``content`` reads stripes. :meth:`request` queues a chunk,
    :meth:`run` works the queue until cancelled, ``on_repaired`` is told of each
    chunk rebuilt."""

    def __init__(
        self,
        store: ChunkStore,
        content: ContentSource,
        *,
        slots_of: Callable[[bytes], Sequence[Slot]],
        manifest_of: Callable[[bytes], bytes | None],
        on_repaired: Callable[[bytes], None] = lambda chunk_id: None,
        as_host: StripeAsHost | None = None,
        in_thread: Callable[..., Awaitable[object]] = trio.to_thread.run_sync,
    ) -> None:
        self.store = store
        self.content = content
        self.as_host = as_host
        """Reads the stripe of a priced work this node holds no receipt for."""
        self.slots_of = slots_of
        self.manifest_of = manifest_of
        self.on_repaired = on_repaired
        self._in_thread = in_thread
        self._send, self._receive = trio.open_memory_channel[bytes](QUEUE)
        self._queued: set[bytes] = set()
        self._not_before: dict[bytes, float] = {}  # failed chunks: when to try again
        self.repaired = 0
        """Chunks rebuilt since the node started."""
        self.failed = 0
        """Attempts that could not rebuild their chunk since the node started."""

    @property
    def waiting(self) -> int:
        """Chunks whose last repair failed (each tried again after :data:`RETRY_AFTER`)."""
        return len(self._not_before)

    def request(self, chunk_id: bytes) -> None:
        """Queue ``chunk_id`` for repair, unless it is queued already (or the queue is
        full: the scrub finds it again)."""
        if chunk_id in self._queued:
            return
        if trio.current_time() < self._not_before.get(chunk_id, float("-inf")):
            return
        try:
            self._send.send_nowait(chunk_id)
        except trio.WouldBlock:
            return
        self._queued.add(chunk_id)

    async def run(self) -> None:
        """Repair the queued chunks one at a time, until cancelled."""
        async for chunk_id in self._receive:
            try:
                await self.repair(chunk_id)
            except Exception:  # a bug in one repair must not take the node down
                self.failed += 1
                self._not_before[chunk_id] = trio.current_time() + RETRY_AFTER
                log.exception("repairing chunk %s… failed", chunk_id.hex()[:16])
            finally:
                self._queued.discard(chunk_id)

    async def repair(self, chunk_id: bytes) -> bool:
        """Rebuild ``chunk_id`` from the other hosts and put it; whether it was.
        Every failure is logged with its reason; none is raised."""
        slots = self.slots_of(chunk_id)
        if not slots:
            self._not_before.pop(chunk_id, None)
            return False  # no live contract lists it any more: nothing to keep
        reasons: list[str] = []
        for slot in slots:
            why = await self._rebuild(chunk_id, slot)
            if why is None:
                self.repaired += 1
                log.info(
                    "repaired chunk %s… (shard %d of stripe %d of work %s): rebuilt from "
                    "the other hosts of its stripe",
                    chunk_id.hex()[:16],
                    slot.shard,
                    slot.stripe,
                    slot.cid.hex()[:16],
                )
                self._not_before.pop(chunk_id, None)
                self.on_repaired(chunk_id)
                return True
            reasons.append(why)
        self.failed += 1
        self._not_before[chunk_id] = trio.current_time() + RETRY_AFTER
        log.warning(
            "could not repair chunk %s…: %s; trying again once the scrub finds it again, "
            "%d s from now at the soonest",
            chunk_id.hex()[:16],
            "; ".join(reasons),
            RETRY_AFTER,
        )
        return False

    async def _rebuild(self, chunk_id: bytes, slot: Slot) -> str | None:
        """None once the chunk is rebuilt and stored from ``slot``, else why not."""
        raw = self.manifest_of(slot.cid)
        if raw is None:
            return f"this host keeps no manifest of work {slot.cid.hex()[:16]}"
        try:
            m = decode_manifest(raw)
        except ManifestError as e:
            return f"the manifest kept for work {slot.cid.hex()[:16]} does not decode: {e}"
        if not (0 <= slot.stripe < len(m.stripes) and 0 <= slot.shard < m.n):
            return f"work {slot.cid.hex()[:16]} has no shard {slot.shard} of stripe {slot.stripe}"
        if m.stripes[slot.stripe].chunk_ids[slot.shard] != chunk_id:
            return f"the manifest of work {slot.cid.hex()[:16]} lists another chunk there"
        start = slot.stripe * m.stripe_size
        end = min(start + m.stripe_size, m.length)
        stripe = bytearray(m.stripe_size)  # the last stripe is coded with its zero padding
        filled = 0
        try:
            async for piece in self.content.read(m.cid, start, end):
                stripe[filled : filled + len(piece)] = piece
                filled += len(piece)
        except PaymentRequiredError:
            if self.as_host is None or not slot.contract:
                return (
                    f"work {m.cid.hex()[:16]} is priced and this node holds no receipt for "
                    "it (hosts serve a priced work only to its buyers)"
                )
            try:  # as the host of the chunk: the other hosts check its contract
                stripe = await self.as_host(m, slot)
            except ContentError as e:
                return f"its stripe (a priced work) could not be read as its host: {e}"
            filled = end - start
        except ContentError as e:
            return f"its stripe could not be read: {e}"
        if filled != end - start:
            return f"its stripe came back with {filled} of {end - start} bytes"
        try:
            held = await self._in_thread(
                _code_and_put, self.store, m.k, m.n, stripe, slot.shard, chunk_id
            )
        except StoreError as e:
            return f"the rebuilt chunk could not be stored: {e}"
        if not held:
            return "the host let the chunk go meanwhile (its contract ended)"
        return None


def stripe_as_host(
    rpc: RpcNode,
    providers: Callable[[bytes], Awaitable[dict[bytes, Contact]]],
    own_key: bytes,
    *,
    timeout: float = 10.0,
) -> StripeAsHost:
    """A :data:`StripeAsHost` over ``rpc``: ``chunk.repair`` to the work's providers
    (other than ``own_key``) one at a time until k packets rebuild the stripe, which
    must hash to its manifest's value. Raises a
    :class:`~storenode.client.content.ContentError` with the reason otherwise."""

    async def read(m: Manifest, slot: Slot) -> bytearray:
        contacts = await providers(m.cid)
        body = RepairRequest(
            m.cid, slot.stripe, slot.shard, slot.contract, slot.position, list(slot.path)
        )
        block = m.stripe_size // m.k
        decoder = ProgressiveDecoder(m.k, block_size=block, code=ReedSolomon(m.k, m.n))
        asked = 0
        refusals: list[str] = []
        for key, contact in contacts.items():
            if key == own_key:
                continue
            asked += 1
            try:
                reply = await rpc.request(contact, body, timeout=timeout)
            except (RemoteError, NetError, WireError) as e:
                refusals.append(str(e))
                continue
            assert isinstance(reply, PacketReply)  # the registry checked it
            if len(reply.coefficients) == m.k and len(reply.payload) == block:
                decoder.add(Packet(reply.coefficients, reply.payload))
            if decoder.complete:
                break
        if not decoder.complete:
            why = f" ({'; '.join(refusals[:3])})" if refusals else ""
            raise ContentUnavailableError(
                f"{decoder.rank} of the k={m.k} packets needed from the {asked} other hosts{why}"
            )
        data = await trio.to_thread.run_sync(decode_packets, decoder, m.stripes[slot.stripe].digest)
        if data is None:
            raise ContentCorruptError("the packets the hosts sent do not hash to the manifest's")
        return bytearray(data)

    return read


def _code_and_put(
    store: ChunkStore, k: int, n: int, stripe: bytearray, shard: int, chunk_id: bytes
) -> bool:
    """Code ``stripe`` again and put its shard ``shard`` as ``chunk_id`` (the store checks
    the bytes against the id, and replaces a damaged copy); False, writing nothing, if
    the store no longer holds the chunk: a repair never adds one no contract lists."""
    if not store.has(chunk_id):
        return False
    store.put(chunk_id, bytes(ReedSolomon(k, n).encode_stripe(stripe)[shard]))
    return True


__all__ = ["QUEUE", "RETRY_AFTER", "Repairer", "Slot", "StripeAsHost", "stripe_as_host"]
