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
hosts. A provider lookup stops once it holds ``quick_providers`` of them (the
nodes nearest the key each keep every provider record, so the first answers
usually bring them all; a node among them answers from its own store, at
once), and the rest of the lookup goes on in the background: providers it
finds join the cache and the reads of that work already running. Measured on
a 10-host localnet: a reader outside the DHT's nearest nodes spent 7.7–10.6 ms
on the whole lookup, 4.3–6.8 ms on one that stops early; the gateway's first
64 KiB of a work it had never opened came in 12.7 ms (median of 11 works, two
localnets) instead of 14.0.

**Reading** runs a :class:`~storenode.client.reading.StripeRead` (around a
:class:`~storenode.client.scheduler.FetchScheduler`, the pure core that
decides which host to ask for which stripe) in a background task of the
fetcher's nursery; the async iterator :meth:`Fetcher.read` only receives the
stripes in order through a channel, so a reader that stops early cancels the
work at once and nothing is left running.

The identity of ``rpc`` is the one hosts check receipts against: it should be
``identity``, the one that buys.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import trio

from contracts import Amount, Buy
from contracts.encoding import format_tokens
from contracts.tx import Body
from storenode.client.content import (
    ContentError,
    ContentInfo,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.ledger import ClientError, TxNotIncludedError
from storenode.client.manifests import find_manifest
from storenode.client.read_state import FetchStats
from storenode.client.reading import StripeRead
from storenode.client.scheduler import (
    DEFAULT_BATCH,
    DEFAULT_EXTRA,
    DEFAULT_PER_HOST,
    DEFAULT_WINDOW,
    START_WINDOW,
    TIMEOUT_FLOOR,
    URGENT,
)
from storenode.dht import Contact, Record
from storenode.dht.errors import RecordInvalidError
from storenode.dht.records import parse_provider
from storenode.identity import Identity
from storenode.ledger.messages import ChainStatus, ListingInfo, TxInfo, WorkReply
from storenode.net.dht import DhtService
from storenode.net.rpc import RpcNode
from storenode.publish.manifest import (
    Manifest,
)
from storenode.publish.records import (
    providers_key,
)

log = logging.getLogger(__name__)

MANIFEST_CACHE: Final = 64
"""Works whose manifest (and registry and payment checks) a fetcher keeps."""
PROVIDERS_TTL: Final = 60.0
"""Seconds a work's provider list is reused before it is looked up again."""
QUICK_PROVIDERS: Final = 8
"""Providers enough to start reading: more than a stripe's k, enough to spread a
read's requests (see the module docstring)."""
THREAD_BYTES: Final = 64 * 1024
"""Stripes (and shards) from this size are decoded and hashed in a worker thread."""
BUY_TIMEOUT: Final = 60.0
POLL_INTERVAL: Final = 0.2

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
    batch: int = DEFAULT_BATCH
    """Stripes per request ahead of the read position (1: one request per stripe)."""
    timeout_floor: float = TIMEOUT_FLOOR
    quick_providers: int = QUICK_PROVIDERS
    """Providers that end the lookup a read waits for (the rest are found meanwhile)."""


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
        self._reads: dict[bytes, set[StripeRead]] = {}
        self._completing: set[bytes] = set()
        self._limiter = trio.CapacityLimiter(max(2, os.cpu_count() or 2))

    # -- ContentSource ---------------------------------------------------------------------

    async def open(self, cid: bytes) -> ContentInfo:
        m = await self.manifest(cid)
        return ContentInfo(cid, m.name, m.media_type, m.length, self.registered(cid))

    async def read(
        self, cid: bytes, start: int, end: int, *, bulk: bool = False
    ) -> AsyncIterator[bytes]:
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
        run = StripeRead(self, m, contacts, start, end, bulk=bulk)
        send, receive = trio.open_memory_channel[bytes | ContentError](0)
        scope = trio.CancelScope()
        self._nursery.start_soon(run.produce, send, scope)
        running = self._reads.setdefault(cid, set())
        running.add(run)
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, ContentError):
                        raise item
                    yield item
        finally:
            scope.cancel()
            running.discard(run)
            if not running and self._reads.get(cid) is running:
                del self._reads[cid]

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
        """The hosts that announce shards of the work: key -> contact (cached; see the
        module docstring for the lookup that stops early, and ``refresh``es that
        do not)."""
        now = trio.current_time()
        cached = self._providers.get(cid)
        if cached is not None and not refresh and now - cached[0] < PROVIDERS_TTL:
            self._providers.move_to_end(cid)
            return cached[1]
        enough = None if refresh else self.options.quick_providers
        records = await self.dht.find_value(providers_key(cid), enough=enough)
        contacts = self._contacts(cid, records)
        if contacts:  # none yet may be an announcement still on its way: ask again next time
            self._providers[cid] = (trio.current_time(), contacts)
            if len(self._providers) > MANIFEST_CACHE:
                self._providers.popitem(last=False)
        if enough is not None and len(records) >= enough and cid not in self._completing:
            self._completing.add(cid)
            self._nursery.start_soon(self._complete_providers, cid)
        return contacts

    async def _complete_providers(self, cid: bytes) -> None:
        """The whole provider lookup, after one that stopped early: providers it adds
        join the cache and the running reads of the work."""
        try:
            records = await self.dht.find_value(providers_key(cid))  # failures are its own
        finally:
            self._completing.discard(cid)
        cached = self._providers.get(cid)
        when, known = cached if cached is not None else (trio.current_time(), {})
        new = {
            key: contact
            for key, contact in self._contacts(cid, records).items()
            if key not in known
        }
        if not new:
            return
        # a new dict: callers may be iterating over the one they were given
        self._providers[cid] = (when, {**known, **new})
        log.debug("%d more providers of %s", len(new), cid.hex()[:16])
        for run in list(self._reads.get(cid, ())):
            run.add_hosts(new)

    @staticmethod
    def _contacts(cid: bytes, records: Iterable[Record]) -> dict[bytes, Contact]:
        contacts: dict[bytes, Contact] = {}
        for record in records:
            try:
                contact = parse_provider(record)
            except RecordInvalidError as e:
                log.info("ignoring a bad provider record for %s: %s", cid.hex()[:16], e)
                continue
            contacts[contact.key] = contact
        return contacts

    async def in_thread(self, size: int, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)``, in a worker thread when it handles ``size`` bytes or more."""
        if size < THREAD_BYTES:
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)


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
