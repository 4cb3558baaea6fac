"""The fetcher: a work's manifest and bytes from many hosts at once (the trio shell).

:class:`Fetcher` is the :class:`~storenode.client.content.ContentSource` of
the CLI's ``fetch`` and ``stream`` and of the HTTP gateway::

    async with open_fetcher(rpc, dht, identity, ledger=client, spending_cap=cap) as f:
        info = await f.open(cid)
        async for piece in f.read(cid, 0, info.length):
            ...

**Opening** a work (docs/specs/streaming.md §2): the manifest pointers under
``manifest_key(cid)`` in the DHT (any owner: the pieces are checked against
the pointer's hash, the manifest against its signature and the CID), the
pieces fetched in parallel and joined; with a ledger client, the work's
registry entry must name that manifest's hash, and a priced work this
identity has no receipt for is bought (a ``Buy`` transaction, waited for)
when its price is within the spending cap, else :class:`PaymentRequiredError`.
Manifests (and so those checks) are cached per CID, least recently used out;
providers (``providers_key(cid)``) for a minute, or until a read runs out of
hosts.

**Reading** runs a :class:`~storenode.client.scheduler.FetchScheduler` (the
pure core that decides which host to ask for which stripe) in a background
task of the fetcher's nursery; the async iterator :meth:`Fetcher.read` only
receives the stripes in order through a channel, so a reader that stops early
cancels the work at once and nothing is left running. Requests run as tasks
with their own cancel scopes (cancelled when their stripe completes or their
host fails); decoding and hashing a stripe run in worker threads.

The identity of ``rpc`` is the one hosts check receipts against: it should be
``identity``, the one that buys.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Protocol, TypeVar

import trio

from contracts import Amount, Buy
from contracts.encoding import format_tokens
from contracts.tx import Body
from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentInfo,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.ledger import ClientError, TxNotIncludedError
from storenode.client.manifests import find_manifest
from storenode.client.scheduler import (
    DEFAULT_EXTRA,
    DEFAULT_PER_HOST,
    DEFAULT_WINDOW,
    START_WINDOW,
    TIMEOUT_FLOOR,
    URGENT,
    Ask,
    FetchScheduler,
    FetchStats,
    Miss,
    Phase,
    StripeState,
)
from storenode.client.stripes import (
    decode_packets,
    inconsistent_senders,
    rebuild_from_shards,
    shard_is_valid,
)
from storenode.coding.rlnc import Packet
from storenode.coding.rs import ReedSolomon
from storenode.dht import Contact
from storenode.dht.errors import RecordInvalidError
from storenode.dht.records import parse_provider
from storenode.host.messages import (
    ChunkData,
    ChunkGet,
    PacketReply,
    PacketRequest,
)
from storenode.identity import Identity
from storenode.ledger.messages import ChainStatus, ListingInfo, TxInfo, WorkReply
from storenode.net.dht import DhtService
from storenode.net.errors import NetError
from storenode.net.rpc import RpcNode
from storenode.publish.manifest import (
    Manifest,
)
from storenode.publish.records import (
    providers_key,
)
from storenode.wire.errors import RemoteError, WireError
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

MANIFEST_CACHE: Final = 64
"""Works whose manifest (and registry and payment checks) a fetcher keeps."""
PROVIDERS_TTL: Final = 60.0
"""Seconds a work's provider list is reused before it is looked up again."""
THREAD_BYTES: Final = 64 * 1024
"""Stripes (and shards) from this size are decoded and hashed in a worker thread."""
BUY_TIMEOUT: Final = 60.0
POLL_INTERVAL: Final = 0.2

_MISSES: Final[dict[int, Miss]] = {
    ErrorCode.NOT_FOUND: Miss.ABSENT,
    ErrorCode.REFUSED: Miss.REFUSED,
    ErrorCode.UNAUTHORIZED: Miss.REFUSED,
    ErrorCode.UNKNOWN_TYPE: Miss.REFUSED,
    ErrorCode.UNAVAILABLE: Miss.REFUSED,
}
"""How a host's error reply counts; any other code is a failure (the host is down)."""

_T = TypeVar("_T")


class WorkLedger(Protocol):
    """What a fetcher asks of the ledger (a :class:`~storenode.client.ledger.LedgerClient`
    is one). Failures are :class:`~storenode.client.ledger.ClientError`."""

    async def call_status(self) -> ChainStatus: ...
    async def call_work(self, fingerprint: bytes) -> WorkReply: ...
    async def call_listing(self, fingerprint: bytes, buyer: bytes) -> ListingInfo: ...
    async def send_tx(self, identity: Identity, body: Body, *, fee: int) -> bytes: ...
    async def wait_for_tx(self, tx_id: bytes, *, timeout: float) -> TxInfo: ...


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """The scheduler's knobs (docs/specs/streaming.md §3)."""

    window: int = DEFAULT_WINDOW
    start_window: int = START_WINDOW
    extra: int = DEFAULT_EXTRA
    urgent: int = URGENT
    per_host: int = DEFAULT_PER_HOST
    timeout_floor: float = TIMEOUT_FLOOR


@lru_cache(maxsize=64)
def _code(k: int, n: int) -> ReedSolomon:
    return ReedSolomon(k, n)


def _short(key: bytes) -> str:
    return key.hex()[:16]


class Fetcher:
    """Reads works from the hosts that hold them (see the module docstring)."""

    def __init__(
        self,
        rpc: RpcNode,
        dht: DhtService,
        identity: Identity,
        *,
        nursery: trio.Nursery,
        ledger: WorkLedger | None = None,
        spending_cap: int = 0,
        fee: int = 0,
        options: FetchOptions | None = None,
        buy_timeout: float = BUY_TIMEOUT,
    ) -> None:
        self.rpc = rpc
        self.dht = dht
        self.identity = identity
        self.ledger = ledger
        self.spending_cap = spending_cap
        self.fee = fee
        self.options = options if options is not None else FetchOptions()
        self.buy_timeout = buy_timeout
        self.stats = FetchStats()
        self._nursery = nursery
        self._manifests: OrderedDict[bytes, tuple[Manifest, bool]] = OrderedDict()
        self._providers: OrderedDict[bytes, tuple[float, dict[bytes, Contact]]] = OrderedDict()
        self._opening: dict[bytes, trio.Event] = {}
        self._limiter = trio.CapacityLimiter(max(2, os.cpu_count() or 2))

    # -- ContentSource ---------------------------------------------------------------------

    async def open(self, cid: bytes) -> ContentInfo:
        m = await self.manifest(cid)
        return ContentInfo(cid, m.name, m.media_type, m.length)

    async def read(self, cid: bytes, start: int, end: int) -> AsyncIterator[bytes]:
        m = await self.manifest(cid)
        if not 0 <= start <= end <= m.length:
            raise ValueError(f"bytes {start}..{end} are not within the work's {m.length}")
        if start == end:
            return
        contacts = await self.providers(cid)
        if not contacts:
            raise ContentUnavailableError(
                f"no host announces work {cid.hex()} in the DHT: it is not pinned, or its "
                "hosts are gone"
            )
        run = _Read(self, m, contacts, start, end)
        send, receive = trio.open_memory_channel[bytes | ContentError](0)
        scope = trio.CancelScope()
        self._nursery.start_soon(run.produce, send, scope)
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, ContentError):
                        raise item
                    yield item
        finally:
            scope.cancel()

    # -- manifests -------------------------------------------------------------------------

    async def manifest(self, cid: bytes) -> Manifest:
        """The work's verified manifest, after the registry and payment checks (cached;
        concurrent opens of one work share one lookup, other works do not wait)."""
        while True:
            cached = self._manifests.get(cid)
            if cached is not None:
                self._manifests.move_to_end(cid)
                return cached[0]
            pending = self._opening.get(cid)
            if pending is None:
                break
            await pending.wait()  # another reader is opening it: use its result
        done = self._opening[cid] = trio.Event()
        try:
            registered = await self._registered_hash(cid)
            m = await find_manifest(
                self.dht, self.rpc, cid, registered=registered, providers=self.providers
            )
            await self._pay(cid)
        except ClientError as e:
            raise ContentUnavailableError(f"cannot check work {cid.hex()}: {e}") from None
        finally:
            del self._opening[cid]
            done.set()
        self._manifests[cid] = (m, registered is not None)
        if len(self._manifests) > MANIFEST_CACHE:
            self._manifests.popitem(last=False)
        return m

    def registered(self, cid: bytes) -> bool:
        """Whether the manifest of ``cid`` (opened) is the one the work's registry entry
        names: then its stripe hashes are the registered owner's word for the CID.
        Otherwise it is only its signer's, and a reader of the whole work should check
        the CID itself (``storenode fetch`` does)."""
        cached = self._manifests.get(cid)
        return cached is not None and cached[1]

    async def _registered_hash(self, cid: bytes) -> bytes | None:
        if self.ledger is None:
            return None
        reply = await self.ledger.call_work(cid)
        return None if reply.work is None else reply.work.manifest_hash

    # -- payment -----------------------------------------------------------------------------

    async def _pay(self, cid: bytes) -> None:
        """Buy the work if it is priced, not bought yet, and within the spending cap."""
        if self.ledger is None:
            return
        listing = await self.ledger.call_listing(cid, self.identity.address)
        if listing.price is None or listing.receipt:
            return
        price = int(listing.price)
        if price > self.spending_cap:
            raise PaymentRequiredError(
                f"work {cid.hex()} costs {format_tokens(price)} tokens per download, above "
                f"this node's spending cap of {format_tokens(self.spending_cap)}: raise "
                "[client] spending_cap in its config to let it buy the work",
                price=price,
                cap=self.spending_cap,
            )
        try:
            tx = await self.ledger.send_tx(self.identity, Buy(cid, Amount(price)), fee=self.fee)
            included = await self.ledger.wait_for_tx(tx, timeout=self.buy_timeout)
            # Hosts check the receipt on their own copy of the chain: give the block
            # that holds it the time to reach them (the next block has).
            with trio.move_on_after(self.buy_timeout):
                while (await self.ledger.call_status()).height <= included.height:
                    await trio.sleep(POLL_INTERVAL)
        except TxNotIncludedError:
            # a concurrent buyer (another read) may have bought it first
            if (await self.ledger.call_listing(cid, self.identity.address)).receipt:
                return
            raise
        except ClientError as e:
            raise PaymentRequiredError(
                f"work {cid.hex()} costs {format_tokens(price)} tokens and buying it failed: {e}",
                price=price,
                cap=self.spending_cap,
            ) from None
        log.info("bought work %s for %s tokens", cid.hex()[:16], format_tokens(price))

    # -- providers ---------------------------------------------------------------------------

    async def providers(self, cid: bytes, *, refresh: bool = False) -> dict[bytes, Contact]:
        """The hosts that announce shards of the work: key -> contact (cached)."""
        now = trio.current_time()
        cached = self._providers.get(cid)
        if cached is not None and not refresh and now - cached[0] < PROVIDERS_TTL:
            self._providers.move_to_end(cid)
            return cached[1]
        contacts: dict[bytes, Contact] = {}
        for record in await self.dht.find_value(providers_key(cid)):
            try:
                contact = parse_provider(record)
            except RecordInvalidError as e:
                log.info("ignoring a bad provider record for %s: %s", cid.hex()[:16], e)
                continue
            contacts[contact.key] = contact
        if contacts:  # none yet may be an announcement still on its way: ask again next time
            self._providers[cid] = (trio.current_time(), contacts)
            if len(self._providers) > MANIFEST_CACHE:
                self._providers.popitem(last=False)
        return contacts

    async def in_thread(self, size: int, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)``, in a worker thread when it handles ``size`` bytes or more."""
        if size < THREAD_BYTES:
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)


class _Read:
    """One read of bytes ``[start, end)``: drives a scheduler, delivers stripes in order."""

    def __init__(
        self,
        fetcher: Fetcher,
        manifest: Manifest,
        contacts: dict[bytes, Contact],
        start: int,
        end: int,
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
            start_window=opts.start_window,
            extra=opts.extra,
            urgent=opts.urgent,
            per_host=opts.per_host,
            timeout_floor=opts.timeout_floor,
            stats=fetcher.stats,
        )
        self.results: dict[int, bytes] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.changed = trio.Event()
        self.result_ready = trio.Event()
        self.error: ContentError | None = None
        self.error_at = self.sched.last + 1
        """The stripe the error is about: the stripes before it are still delivered."""
        self.finished = False
        self.refreshed = False

    def poke(self) -> None:
        self.changed.set()

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
            for ask in sched.plan(trio.current_time()):
                scope = self.scopes[ask.id] = trio.CancelScope()
                self.nursery.start_soon(self._request, ask, scope)
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

    async def _request(self, ask: Ask, scope: trio.CancelScope) -> None:
        cancel: list[int] = []
        with scope:
            cancel = await self._attempt(ask)
        self.scopes.pop(ask.id, None)
        self._cancel(cancel)
        self.poke()

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
        for ask_id in ids:
            scope = self.scopes.pop(ask_id, None)
            if scope is not None:
                scope.cancel()

    # -- decoding --------------------------------------------------------------------------

    async def _decode(self, st: StripeState) -> None:
        s = st.index
        sha = self.m.stripes[s].sha256
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


@asynccontextmanager
async def open_fetcher(
    rpc: RpcNode,
    dht: DhtService,
    identity: Identity,
    *,
    ledger: WorkLedger | None = None,
    spending_cap: int = 0,
    fee: int = 0,
    options: FetchOptions | None = None,
    buy_timeout: float = BUY_TIMEOUT,
) -> AsyncIterator[Fetcher]:
    """A :class:`Fetcher` whose reads run in a nursery that lives until the block exits."""
    async with trio.open_nursery() as nursery:
        fetcher = Fetcher(
            rpc,
            dht,
            identity,
            nursery=nursery,
            ledger=ledger,
            spending_cap=spending_cap,
            fee=fee,
            options=options,
            buy_timeout=buy_timeout,
        )
        try:
            yield fetcher
        finally:
            nursery.cancel_scope.cancel()
