"""One read of a work's bytes: the trio shell around a
:class:`~storenode.client.scheduler.FetchScheduler`.

A :class:`StripeRead` is what :meth:`storenode.client.fetch.Fetcher.read` runs
in the fetcher's nursery for bytes ``[start, end)``: it starts the requests
the scheduler plans, each as a task with its own cancel scope (cancelled when
its stripe completes or its host fails), reports how each ended, decodes and
checks each stripe the scheduler hands out in a worker thread (rebuilding it
from verified shards after a hash mismatch, and naming the hosts whose packets
disagree), looks the providers up again once if a stripe runs out of hosts,
and delivers the stripes in order through a channel, then any error.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import trio

from storenode.client.content import ContentCorruptError, ContentError, ContentUnavailableError
from storenode.client.read_state import Ask, Miss, Phase, StripeState
from storenode.client.scheduler import FetchScheduler
from storenode.client.stripes import (
    decode_packets,
    inconsistent_senders,
    rebuild_from_shards,
    shard_is_valid,
)
from storenode.coding.rlnc import Packet
from storenode.coding.rs import ReedSolomon
from storenode.dht import Contact
from storenode.host.messages import (
    ChunkData,
    ChunkGet,
    PacketReply,
    PacketRequest,
    PacketsReply,
    PacketsRequest,
)
from storenode.net.errors import NetError
from storenode.publish.manifest import Manifest
from storenode.wire.errors import RemoteError, WireError
from storenode.wire.messages import ErrorCode

if TYPE_CHECKING:
    from storenode.client.fetch import Fetcher

log = logging.getLogger(__name__)

_MISSES: Final[dict[int, Miss]] = {
    ErrorCode.NOT_FOUND: Miss.ABSENT,
    ErrorCode.REFUSED: Miss.REFUSED,
    ErrorCode.UNAUTHORIZED: Miss.REFUSED,
    ErrorCode.UNKNOWN_TYPE: Miss.REFUSED,
    ErrorCode.UNAVAILABLE: Miss.REFUSED,
}
"""How a host's error reply counts; any other code is a failure (the host is down)."""


class _Request:
    """A request on the wire: one ask's, or a batch's (``live``: its asks not cancelled)."""

    __slots__ = ("live", "scope")

    def __init__(self, live: set[int]) -> None:
        self.live = live
        self.scope = trio.CancelScope()


def _on_the_wire(asks: list[Ask]) -> list[list[Ask]]:
    """The asks of a plan as requests: each batch's together, in plan order."""
    out: list[list[Ask]] = []
    batches: dict[int, list[Ask]] = {}
    for ask in asks:
        if ask.batch < 0:
            out.append([ask])
        elif ask.batch in batches:
            batches[ask.batch].append(ask)
        else:
            batches[ask.batch] = [ask]
            out.append(batches[ask.batch])
    return out


@lru_cache(maxsize=64)
def _code(k: int, n: int) -> ReedSolomon:
    return ReedSolomon(k, n)


def _short(key: bytes) -> str:
    return key.hex()[:16]


class StripeRead:
    """One read of bytes ``[start, end)``: drives a scheduler, delivers stripes in order."""

    def __init__(
        self,
        fetcher: Fetcher,
        manifest: Manifest,
        contacts: dict[bytes, Contact],
        start: int,
        end: int,
        *,
        bulk: bool = False,
    ) -> None:
        self.fetcher = fetcher
        self.m = manifest
        self.contacts = dict(contacts)
        self.start = start
        self.end = end
        size = manifest.stripe_size
        opts = fetcher.options
        self.sched = FetchScheduler(
            contacts,
            k=manifest.k,
            n=manifest.n,
            shard_size=size // manifest.k,
            first=start // size,
            last=(end - 1) // size,
            window=opts.window,
            # A bulk read wants every stripe, not the first byte soon: no slow start.
            start_window=opts.window if bulk else opts.start_window,
            extra=opts.extra,
            urgent=opts.urgent,
            per_host=opts.per_host,
            batch=opts.batch,
            timeout_floor=opts.timeout_floor,
            stats=fetcher.stats,
        )
        self.results: dict[int, bytes] = {}
        self.requests: dict[int, _Request] = {}
        """The request on the wire of each open ask (several asks share a batch's)."""
        self.changed = trio.Event()
        self.result_ready = trio.Event()
        self.error: ContentError | None = None
        self.error_at = self.sched.last + 1
        """The stripe the error is about: the stripes before it are still delivered."""
        self.finished = False
        self.refreshed = False

    def poke(self) -> None:
        self.changed.set()

    def add_hosts(self, contacts: dict[bytes, Contact]) -> None:
        """More providers of the work, found while it is read: asked from now on."""
        self.contacts.update(contacts)
        if self.sched.add_hosts(contacts):
            self.poke()

    def fail(self, error: ContentError, at: int) -> None:
        """The read cannot go past stripe ``at`` (the earliest such stripe wins)."""
        if self.error is None or at < self.error_at:
            self.error, self.error_at = error, at
        self.result_ready.set()
        self.poke()

    async def produce(
        self, send: trio.MemorySendChannel[bytes | ContentError], scope: trio.CancelScope
    ) -> None:
        """Send the bytes, then any error, to the reader (a task of the fetcher)."""
        with scope:
            async with send:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    nursery.start_soon(self._deliver, send)
                    await self._drive()
                    nursery.cancel_scope.cancel()
                if self.error is not None:
                    with contextlib.suppress(trio.BrokenResourceError):  # the reader left
                        await send.send(self.error)

    async def _drive(self) -> None:
        sched = self.sched
        while not self.finished:
            self.changed = trio.Event()
            for asks in _on_the_wire(sched.plan(trio.current_time())):
                request = _Request({ask.id for ask in asks})
                for ask in asks:
                    self.requests[ask.id] = request
                self.nursery.start_soon(self._request, asks, request)
            for st in sched.take_ready():
                self.nursery.start_soon(self._decode, st)
            stuck = sched.blocked()
            if stuck is not None and stuck.index < self.error_at:
                if await self._more_hosts():
                    continue
                self.fail(self._blocked_error(stuck), stuck.index)
            await self.changed.wait()

    async def _more_hosts(self) -> bool:
        """Look the providers up again (once per read); whether any host is new."""
        if self.refreshed:
            return False
        self.refreshed = True
        contacts = await self.fetcher.providers(self.m.cid, refresh=True)
        self.contacts.update(contacts)
        return self.sched.add_hosts(contacts) > 0

    def _blocked_error(self, st: StripeState) -> ContentError:
        why = self.sched.why_blocked(st)
        where = f"stripe {st.index} of work {self.m.cid.hex()}"
        if st.phase is Phase.VERIFYING:
            return ContentCorruptError(
                f"{where} does not match its manifest, and fewer than k={self.m.k} of its "
                f"chunks could be fetched intact to rebuild it ({why})"
            )
        return ContentUnavailableError(
            f"{where}: fewer than k={self.m.k} hosts can serve it ({why}); try again later"
        )

    async def _deliver(self, send: trio.MemorySendChannel[bytes | ContentError]) -> None:
        size = self.m.stripe_size
        for s in range(self.sched.first, self.sched.last + 1):
            while s not in self.results:
                if s >= self.error_at:  # the stripes before the error are delivered
                    self.finished = True
                    self.poke()
                    return
                self.result_ready = trio.Event()
                await self.result_ready.wait()
            data = self.results.pop(s)
            lo = max(self.start - s * size, 0)
            hi = min(self.end - s * size, size)
            try:
                await send.send(data[lo:hi] if (lo, hi) != (0, len(data)) else data)
            except trio.BrokenResourceError:
                break  # the reader left
            self.sched.advance()
            self.poke()
        self.finished = True
        self.poke()

    # -- requests --------------------------------------------------------------------------

    async def _request(self, asks: list[Ask], request: _Request) -> None:
        cancel: list[int] = []
        with request.scope:
            cancel = await (self._attempt(asks[0]) if len(asks) == 1 else self._batch(asks))
        for ask in asks:
            self.requests.pop(ask.id, None)
        self._cancel(cancel)
        self.poke()

    async def _batch(self, asks: list[Ask]) -> list[int]:
        """One ``chunk.packets`` for the asks of one batch (one host, several stripes)."""
        sched = self.sched
        key = asks[0].host
        body = PacketsRequest(self.m.cid, [ask.stripe for ask in asks])
        self.fetcher.stats.batches += 1
        timeout = max(ask.timeout for ask in asks)
        cancel: list[int] = []
        try:
            reply = await self.fetcher.rpc.request(self.contacts[key], body, timeout=timeout)
        except RemoteError as e:
            if e.code in (ErrorCode.UNKNOWN_TYPE, ErrorCode.UNAVAILABLE):
                log.info("host %s does not answer chunk.packets: one stripe a request", _short(key))
                sched.no_batches(key, [ask.id for ask in asks])
                return []
            miss = _MISSES.get(e.code, Miss.FAILED)
            log.info("host %s refused stripes %s: %s", _short(key), body.stripes, e)
            for ask in asks:
                cancel += sched.on_miss(ask.id, miss, trio.current_time())
            return cancel
        except (NetError, WireError) as e:
            log.info(
                "host %s failed on stripes %s (%s): asking others", _short(key), body.stripes, e
            )
            for ask in asks:
                cancel += sched.on_miss(ask.id, Miss.FAILED, trio.current_time())
            return cancel
        assert isinstance(reply, PacketsReply)  # the registry checked it
        packets: dict[int, Packet] = {}
        for p in reply.packets:
            if p.stripe not in body.stripes or p.stripe in packets:
                log.warning(
                    "host %s answered stripes it was not asked for: no longer asking it",
                    _short(key),
                )
                return sched.distrust(key)
            packets[p.stripe] = Packet(p.coefficients, p.payload)
        answers = [(ask.id, packets.get(ask.stripe)) for ask in asks]
        return sched.on_packets(answers, trio.current_time())

    async def _attempt(self, ask: Ask) -> list[int]:
        sched = self.sched
        contact = self.contacts[ask.host]
        entry = self.m.stripes[ask.stripe]
        rpc = self.fetcher.rpc
        try:
            if ask.shard is None:
                body = PacketRequest(self.m.cid, ask.stripe)
                reply = await rpc.request(contact, body, timeout=ask.timeout)
            else:
                reply = await rpc.request(
                    contact, ChunkGet(entry.chunk_ids[ask.shard]), timeout=ask.timeout
                )
        except RemoteError as e:
            miss = _MISSES.get(e.code, Miss.FAILED)
            if miss is not Miss.ABSENT:
                log.info("host %s refused stripe %d: %s", _short(ask.host), ask.stripe, e)
            return sched.on_miss(ask.id, miss, trio.current_time())
        except (NetError, WireError) as e:
            log.info(
                "host %s failed on stripe %d (%s): asking other hosts",
                _short(ask.host),
                ask.stripe,
                e,
            )
            return sched.on_miss(ask.id, Miss.FAILED, trio.current_time())
        if isinstance(reply, PacketReply):
            packet = Packet(reply.coefficients, reply.payload)
            return sched.on_packet(ask.id, packet, trio.current_time())
        assert isinstance(reply, ChunkData) and ask.shard is not None  # the registry checked it
        valid = await self.fetcher.in_thread(
            len(reply.data), shard_is_valid, reply.data, entry.chunk_ids[ask.shard]
        )
        if not valid:
            log.warning(
                "host %s sent bytes that are not chunk %s: no longer asking it",
                _short(ask.host),
                entry.chunk_ids[ask.shard].hex()[:16],
            )
        return sched.on_shard(ask.id, reply.data, trio.current_time(), valid=valid)

    def _cancel(self, ids: list[int]) -> None:
        """Stop the requests of asks ``ids`` (a batch's once none of its asks is left)."""
        for ask_id in ids:
            request = self.requests.pop(ask_id, None)
            if request is not None:
                request.live.discard(ask_id)
                if not request.live:
                    request.scope.cancel()

    # -- decoding --------------------------------------------------------------------------

    async def _decode(self, st: StripeState) -> None:
        s = st.index
        sha = self.m.stripes[s].digest
        size = self.m.stripe_size
        if st.phase is Phase.DECODING:
            data = await self.fetcher.in_thread(size, decode_packets, st.decoder, sha)
            self.sched.decoded(s, ok=data is not None)
            if data is None:
                log.warning(
                    "stripe %d of %s does not match its hash: fetching it as verified chunks",
                    s,
                    self.m.cid.hex()[:16],
                )
                self.poke()
                return
        else:
            out = await self.fetcher.in_thread(
                size, rebuild_from_shards, _code(self.m.k, self.m.n), dict(st.shards), sha
            )
            if out is None:
                self.fail(
                    ContentCorruptError(
                        f"stripe {s} of work {self.m.cid.hex()}: its verified chunks do not "
                        "rebuild the stripe its manifest describes (a bad manifest)"
                    ),
                    s,
                )
                return
            data, blocks = out
            liars = await self.fetcher.in_thread(
                size, inconsistent_senders, blocks, list(st.packets)
            )
            for liar in liars:
                log.warning(
                    "host %s sent packets inconsistent with stripe %d of %s: no longer asking it",
                    _short(liar),
                    s,
                    self.m.cid.hex()[:16],
                )
            self._cancel(self.sched.rebuilt(s, liars))
        self.results[s] = data
        self.result_ready.set()
        self.poke()
